"""Pure unit tests: framing, config validation, the publish pacer."""

from __future__ import annotations

import hashlib

import pytest
import trio
from net_helpers import bounded

from net import (
    ERR_BUSY,
    MessageTooLarge,
    NetConfig,
    NetConfigError,
    ProtocolViolation,
    framing,
    parse_peer_addr,
    peer_id_from_seed,
)
from net.ratelimit import TokenBucket

PEER = peer_id_from_seed(b"\x01" * 32)


def test_frame_round_trip() -> None:
    raw = framing.encode_frame(framing.Kind.REQUEST, b"hello", 100)
    header = framing.decode_header(raw[: framing.HEADER_LEN], 100)
    assert header.kind is framing.Kind.REQUEST and header.length == 5
    assert framing.check_payload(header, raw[framing.HEADER_LEN :]) == b"hello"


def test_encode_refuses_oversize() -> None:
    with pytest.raises(MessageTooLarge) as exc:
        framing.encode_frame(framing.Kind.DIRECT, b"x" * 11, 10)
    assert exc.value.size == 11 and exc.value.limit == 10


@pytest.mark.parametrize(
    "mutate, reason",
    [
        (lambda h: b"\x02" + h[1:], "version"),
        (lambda h: h[:1] + b"\x09" + h[2:], "kind"),
        (lambda h: h[:2] + (1000).to_bytes(4, "big") + h[6:], "cap"),
        (lambda h: h[:-1], "header is"),
    ],
)
def test_bad_headers_are_violations(mutate, reason) -> None:  # type: ignore[no-untyped-def]
    raw = framing.encode_frame(framing.Kind.REQUEST, b"abc", 100)[: framing.HEADER_LEN]
    with pytest.raises(ProtocolViolation, match=reason):
        framing.decode_header(mutate(raw), 100)


def test_payload_hash_and_length_checked() -> None:
    raw = framing.encode_frame(framing.Kind.RESPONSE, b"abcdef", 100)
    header = framing.decode_header(raw[: framing.HEADER_LEN], 100)
    with pytest.raises(ProtocolViolation, match="hash"):
        framing.check_payload(header, b"abcdeX")
    with pytest.raises(ProtocolViolation, match="header said"):
        framing.check_payload(header, b"abcde")


def test_unhashed_frames_skip_the_hash_but_not_the_length() -> None:
    payload = b"chunk" * 10
    header_raw = framing.encode_header(framing.Kind.DATA_UNHASHED, payload, 100)
    assert header_raw[6:] == framing.NO_DIGEST
    header = framing.decode_header(header_raw, 100)
    assert framing.check_payload(header, b"x" * 50) == b"x" * 50  # content is the app's job
    with pytest.raises(ProtocolViolation, match="header said"):
        framing.check_payload(header, payload[:-1])
    forged = framing.decode_header(header_raw[:6] + b"\x01" * 32, 100)
    with pytest.raises(ProtocolViolation, match="non-zero digest"):
        framing.check_payload(forged, payload)
    hashed = framing.decode_header(framing.encode_header(framing.Kind.DATA, payload, 100), 100)
    with pytest.raises(ProtocolViolation, match="hash"):
        framing.check_payload(hashed, b"y" * 50)
    with pytest.raises(MessageTooLarge):
        framing.encode_header(framing.Kind.DATA, payload, 49)


def test_error_payload_round_trip_and_cap() -> None:
    code, msg = framing.decode_error(framing.encode_error(ERR_BUSY, "busy" * 1000))
    assert code == ERR_BUSY and len(msg.encode()) == 512
    with pytest.raises(ProtocolViolation):
        framing.decode_error(b"\x01")


def test_config_accepts_defaults_and_computes_peer_id() -> None:
    cfg = NetConfig(seed=b"\x01" * 32, persistent_peers=(f"/ip4/127.0.0.1/tcp/26656/p2p/{PEER}",))
    assert cfg.peer_id == PEER


@pytest.mark.parametrize(
    "kw",
    [
        {"seed": b"short"},
        {"listen_addr": "127.0.0.1:26656"},
        {"listen_addr": "/ip4/127.0.0.1/udp/1"},
        {"persistent_peers": ("/ip4/127.0.0.1/tcp/1",)},  # no /p2p/
        {"persistent_peers": [f"/ip4/127.0.0.1/tcp/1/p2p/{PEER}"]},  # list, not tuple
        {"persistent_peers": ("/ip4/127.0.0.1/tcp/1/p2p/notapeer",)},
        {"stream_timeout_s": 0},
        {"max_msg_bytes": -1},
        {"max_msg_bytes": True},
        {"gossip_degree": 20},
        {"msg_id": "random"},
    ],
)
def test_config_rejects_bad_values(kw: dict) -> None:
    kw = {"seed": b"\x01" * 32} | kw
    with pytest.raises(NetConfigError):
        NetConfig(**kw)


