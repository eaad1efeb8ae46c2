"""Bulk streams (net/streams.py) between real hosts on loopback."""

from __future__ import annotations

import os

import pytest
import trio
from net_helpers import bounded, config, hosts, link, wait_until

from net import (
    ERR_BUSY,
    ERR_HANDLER_FAILED,
    ERR_UNSUPPORTED,
    FrameStream,
    HandlerError,
    MessageTooLarge,
    NetUsageError,
    PeerUnreachable,
    ProtocolViolation,
    RemoteError,
    RequestTimeout,
    StreamClosed,
)

BULK = "/oml/test/bulk/1"
MiB = 1 << 20


async def echo_frames(peer: str, stream: FrameStream) -> None:
    """Answer every frame with the same bytes until the peer closes its side."""
    while True:
        try:
            data = await stream.receive()
        except StreamClosed:
            return
        if data == b"fail":
            raise HandlerError(404, "no such thing")
        if data == b"crash":
            raise KeyError("handler bug")
        await stream.send(data, hashed=len(data) < 1000)


@bounded(40)
async def test_frames_both_ways_then_clean_close() -> None:
    async with hosts(config("sa", max_msg_bytes=2 * MiB), config("sb")) as (a, b):
        a.set_stream_handler(BULK, echo_frames)
        await link(b, a)
        frames = [b"hello", b"", os.urandom(MiB), os.urandom(2 * MiB)]
        async with b.open_stream(a.peer_id, BULK, max_frame_bytes=2 * MiB) as s:
            for f in frames:
                await s.send(f, hashed=False)
            await s.close()
            got = [await s.receive() for _ in frames]
            with pytest.raises(StreamClosed):
                await s.receive()
            assert s.remote_done
        assert got == frames
        sa, sb = a.stats().protocols[BULK], b.stats().protocols[BULK]
        assert sa.streams_in == 1 and sb.streams_out == 1
        assert sa.stream_bytes_in == sb.stream_bytes_out == sum(map(len, frames))
        assert sa.violations == sa.errors_in == 0


@bounded(40)
async def test_server_streams_many_frames_back_to_back() -> None:
    n, size = 40, 256 * 1024

    async def produce(peer: str, stream: FrameStream) -> None:
        count = int(await stream.receive(16))
        for i in range(count):
            await stream.send(i.to_bytes(4, "big") + bytes(size - 4), hashed=False)

    async with hosts(config("pa"), config("pb")) as (a, b):
        a.set_stream_handler(BULK, produce)
        await link(b, a)
        async with b.open_stream(a.peer_id, BULK) as s:
            await s.send(str(n).encode())
            for i in range(n):
                frame = await s.receive(size)
                assert len(frame) == size and int.from_bytes(frame[:4], "big") == i
            with pytest.raises(StreamClosed):
                await s.receive()


@bounded(40)
async def test_handler_errors_reach_the_peer_typed() -> None:
    async with hosts(config("ea"), config("eb")) as (a, b):
        a.set_stream_handler(BULK, echo_frames)
        await link(b, a)
        async with b.open_stream(a.peer_id, BULK) as s:
            await s.send(b"ok")
            assert await s.receive() == b"ok"
            await s.send(b"fail")
            with pytest.raises(RemoteError) as exc:
                await s.receive()
            assert (exc.value.code, exc.value.message) == (404, "no such thing")
        async with b.open_stream(a.peer_id, BULK) as s:
            await s.send(b"crash")
            with pytest.raises(RemoteError) as exc:
                await s.receive()
            assert exc.value.code == ERR_HANDLER_FAILED and "KeyError" not in exc.value.message
        with pytest.raises(RemoteError) as exc:
            async with b.open_stream(a.peer_id, "/oml/test/nobody/1"):
                pass
        assert exc.value.code == ERR_UNSUPPORTED


@bounded(40)
async def test_frozen_reader_hits_the_senders_deadline() -> None:
    """A peer that stops reading must not hang the sender: its send times out."""
    outcome: list[BaseException] = []
    done = trio.Event()

    async def flood(peer: str, stream: FrameStream) -> None:
        await stream.receive()
        block = bytes(MiB)
        try:
            with trio.fail_after(20):  # the test's own guard; the stream deadline is 1 s
                while True:
                    await stream.send(block, hashed=False, timeout=1.0)
        except RequestTimeout as exc:
            outcome.append(exc)
            raise
        finally:
            done.set()

    async with hosts(config("fa"), config("fb")) as (a, b):
        a.set_stream_handler(BULK, flood)
        await link(b, a)
        async with b.open_stream(a.peer_id, BULK) as s:
            await s.send(b"go")
            t0 = trio.current_time()
            with trio.fail_after(15):
                await done.wait()  # we never read: the window fills, the server gives up
            assert trio.current_time() - t0 < 10
        assert len(outcome) == 1 and isinstance(outcome[0], RequestTimeout)
        await wait_until(lambda: a.stats().protocols[BULK].errors_in == 1, what="counted")


