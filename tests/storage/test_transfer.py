"""/oml/blob/1 between real libp2p hosts on loopback, over real BlobStores in tmp dirs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from consensus.encoding import encode
from net import PeerUnreachable, RemoteError, StreamClosed
from node.roles.storage.errors import BadManifest, BlobNotFound, QuotaExceeded
from node.roles.storage.protocol import (
    ERR_BAD_REQUEST,
    ERR_TOO_LARGE,
    MAX_FRAME_BYTES,
    PROTOCOL,
    RequestRejected,
)
from node.roles.storage.transfer import (
    AllProvidersFailed,
    Fetcher,
    FetchProgress,
    NoProviders,
    PenaltyBox,
    ask_have,
    open_peer,
)

from .transfer_helpers import (
    CS,
    CorruptingSource,
    SlowSource,
    StallingSource,
    Stores,
    WrongManifestSource,
    assemble,
    blob,
    hosts,
    link,
    serve,
)

UNKNOWN = bytes(range(32))


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[Stores]:
    s = Stores(tmp_path)
    yield s
    s.close()


async def test_fetch_from_one_provider_with_progress(stores: Stores) -> None:
    data, m = blob(20 * CS + 1234)
    with trio.fail_after(60):
        async with hosts("one-p", "one-f") as (p, f):
            serve(p, stores.holding(data, m))
            await link(f, p)
            sink = stores.new()
            seen: list[tuple[str, int]] = []
            progress = FetchProgress(blob_id=m.blob_id)
            got = await Fetcher(f, sink, timeout=3).fetch(
                m.blob_id,
                progress=progress,
                on_progress=lambda pr: seen.append((pr.state, pr.done_chunks)),
            )
            assert got == m and assemble(sink, m.blob_id) == data
            assert progress.state == "done" and progress.done_chunks == m.chunk_count == 21
            assert progress.bytes_done == progress.bytes_fetched == len(data)
            assert progress.chunks_from == {p.peer_id: 21}
            assert progress.providers == {p.peer_id: "done"}
            assert [s for s, _ in seen][0] == "finding" and seen[-1] == ("done", 21)
            assert all(n == 1 for n in sink.writes.values()) and len(sink.writes) == 21
            # HAVE, MANIFEST and CHUNKS: three streams, none failed on the provider.
            stats = p.stats().protocols[PROTOCOL]
            assert stats.streams_in == 3 and stats.errors_in == stats.violations == 0


async def test_three_providers_share_the_work(stores: Stores) -> None:
    data, m = blob(48 * CS, seed=3)
    with trio.fail_after(60):
        async with hosts("tri-a", "tri-b", "tri-c", "tri-f") as (*providers, f):
            sources = [stores.holding(data, m) for _ in providers]
            for t, s in zip(providers, sources, strict=True):
                serve(t, s)
                await link(f, t)
            sink = stores.new()
            progress = FetchProgress(blob_id=m.blob_id)
            await Fetcher(f, sink, range_chunks=4, timeout=3).fetch(m.blob_id, progress=progress)
            assert assemble(sink, m.blob_id) == data
            assert all(sum(s.reads.values()) > 0 for s in sources), "every provider got work"
            assert set(progress.chunks_from) == {t.peer_id for t in providers}
            assert sum(progress.chunks_from.values()) == 48
            assert sink.writes == {i: 1 for i in range(48)}


async def test_lying_provider_is_penalised_and_the_blob_completes(stores: Stores) -> None:
    data, m = blob(32 * CS, seed=4)
    with trio.fail_after(60):
        async with hosts("liar", "honest", "lie-f") as (liar, honest, f):
            liar_source = CorruptingSource(stores.holding(data, m))
            serve(liar, liar_source)
            serve(honest, stores.holding(data, m))
            await link(f, liar)
            await link(f, honest)
            sink = stores.new()
            box = PenaltyBox()
            progress = FetchProgress(blob_id=m.blob_id)
            await Fetcher(f, sink, penalties=box, range_chunks=4, timeout=3).fetch(
                m.blob_id, progress=progress
            )
            assert assemble(sink, m.blob_id) == data
            assert liar.peer_id in box and "hash" in box.reasons()[liar.peer_id]
            assert progress.penalised.keys() == {liar.peer_id}
            assert progress.providers[liar.peer_id].startswith("penalised")
            assert progress.chunks_from == {honest.peer_id: 32}
            assert sink.writes == {i: 1 for i in range(32)}
            # A later fetch sharing the box does not even ask the liar.
            _, m2 = blob(4 * CS, seed=5)
            reads_before = sum(liar_source.inner.reads.values())
            with pytest.raises(NoProviders):
                await Fetcher(f, stores.new(), penalties=box).fetch(m2.blob_id)
            assert sum(liar_source.inner.reads.values()) == reads_before


async def test_provider_vanishing_mid_transfer_keeps_verified_chunks(stores: Stores) -> None:
    data, m = blob(48 * CS, seed=6)
    sink = stores.new()
    stop_a = trio.Event()
    sink.on_write = lambda i: (  # runs in the fetcher's worker thread
        trio.from_thread.run_sync(stop_a.set) if sum(sink.writes.values()) >= 10 else None
    )
    source_a = SlowSource(stores.holding(data, m), 0.01)
    with trio.fail_after(60):
        async with hosts("van-b", "van-f") as (b, f), trio.open_nursery() as nursery:
            a_ready = trio.Event()
            a_box: list = []

            async def run_a() -> None:
                async with hosts("van-a") as (a,):
                    serve(a, source_a)
                    a_box.append(a)
                    a_ready.set()
                    await stop_a.wait()  # leaving the block closes A's transport

            nursery.start_soon(run_a)
            await a_ready.wait()
            a = a_box[0]
            serve(b, SlowSource(stores.holding(data, m), 0.01))
            await link(f, a)
            await link(f, b)
            progress = FetchProgress(blob_id=m.blob_id)
            await Fetcher(f, sink, range_chunks=4, timeout=2).fetch(m.blob_id, progress=progress)
        assert assemble(sink, m.blob_id) == data
        assert sink.writes == {i: 1 for i in range(48)}, "no verified chunk fetched twice"
        assert 0 < progress.chunks_from.get(a.peer_id, 0) < 48
        assert progress.providers[a.peer_id].startswith("failed")
        assert progress.chunks_from[b.peer_id] + progress.chunks_from[a.peer_id] == 48


async def test_stalled_provider_is_dropped_after_the_deadline(stores: Stores) -> None:
    data, m = blob(24 * CS, seed=7)
    stalling = StallingSource(stores.holding(data, m), serve=3)
    with trio.fail_after(60):
        async with hosts("stall-a", "stall-b", "stall-f") as (a, b, f):
            serve(a, stalling)
            serve(b, stores.holding(data, m))
            await link(f, a)
            await link(f, b)
            sink = stores.new()
            progress = FetchProgress(blob_id=m.blob_id)
            t0 = trio.current_time()
            try:
                await Fetcher(f, sink, range_chunks=4, timeout=1.0).fetch(
                    m.blob_id, progress=progress
                )
            finally:
                stalling.release.set()
            assert assemble(sink, m.blob_id) == data
            assert "timed out" in progress.providers[a.peer_id]
            assert a.peer_id not in progress.penalised  # slow is not dishonest
            assert trio.current_time() - t0 < 15


async def test_resume_fetches_only_missing_chunks(stores: Stores) -> None:
    data, m = blob(16 * CS, seed=8)
    with trio.fail_after(60):
        async with hosts("res-p", "res-f") as (p, f):
            served = stores.holding(data, m)
            serve(p, served)
            await link(f, p)
            sink = stores.holding(data, m, chunks=range(0, 16, 2))  # even chunks on disk
            progress = FetchProgress(blob_id=m.blob_id)
            await Fetcher(f, sink, timeout=3).fetch(m.blob_id, progress=progress)
            assert assemble(sink, m.blob_id) == data
            assert set(served.reads) == set(range(1, 16, 2)) and sink.writes.keys() == set(
                range(1, 16, 2)
            )
            assert progress.resumed_chunks == 8 and progress.done_chunks == 16
            # Complete already: no provider needed at all.
            async with hosts("res-alone") as (alone,):
                again = await Fetcher(alone, sink).fetch(m.blob_id)
                assert again == m


async def test_unknown_blob_and_bad_manifest_are_typed_errors(stores: Stores) -> None:
    data, m = blob(4 * CS, seed=9)
    _, other = blob(4 * CS, seed=10)  # same shape, other bytes: only the id tells
    with trio.fail_after(60):
        async with hosts("unk-p", "unk-f") as (p, f):
            serve(p, WrongManifestSource(stores.holding(data, m), other))
            await link(f, p)
            with pytest.raises(NoProviders):
                await Fetcher(f, stores.new()).fetch(UNKNOWN)
            async with open_peer(f, p.peer_id) as peer:
                with pytest.raises(BlobNotFound):
                    await peer.manifest(UNKNOWN)
            async with open_peer(f, p.peer_id) as peer:
                await peer.request_chunks(UNKNOWN, 0, 1)
                with pytest.raises(BlobNotFound):
                    await peer.next_chunk(CS)
            box = PenaltyBox()
            with pytest.raises(BadManifest):
                await Fetcher(f, stores.new(), penalties=box).fetch(m.blob_id)
            assert p.peer_id in box


async def test_bad_requests_get_typed_errors_and_the_server_keeps_serving(stores: Stores) -> None:
    data, m = blob(4 * CS, seed=11)
    with trio.fail_after(60):
        async with hosts("bad-p", "bad-f") as (p, f):
            server = serve(p, stores.holding(data, m))
            await link(f, p)

            async def raw(request: bytes) -> RemoteError | BaseException:
                async with f.open_stream(p.peer_id, PROTOCOL, max_frame_bytes=MAX_FRAME_BYTES) as s:
                    await s.send(request)
                    try:
                        await s.receive()
                    except (RemoteError, PeerUnreachable, StreamClosed) as exc:
                        return exc
                raise AssertionError("no error")

            too_many = await raw(encode([3, m.blob_id, 0, 1000]))
            assert isinstance(too_many, RemoteError) and too_many.code == ERR_TOO_LARGE
            many_ids = await raw(encode([1, [m.blob_id] * 65]))
            assert isinstance(many_ids, RemoteError) and many_ids.code == ERR_TOO_LARGE
            for junk in (b"\xff\x00", encode([9, b""]), encode([3, m.blob_id, 3, 2])):
                exc = await raw(junk)
                assert isinstance(exc, RemoteError) and exc.code == ERR_BAD_REQUEST, junk
            oversize = await raw(bytes(64 * 1024))  # over the request frame cap: reset
            assert isinstance(oversize, (PeerUnreachable, StreamClosed))
            async with open_peer(f, p.peer_id) as peer:  # the typed mapping on the client
                await peer.stream.send(encode([3, m.blob_id, 0, 1000]))
                with pytest.raises(RequestRejected) as rejected:
                    await peer.next_chunk(CS)
                assert rejected.value.remote_code == ERR_TOO_LARGE
            # Still serving.
            (entry,) = await ask_have(f, p.peer_id, [m.blob_id])
            assert entry.complete and entry.total == 4
            sink = stores.new()
            await Fetcher(f, sink).fetch(m.blob_id)
            assert assemble(sink, m.blob_id) == data
            assert server.errors >= 6


async def test_all_providers_failing_is_a_typed_error_and_resumable(stores: Stores) -> None:
    data, m = blob(16 * CS, seed=12)
    with trio.fail_after(60):
        async with hosts("fail-p", "fail-f") as (p, f):
            # Holds only the first half: the fetch gets those, then the provider
            # answers CHUNK_MISSING and no one is left.
            serve(p, stores.holding(data, m, chunks=range(8)))
            await link(f, p)
            sink = stores.new()
            with pytest.raises(AllProvidersFailed) as exc:
                await Fetcher(f, sink, range_chunks=4, timeout=3).fetch(m.blob_id)
            assert p.peer_id in exc.value.failures
            assert set(sink.writes) == set(range(8))
            assert sink.missing_chunks(m.blob_id) == list(range(8, 16))


async def test_our_own_full_disk_stops_the_fetch_and_blames_no_provider(stores: Stores) -> None:
    data, m = blob(8 * CS, seed=13)
    with trio.fail_after(60):
        async with hosts("quota-p", "quota-f") as (p, f):
            serve(p, stores.holding(data, m))
            await link(f, p)
            sink = stores.new(quota_bytes=3 * CS)
            box = PenaltyBox()
            progress = FetchProgress(blob_id=m.blob_id)
            with pytest.raises(QuotaExceeded):
                await Fetcher(f, sink, penalties=box, range_chunks=2).fetch(
                    m.blob_id, progress=progress
                )
            assert progress.state == "failed" and "quota" in (progress.error or "")
            assert not box.reasons() and not progress.penalised
            assert 0 < len(sink.writes) <= 3
