"""Fetch a blob from several providers in parallel into a ChunkSink.

Steps of one :meth:`Fetcher.fetch`:

1. **Resume.** If the sink already holds the manifest, only its
   ``missing_chunks`` are fetched; a complete blob needs no network at all.
2. **Find providers.** HAVE to the connected peers (:func:`.client.find_providers`),
   skipping peers in the penalty box. None with the manifest: :class:`NoProviders`.
3. **Manifest.** From the providers in turn until one sends bytes that
   decode to a manifest with the wanted id; a provider that sends another is
   penalised. Nothing valid: :class:`BadManifest` if someone lied, else
   :class:`AllProvidersFailed`.
4. **Chunks.** The missing chunks are cut into contiguous ranges of
   ``range_chunks`` on one shared work queue. One worker per provider (up to
   ``max_providers``, complete copies first) keeps one stream open, takes
   the next range whenever fewer than ``pipeline`` of its ranges are in
   flight (so the provider never idles between ranges), and for every chunk
   that arrives checks length and hash against the manifest before the sink
   writes it (in a worker thread: hashing and disk writes release the GIL).

Failures, per provider: a chunk that does not match its hash, a frame over
the chunk's length or a malformed reply puts the provider in the penalty
box (it is not used again by fetches that share the box); a provider that
stalls past ``timeout``, vanishes, or refuses (unknown blob, missing chunk)
is dropped for this fetch only. Either way its worker ends and the chunks it
had not delivered go back to the front of the queue for the others; chunks
already verified and written stay written. When no worker is left and work
remains: :class:`AllProvidersFailed`. A failure of our own sink (quota,
blob collected meanwhile) stops the whole fetch with that error.

Memory is bounded by what is in flight, not by the blob: per provider one
chunk being checked and written plus what yamux buffers for its stream.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, TypeVar

import trio

from net import NetError, ProtocolViolation

from .client import BlobPeer, find_providers, open_peer
from .errors import BadChunk, BadManifest, StorageError
from .manifest import Manifest, chunk_hash
from .protocol import MAX_RANGE_CHUNKS, BadMessage, HaveEntry
from .source import ChunkSink

if TYPE_CHECKING:
    from net import Transport

log = logging.getLogger(__name__)
T = TypeVar("T")


class TransferError(StorageError):
    """A fetch could not complete."""

    code = "transfer_failed"


class NoProviders(TransferError):
    """No connected peer has the blob's manifest."""

    code = "no_providers"


class AllProvidersFailed(TransferError):
    """Every provider failed or was penalised before the blob was complete.

    ``failures`` maps each peer tried to the reason it was dropped; chunks
    already written stay on disk, so fetching again resumes.
    """

    code = "providers_failed"

    def __init__(self, message: str, failures: dict[str, str]) -> None:
        super().__init__(message)
        self.failures = dict(failures)


class PenaltyBox:
    """Peers caught sending bad data, with the first reason; share one per node.

    A penalised peer is not asked for anything by fetches that use this box.
    There is no expiry: the box lives as long as its owner (a node restart
    forgives).
    """

    def __init__(self) -> None:
        self._reasons: dict[str, str] = {}

    def penalise(self, peer: str, reason: str) -> None:
        self._reasons.setdefault(peer, reason)

    def __contains__(self, peer: object) -> bool:
        return peer in self._reasons

    def reasons(self) -> dict[str, str]:
        """Copy of ``{peer: reason}``."""
        return dict(self._reasons)


@dataclasses.dataclass(slots=True, kw_only=True)
class FetchProgress:
    """Live status of one fetch, updated in place (read it from RPC, draw a bar from it)."""

    blob_id: bytes
    state: str = "finding"
    """``finding`` -> ``manifest`` -> ``fetching`` -> ``done``, or ``failed``."""
    total_chunks: int = 0
    done_chunks: int = 0
    """Chunks verified and on disk, resumed ones included."""
    resumed_chunks: int = 0
    """Chunks that were on disk before this fetch started."""
    total_bytes: int = 0
    bytes_done: int = 0
    """Bytes of the chunks in ``done_chunks``."""
    bytes_fetched: int = 0
    """Bytes verified and written by this fetch (what came over the network and was kept)."""
    providers: dict[str, str] = dataclasses.field(default_factory=dict)
    """Every peer seen with the manifest -> ``known``, ``active``, ``done``,
    ``failed: why`` or ``penalised: why``."""
    chunks_from: dict[str, int] = dataclasses.field(default_factory=dict)
    """Chunks verified per provider."""
    penalised: dict[str, str] = dataclasses.field(default_factory=dict)
    """Peers penalised during this fetch, with the reason."""
    error: str | None = None