@bounded(30)
async def test_silent_peer_hits_the_readers_deadline() -> None:
    release = trio.Event()

    async def silent(peer: str, stream: FrameStream) -> None:
        await release.wait()

    async with hosts(config("ra"), config("rb")) as (a, b):
        a.set_stream_handler(BULK, silent)
        await link(b, a)
        async with b.open_stream(a.peer_id, BULK, timeout=5.0) as s:
            t0 = trio.current_time()
            with pytest.raises(RequestTimeout) as exc:
                await s.receive(timeout=0.5)
            assert 0.4 < trio.current_time() - t0 < 3 and exc.value.timeout == 0.5
            with pytest.raises(StreamClosed):  # a timed-out stream is dead
                await s.receive()
        release.set()


@bounded(40)
async def test_oversize_frame_is_refused_and_server_keeps_serving() -> None:
    async with hosts(config("oa", max_msg_bytes=64 * 1024), config("ob")) as (a, b):
        a.set_stream_handler(BULK, echo_frames)
        await link(b, a)
        async with b.open_stream(a.peer_id, BULK, max_frame_bytes=MiB) as s:
            with pytest.raises(MessageTooLarge):
                await s.send(bytes(MiB + 1))  # over our own cap: nothing sent
            await s.send(bytes(100 * 1024))  # over the server's 64 KiB cap
            with pytest.raises((PeerUnreachable, StreamClosed)):
                await s.receive()
        await wait_until(lambda: a.stats().protocols[BULK].violations == 1, what="violation")
        async with b.open_stream(a.peer_id, BULK) as s:  # the server carries on
            await s.send(b"still there")
            assert await s.receive() == b"still there"
            await s.close()
            with pytest.raises(StreamClosed):
                await s.receive()
        async with b.open_stream(a.peer_id, BULK) as s:  # a reader-side cap per call
            await s.send(bytes(2000), hashed=False)
            with pytest.raises(ProtocolViolation):
                await s.receive(1000)


@bounded(40)
async def test_inbound_streams_are_bounded_per_peer() -> None:
    release = trio.Event()
    entered = trio.Event()

    async def hold(peer: str, stream: FrameStream) -> None:
        entered.set()
        await release.wait()
        await stream.send(b"done")

    async with hosts(config("ba"), config("bb")) as (a, b):
        a.set_stream_handler(BULK, hold, max_streams_per_peer=1)
        await link(b, a)
        async with b.open_stream(a.peer_id, BULK) as first:
            await first.send(b"x")
            await entered.wait()
            async with b.open_stream(a.peer_id, BULK) as second:
                with pytest.raises(RemoteError) as exc:
                    await second.receive()
                assert exc.value.code == ERR_BUSY
            release.set()
            assert await first.receive() == b"done"


def test_yamux_frames_fit_one_noise_message() -> None:
    """net/_lib.py caps yamux frames so each travels as one Noise message."""
    from net import _lib

    assert _lib._yamux.MAX_MESSAGE_SIZE == _lib.MAX_PLAINTEXT_LENGTH == 65519
    assert os.environ["PY_YAMUX_RELEASE_ON_READ"] == "0"


@bounded(30)
async def test_usage_errors() -> None:
    async def noop(peer: str, data: bytes) -> bytes:
        return data

    async with hosts(config("ua")) as (a,):
        a.set_handler("/oml/test/req/1", noop)
        with pytest.raises(NetUsageError):
            a.set_stream_handler("/oml/test/req/1", echo_frames)
        a.set_stream_handler(BULK, echo_frames)
        with pytest.raises(NetUsageError):
            a.set_handler(BULK, noop)
        for kw in ({"max_frame_bytes": 0}, {"max_streams": 0}, {"max_streams_per_peer": -1}):
            with pytest.raises(NetUsageError):
                a.set_stream_handler("/oml/test/other/1", echo_frames, **kw)  # type: ignore[arg-type]
        with pytest.raises(NetUsageError):
            async with a.open_stream("not-a-peer", BULK):
                pass
