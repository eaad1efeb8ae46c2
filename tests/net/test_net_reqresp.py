"""Request/response and direct messages between real hosts on loopback."""

from __future__ import annotations

import contextlib
import hashlib
import os

import pytest
import trio
from net_helpers import bounded, config, hosts, link, wait_until

from net import (
    ERR_BUSY,
    ERR_HANDLER_FAILED,
    ERR_RESPONSE_TOO_LARGE,
    ERR_UNSUPPORTED,
    HandlerError,
    MessageTooLarge,
    NetUsageError,
    PeerUnreachable,
    ProtocolViolation,
    RemoteError,
    RequestTimeout,
    framing,
    peer_id_from_seed,
)

ECHO = "/oml/test/echo/1"


async def echo(peer: str, data: bytes) -> bytes:
    if data == b"fail":
        raise HandlerError(417, "refused by handler")
    if data == b"crash":
        raise KeyError("handler bug")
    if data == b"huge":
        return b"z" * 5000
    if len(data) > 100:
        return hashlib.sha256(data).digest()
    return peer.encode() + b":" + data[::-1]


@bounded(30)
async def test_round_trip_and_typed_errors() -> None:
    async with hosts(config("ra", max_msg_bytes=4096), config("rb", max_msg_bytes=4096)) as (a, b):
        a.set_handler(ECHO, echo)
        await link(b, a)
        assert await b.request(a.peer_id, ECHO, b"abc") == b.peer_id.encode() + b":cba"
        big = os.urandom(4096)
        assert (
            await b.request(a.peer_id, ECHO, big) == hashlib.sha256(big).digest()
        )  # exactly at the cap
        with pytest.raises(RemoteError) as exc:
            await b.request(a.peer_id, ECHO, b"fail")
        assert (exc.value.code, exc.value.message) == (417, "refused by handler")
        with pytest.raises(RemoteError) as exc:
            await b.request(a.peer_id, ECHO, b"crash")
        assert exc.value.code == ERR_HANDLER_FAILED and "KeyError" not in exc.value.message
        with pytest.raises(RemoteError) as exc:
            await b.request(a.peer_id, ECHO, b"huge")
        assert exc.value.code == ERR_RESPONSE_TOO_LARGE
        with pytest.raises(RemoteError) as exc:
            await b.request(a.peer_id, "/oml/test/nobody/1", b"x")
        assert exc.value.code == ERR_UNSUPPORTED
        with pytest.raises(MessageTooLarge):
            await b.request(a.peer_id, ECHO, b"x" * 4097)
        for bad_protocol in ("echo", "/with space", ""):
            with pytest.raises(NetUsageError):
                await b.request(a.peer_id, bad_protocol, b"x")
        with pytest.raises(NetUsageError):
            await b.request("not-a-peer", ECHO, b"x")
        s = a.stats().protocols[ECHO]
        assert s.requests_in >= 5 and s.errors_in >= 3 and s.violations == 0


@bounded(30)
async def test_response_over_requesters_cap_is_a_violation() -> None:
    async with hosts(config("ca", max_msg_bytes=8192), config("cb", max_msg_bytes=1024)) as (a, b):
        a.set_handler(ECHO, echo)
        await link(b, a)
        with pytest.raises(ProtocolViolation) as exc:
            await b.request(a.peer_id, ECHO, b"huge")  # 5000 bytes, fine for A, not for B
        assert exc.value.peer == a.peer_id


@bounded(30)
async def test_request_timeout_against_frozen_handler() -> None:
    release = trio.Event()

    async def frozen(peer: str, data: bytes) -> bytes:
        await release.wait()
        return b"late"

    async with hosts(config("ta", handler_timeout_s=5.0), config("tb")) as (a, b):
        a.set_handler(ECHO, frozen)
        await link(b, a)
        start = trio.current_time()
        with pytest.raises(RequestTimeout) as exc:
            await b.request(a.peer_id, ECHO, b"x", timeout=0.3)
        assert 0.25 <= trio.current_time() - start < 2.0
        assert exc.value.timeout == 0.3
        release.set()
        a.set_handler(ECHO, echo)  # replacing a handler takes effect at once
        assert await b.request(a.peer_id, ECHO, b"ok") == b.peer_id.encode() + b":ko"