class _LocalFailure(Exception):
    """Our sink failed (quota, blob collected): stop the fetch, blame nobody."""

    def __init__(self, error: StorageError) -> None:
        super().__init__(str(error))
        self.error = error


class _Work:
    """The shared queue of chunk ranges; requeued chunks go to the front."""

    def __init__(self, missing: Sequence[int], range_chunks: int) -> None:
        self._range = range_chunks
        self._pending: deque[list[int]] = deque(_ranges(missing, range_chunks))
        self.remaining = len(missing)
        self._changed = trio.Event()

    @property
    def finished(self) -> bool:
        return self.remaining == 0

    def take(self) -> list[int] | None:
        return self._pending.popleft() if self._pending else None

    def give_back(self, indices: Iterable[int]) -> None:
        back = _ranges(sorted(indices), self._range)
        self._pending.extendleft(reversed(back))
        if back:
            self._notify()

    def chunk_done(self) -> None:
        self.remaining -= 1
        if self.remaining == 0:
            self._notify()

    def wake_all(self) -> None:
        self._notify()

    async def wait_changed(self) -> None:
        await self._changed.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()


def _ranges(indices: Sequence[int], size: int) -> list[list[int]]:
    """Ascending indices cut into runs of consecutive indices, each at most ``size`` long."""
    out: list[list[int]] = []
    for i in indices:
        if out and out[-1][-1] == i - 1 and len(out[-1]) < size:
            out[-1].append(i)
        else:
            out.append([i])
    return out


class Fetcher:
    """Fetches blobs over ``/oml/blob/1`` into one sink.

    Args:
        transport: the node's transport (providers are its connected peers).
        sink: where chunks go (a ``BlobStore``); must be thread-safe.
        penalties: shared penalty box (default: one per fetcher).
        range_chunks: chunks per CHUNKS request (the unit of work sharing).
        pipeline: ranges requested ahead per provider (2 hides the round trip).
        max_providers: providers pulled from in parallel.
        writers: chunks written to the sink at once (overlaps fsyncs; each
            holds one verified chunk in memory).
        timeout: deadline of each stream operation; a provider that sends
            nothing for this long is dropped.
        have_timeout: deadline of the HAVE query.
    """

    def __init__(
        self,
        transport: Transport,
        sink: ChunkSink,
        *,
        penalties: PenaltyBox | None = None,
        range_chunks: int = 8,
        pipeline: int = 2,
        max_providers: int = 4,
        writers: int = 4,
        timeout: float = 10.0,
        have_timeout: float = 5.0,
    ) -> None:
        if not 1 <= range_chunks <= MAX_RANGE_CHUNKS:
            raise ValueError(f"range_chunks must be in 1..{MAX_RANGE_CHUNKS}")
        if min(pipeline, max_providers, writers) < 1 or not min(timeout, have_timeout) > 0:
            raise ValueError("pipeline, max_providers, writers and timeouts must be positive")
        self._transport = transport
        self._sink = sink
        self.penalties = penalties if penalties is not None else PenaltyBox()
        self._range = range_chunks
        self._pipeline = pipeline
        self._max_providers = max_providers
        self._timeout = timeout
        self._have_timeout = have_timeout
        self._writers = writers
        self._threads = trio.CapacityLimiter(writers + 1)

    async def fetch(
        self,
        blob_id: bytes,
        *,
        progress: FetchProgress | None = None,
        on_progress: Callable[[FetchProgress], None] | None = None,
    ) -> Manifest:
        """Fetch ``blob_id`` until the sink holds every chunk; return its manifest.

        ``progress`` (created if not given) is updated in place and passed
        to ``on_progress`` after every change; keep the callback cheap.

        Raises:
            NoProviders: no connected peer has the manifest.
            BadManifest: every manifest offered was wrong (those peers are penalised).
            AllProvidersFailed: providers failed or lied before the blob was complete.
            QuotaExceeded, BlobNotFound, StorageError: our own sink failed.
        """
        if not isinstance(blob_id, bytes) or len(blob_id) != 32:
            raise BadMessage("blob id must be 32 bytes")
        run = _Run(self, blob_id, progress or FetchProgress(blob_id=blob_id), on_progress)
        try:
            return await run.go()
        except _LocalFailure as exc:
            run.fail(exc.error)
            raise exc.error from None
        except BaseException as exc:
            run.fail(exc)
            raise