def test_parse_peer_addr_splits_base_and_id() -> None:
    assert parse_peer_addr(f"/ip4/10.0.0.1/tcp/5/p2p/{PEER}") == ("/ip4/10.0.0.1/tcp/5", PEER)


@bounded(10)
async def test_token_bucket_paces_after_burst() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=10, burst=3, clock=lambda: now[0])
    assert [bucket.try_acquire() for _ in range(4)] == [True, True, True, False]
    now[0] += 0.1  # one token per 100 ms
    assert bucket.try_acquire() and not bucket.try_acquire()
    now[0] += 10.0  # refill is capped at the burst
    assert [bucket.try_acquire() for _ in range(4)] == [True, True, True, False]


@bounded(10)
async def test_token_bucket_acquire_waits_on_real_clock() -> None:
    bucket = TokenBucket(rate=50, burst=1)
    start = trio.current_time()
    for _ in range(6):
        await bucket.acquire()
    # 1 free + 5 paced at 50/s = about 100 ms
    assert 0.08 <= trio.current_time() - start < 1.0


def test_importing_net_does_not_import_libp2p() -> None:
    import subprocess
    import sys

    code = ("import sys, net; assert 'libp2p' not in sys.modules; "
            "print(net.peer_id_from_seed(bytes(32)))")
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().startswith("12D3KooW")


def test_every_public_name_exported_once() -> None:
    import net

    with open(net.__file__) as f:
        text = f.read()
    names = [n for n in dir(net) if not n.startswith("_") and n[0].isalpha()]
    for name in (
        "NetConfig",
        "PeerUnreachable",
        "RequestTimeout",
        "MessageTooLarge",
        "RemoteError",
        "ProtocolViolation",
        "HandlerError",
        "PeerInfo",
        "NetStats",
        "peer_id_from_seed",
    ):
        assert name in names
        assert text.count(f" as {name}\n") == 1
    assert hashlib  # keep import used


class FakeStream:
    """Reads from a list of chunks, then EOF (``b""``) or a hang; records writes."""

    def __init__(self, chunks: list[bytes], *, hang: bool = False) -> None:
        self.chunks = list(chunks)
        self.hang = hang
        self.written = b""

    async def read(self, n: int | None = None) -> bytes:
        if not self.chunks:
            if self.hang:
                await trio.sleep_forever()
            return b""
        chunk = self.chunks.pop(0)
        if n is not None and len(chunk) > n:
            self.chunks.insert(0, chunk[n:])
            chunk = chunk[:n]
        return chunk

    async def write(self, data: bytes) -> None:
        self.written += data


@bounded(10)
async def test_read_frame_reassembles_split_chunks() -> None:
    from net.streamio import read_frame

    raw = framing.encode_frame(framing.Kind.DIRECT, b"payload" * 10, 1000)
    stream = FakeStream([raw[i : i + 7] for i in range(0, len(raw), 7)])
    assert await read_frame(stream, 1000, 1.0) == (framing.Kind.DIRECT, b"payload" * 10)  # type: ignore[arg-type]


@bounded(10)
async def test_read_frame_truncation_and_deadlines() -> None:
    from net.streamio import StreamBroken, read_frame

    raw = framing.encode_frame(framing.Kind.REQUEST, b"x" * 100, 1000)
    with pytest.raises(StreamBroken, match="EOF"):
        await read_frame(FakeStream([raw[:-10]]), 1000, 1.0)  # type: ignore[arg-type]
    with pytest.raises(trio.TooSlowError):  # header started, then a frozen peer
        await read_frame(FakeStream([raw[:10]], hang=True), 1000, 0.1)  # type: ignore[arg-type]
    with pytest.raises(trio.TooSlowError):  # idle before the first byte
        await read_frame(FakeStream([], hang=True), 1000, 1.0, idle_timeout=0.1)  # type: ignore[arg-type]
    with pytest.raises(ProtocolViolation):  # over the cap: refused from the header alone
        await read_frame(FakeStream([raw]), 50, 1.0)  # type: ignore[arg-type]


def test_handler_error_codes_are_application_range() -> None:
    from net import HandlerError

    assert HandlerError(100, "ok").code == 100
    for bad in (0, 6, 99, 70000):
        with pytest.raises(ValueError):
            HandlerError(bad, "transport range")