@bounded(30)
async def test_handler_deadline_and_busy() -> None:
    gate = trio.Event()

    async def slow(peer: str, data: bytes) -> bytes:
        if data == b"hang":
            await trio.sleep_forever()
        await gate.wait()
        return b"done"

    async with hosts(config("ha", handler_timeout_s=0.3, max_inbound_requests=1), config("hb")) as (
        a,
        b,
    ):
        a.set_handler(ECHO, slow)
        await link(b, a)
        with pytest.raises(RemoteError) as exc:
            await b.request(a.peer_id, ECHO, b"hang", timeout=3)
        assert exc.value.code == framing.ERR_HANDLER_TIMEOUT
        async with trio.open_nursery() as nursery:
            results: list[bytes] = []

            async def first() -> None:
                results.append(await b.request(a.peer_id, ECHO, b"wait", timeout=3))

            nursery.start_soon(first)
            await wait_until(
                lambda: a.stats().protocols[ECHO].requests_in == 2, what="first request in"
            )
            with pytest.raises(RemoteError) as exc:
                await b.request(a.peer_id, ECHO, b"second", timeout=3)
            assert exc.value.code == ERR_BUSY
            gate.set()
        assert results == [b"done"]


@bounded(30)
async def test_malformed_streams_do_not_crash_the_host() -> None:
    from net._lib import ID, BaseLibp2pError, TProtocol

    async with hosts(config("ma"), config("mb")) as (a, b):
        a.set_handler(ECHO, echo)
        await link(b, a)
        good = framing.encode_frame(framing.Kind.REQUEST, b"abc", 100)
        payloads = [
            os.urandom(framing.HEADER_LEN + 10),  # garbage header
            good[:-1] + b"X",  # hash mismatch
            good[:2] + (2**31).to_bytes(4, "big") + good[6:],  # length over cap
            framing.encode_frame(framing.Kind.RESPONSE, b"abc", 100),  # wrong opening kind
            framing.encode_frame(framing.Kind.DIRECT, b"a", 100)
            + good,  # request inside direct stream
        ]
        host = b._host  # raw libp2p access: these bytes cannot be sent through the API
        for raw in payloads:
            stream = await host.new_stream(ID.from_base58(a.peer_id), [TProtocol(ECHO)])
            await stream.write(raw)
            with trio.move_on_after(3):
                with contextlib.suppress(BaseLibp2pError):  # reset by the server: wanted
                    while await stream.read(1024):
                        pass
        await wait_until(lambda: a.stats().protocols[ECHO].violations == 5, what="5 violations")
        # Truncated frame then EOF: a broken stream, not a violation, and no handler call.
        stream = await host.new_stream(ID.from_base58(a.peer_id), [TProtocol(ECHO)])
        await stream.write(good[:20])
        await stream.close()
        # The host still serves well-formed requests on the same connection.
        assert await b.request(a.peer_id, ECHO, b"still up") == b.peer_id.encode() + b":pu llits"
        assert a.stats().protocols[ECHO].violations == 5
        assert a.is_connected(b.peer_id)


@bounded(30)
async def test_direct_messages_in_order_and_stream_recovery() -> None:
    got: list[tuple[str, bytes]] = []

    async def sink(peer: str, data: bytes) -> bytes:
        got.append((peer, data))
        return b"ignored"

    async with hosts(config("da"), config("db")) as (a, b):
        a.set_handler("/oml/test/direct/1", sink)
        await link(b, a)
        for i in range(200):
            await b.send(a.peer_id, "/oml/test/direct/1", b"%d" % i)
        await wait_until(lambda: len(got) == 200, what="200 direct messages")
        assert got == [(b.peer_id, b"%d" % i) for i in range(200)]
        # Kill the cached stream from the receiving side; the next send reopens.
        for stream in list(a._reqresp._in_direct.values()):
            await stream.reset()
        await trio.sleep(0.05)
        await b.send(a.peer_id, "/oml/test/direct/1", b"after reset")
        await wait_until(lambda: got[-1] == (b.peer_id, b"after reset"), what="send after reset")
        s = b.stats().protocols["/oml/test/direct/1"]
        assert s.direct_out == 201 and s.errors_out == 0
        with pytest.raises(RemoteError) as exc:
            await b.send(a.peer_id, "/oml/test/unknown/1", b"x")
        assert exc.value.code == ERR_UNSUPPORTED