class _Run:
    """The state of one fetch (kept off the Fetcher so fetches can run concurrently)."""

    def __init__(
        self,
        fetcher: Fetcher,
        blob_id: bytes,
        progress: FetchProgress,
        on_progress: Callable[[FetchProgress], None] | None,
    ) -> None:
        self.f = fetcher
        self.blob_id = blob_id
        self.progress = progress
        self._on_progress = on_progress
        self.failures: dict[str, str] = {}

    # ----------------------------------------------------------------- steps

    async def go(self) -> Manifest:
        sink = self.f._sink
        manifest: Manifest | None = None
        if await self._io(sink.has_manifest, self.blob_id):
            manifest = await self._io(sink.manifest, self.blob_id)
            missing = await self._io(sink.missing_chunks, self.blob_id)
            self._start(manifest, missing)
            if not missing:
                return self._finish(manifest)
        providers = await self._find()
        if manifest is None:
            self._set_state("manifest")
            manifest = await self._get_manifest(providers)
            await self._io(sink.add_manifest, manifest)
            missing = await self._io(sink.missing_chunks, self.blob_id)
            self._start(manifest, missing)
        await self._fetch_chunks(manifest, missing, providers)
        return self._finish(manifest)

    async def _find(self) -> dict[str, HaveEntry]:
        self._set_state("finding")
        found, failures = await find_providers(
            self.f._transport,
            self.blob_id,
            exclude=self.f.penalties.reasons(),
            timeout=self.f._have_timeout,
        )
        for peer in found:
            self.progress.providers.setdefault(peer, "known")
        if not found:
            detail = f"; failed: {failures}" if failures else ""
            raise NoProviders(f"no connected peer has blob {self.blob_id.hex()}{detail}")
        return found

    async def _get_manifest(self, providers: dict[str, HaveEntry]) -> Manifest:
        lied = False
        for peer in _rank(providers):
            try:
                with trio.fail_after(self.f._timeout * 2):
                    async with open_peer(self.f._transport, peer, timeout=self.f._timeout) as p:
                        manifest = await p.manifest(self.blob_id)
                        await p.end()
                return manifest
            except (BadManifest, BadMessage, ProtocolViolation) as exc:
                lied = True
                self._penalise(peer, f"bad manifest: {exc}")
            except (NetError, StorageError, trio.TooSlowError) as exc:
                self._dropped(peer, f"manifest: {exc}")
        if lied:
            raise BadManifest(f"no provider sent a valid manifest for {self.blob_id.hex()}")
        raise AllProvidersFailed("no provider delivered the manifest", self.failures)

    async def _fetch_chunks(
        self, manifest: Manifest, missing: list[int], providers: dict[str, HaveEntry]
    ) -> None:
        self._set_state("fetching")
        work = _Work(missing, self.f._range)
        usable = [
            p for p in _rank(providers) if p not in self.f.penalties and providers[p].present
        ][: self.f._max_providers]
        to_disk, from_workers = trio.open_memory_channel[tuple[int, bytes]](0)
        try:
            async with trio.open_nursery() as writers:
                for _ in range(self.f._writers):
                    writers.start_soon(self._writer, from_workers.clone(), work)
                from_workers.close()
                async with to_disk, trio.open_nursery() as workers:
                    for peer in usable:
                        workers.start_soon(self._worker, peer, manifest, work, to_disk)
        except BaseExceptionGroup as group:
            # Only our own sink's failure (or a bug) escapes a worker or writer;
            # the nurseries have cancelled the rest. Re-raise the first as itself.
            local = group.subgroup(lambda e: isinstance(e, _LocalFailure))
            if local is None:
                raise
            raise _first(local) from None
        if not work.finished:
            raise AllProvidersFailed(
                f"{work.remaining} chunks of {self.blob_id.hex()} left and no provider "
                f"remains: {self.failures}",
                self.failures,
            )

    # ---------------------------------------------------------------- worker

    async def _worker(
        self,
        peer: str,
        manifest: Manifest,
        work: _Work,
        to_disk: trio.MemorySendChannel[tuple[int, bytes]],
    ) -> None:
        """Pull ranges from one provider until the work is done or the provider fails."""
        self.progress.providers[peer] = "active"
        self._notify()
        outstanding: deque[deque[int]] = deque()
        try:
            async with open_peer(self.f._transport, peer, timeout=self.f._timeout) as p:
                await self._pull(p, manifest, work, outstanding, to_disk)
                await p.end()
            self.progress.providers[peer] = "done"
        except (BadChunk, BadMessage, ProtocolViolation) as exc:
            self._penalise(peer, str(exc))
        except (NetError, StorageError) as exc:
            self._dropped(peer, str(exc) or type(exc).__name__)
        finally:
            work.give_back(i for r in outstanding for i in r)
            self._notify()

    async def _pull(
        self,
        p: BlobPeer,
        manifest: Manifest,
        work: _Work,
        outstanding: deque[deque[int]],
        to_disk: trio.MemorySendChannel[tuple[int, bytes]],
    ) -> None:
        while True:
            while len(outstanding) < self.f._pipeline and (indices := work.take()) is not None:
                outstanding.append(deque(indices))  # before sending: a failure requeues it
                await p.request_chunks(self.blob_id, indices[0], len(indices))
            if not outstanding:
                if work.finished:
                    return
                await work.wait_changed()  # someone may fail and hand work back
                continue
            current = outstanding[0]
            index = current[0]
            data = await p.next_chunk(manifest.chunk_len(index), timeout=self.f._timeout)
            await trio.to_thread.run_sync(_verify, manifest, index, data)  # BadChunk
            # Verified: from here the chunk is written or the whole fetch fails,
            # so it leaves this provider's books before it reaches the disk.
            current.popleft()
            if not current:
                outstanding.popleft()
            self.progress.chunks_from[p.peer_id] = self.progress.chunks_from.get(p.peer_id, 0) + 1
            await to_disk.send((index, data))

    async def _writer(
        self, chunks: trio.MemoryReceiveChannel[tuple[int, bytes]], work: _Work
    ) -> None:
        """Write verified chunks to the sink; several writers overlap disk waits (fsync)."""
        async with chunks:
            async for index, data in chunks:
                await self._io(self.f._sink.write_chunk, self.blob_id, index, data)
                work.chunk_done()
                self.progress.done_chunks += 1
                self.progress.bytes_done += len(data)
                self.progress.bytes_fetched += len(data)
                self._notify()

    # --------------------------------------------------------------- helpers

    async def _io(self, fn: Callable[..., T], *args: object) -> T:
        """Run a blocking sink call in a worker thread. Its errors are ours, not
        a provider's (chunks reach the sink verified), so they stop the fetch."""
        try:
            return await trio.to_thread.run_sync(fn, *args, limiter=self.f._threads)
        except StorageError as exc:
            raise _LocalFailure(exc) from exc

    def _start(self, manifest: Manifest, missing: list[int]) -> None:
        p = self.progress
        p.total_chunks = manifest.chunk_count
        p.total_bytes = manifest.size
        missing_set = set(missing)
        p.resumed_chunks = p.done_chunks = manifest.chunk_count - len(missing)
        p.bytes_done = sum(
            manifest.chunk_len(i) for i in range(manifest.chunk_count) if i not in missing_set
        )
        self._notify()

    def _finish(self, manifest: Manifest) -> Manifest:
        self._set_state("done")
        return manifest

    def fail(self, exc: BaseException) -> None:
        self.progress.state = "failed"
        self.progress.error = str(exc) or type(exc).__name__
        self._notify()

    def _penalise(self, peer: str, reason: str) -> None:
        log.warning("penalising %s while fetching %s: %s", peer, self.blob_id.hex()[:16], reason)
        self.f.penalties.penalise(peer, reason)
        self.failures[peer] = f"penalised: {reason}"
        self.progress.penalised[peer] = reason
        self.progress.providers[peer] = f"penalised: {reason}"
        self._notify()

    def _dropped(self, peer: str, reason: str) -> None:
        log.info("dropping provider %s for %s: %s", peer, self.blob_id.hex()[:16], reason)
        self.failures[peer] = reason
        self.progress.providers[peer] = f"failed: {reason}"
        self._notify()

    def _set_state(self, state: str) -> None:
        self.progress.state = state
        self._notify()

    def _notify(self) -> None:
        if self._on_progress is not None:
            self._on_progress(self.progress)


def _verify(manifest: Manifest, index: int, data: bytes) -> None:
    """Check a received chunk against the manifest (in a worker thread: hashing releases the GIL).

    Raises:
        BadChunk: wrong length or hash; the provider is to blame.
    """
    if len(data) != manifest.chunk_len(index):
        raise BadChunk(f"chunk {index} is {len(data)} bytes, want {manifest.chunk_len(index)}")
    if chunk_hash(data) != manifest.chunk_hashes[index]:
        raise BadChunk(f"chunk {index} does not match its hash")


def _first(group: BaseExceptionGroup[BaseException]) -> BaseException:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


def _rank(found: dict[str, HaveEntry]) -> list[str]:
    """Complete copies first, then by how much they hold; ties by peer id (stable)."""
    return sorted(found, key=lambda peer: (not found[peer].complete, -found[peer].present, peer))