@bounded(30)
async def test_unknown_or_down_peer_is_unreachable() -> None:
    async with hosts(config("ua")) as (a,):
        stranger = peer_id_from_seed(b"\x07" * 32)
        with pytest.raises(PeerUnreachable):
            await a.request(stranger, ECHO, b"x")
        with pytest.raises(PeerUnreachable):
            await a.send(stranger, ECHO, b"x")
        with pytest.raises(PeerUnreachable):
            await a.connect(f"/ip4/127.0.0.1/tcp/1/p2p/{stranger}")


@bounded(30)
async def test_stream_flood_from_one_peer_is_capped() -> None:
    from net._lib import ID, BaseLibp2pError, TProtocol
    from net.reqresp import MAX_OPENING_STREAMS_PER_PEER

    async with hosts(config("fa", stream_timeout_s=1.0), config("fb"), config("fc")) as (a, b, c):
        a.set_handler(ECHO, echo)
        await link(b, a)
        await link(c, a)
        host = b._host
        stalled = []
        for _ in range(MAX_OPENING_STREAMS_PER_PEER):
            stream = await host.new_stream(ID.from_base58(a.peer_id), [TProtocol(ECHO)])
            await stream.write(b"\x01")  # one header byte, then silence
            stalled.append(stream)
        await wait_until(
            lambda: a._reqresp._opening.get(b.peer_id) == MAX_OPENING_STREAMS_PER_PEER,
            what="stalled streams counted",
        )
        with trio.fail_after(3), contextlib.suppress(BaseLibp2pError):
            # Refused: reset at once (libp2p may report it while negotiating).
            extra = await host.new_stream(ID.from_base58(a.peer_id), [TProtocol(ECHO)])
            await extra.write(b"\x01")
            while await extra.read(1024):
                pass
        await wait_until(lambda: a.stats().protocols[ECHO].errors_in == 1, what="refusal counted")
        # Another peer is not affected, and the stalled streams time out and free their slots.
        assert await c.request(a.peer_id, ECHO, b"ok") == c.peer_id.encode() + b":ko"
        await wait_until(lambda: b.peer_id not in a._reqresp._opening, timeout=10, what="slots")
        assert await b.request(a.peer_id, ECHO, b"ok") == b.peer_id.encode() + b":ko"


@bounded(30)
async def test_send_all_reports_failures_per_peer() -> None:
    got: list[tuple[str, bytes]] = []

    async def sink(peer: str, data: bytes) -> bytes:
        got.append((peer, data))
        return b""

    async with hosts(config("s1"), config("s2"), config("s3")) as (a, b, c):
        b.set_handler("/oml/test/vote/1", sink)
        c.set_handler("/oml/test/vote/1", sink)
        await link(a, b)
        await link(a, c)
        stranger = peer_id_from_seed(b"\x09" * 32)
        failed = await a.send_all([b.peer_id, c.peer_id, stranger], "/oml/test/vote/1", b"v")
        assert set(failed) == {stranger} and isinstance(failed[stranger], PeerUnreachable)
        await wait_until(lambda: len(got) == 2, what="both votes")
        assert got == [(a.peer_id, b"v")] * 2  # one to B, one to C; the stranger failed alone
        with pytest.raises(MessageTooLarge):
            await a.send_all([b.peer_id], "/oml/test/vote/1", b"x" * (a._reqresp.max_msg_bytes + 1))
