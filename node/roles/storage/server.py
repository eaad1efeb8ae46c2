"""The provider side of ``/oml/blob/1``: answer HAVE, MANIFEST and CHUNKS from a ChunkSource.

One handler call serves one stream and answers its requests in order until
the fetcher closes its side. Reading a chunk blocks (disk, and BlobStore
re-hashes what it reads), so reads run in worker threads, one chunk ahead of
the network: while chunk i is being sent, chunk i + 1 is read. At most
``READ_AHEAD`` chunks per stream sit in memory, and the stream handler limit
(``max_streams``, ``max_streams_per_peer``) bounds the streams.

A request we cannot answer ends the stream with a typed ERROR frame (see
:mod:`.protocol`); the node carries on. A fetcher that stalls is cut off by
the stream deadline, one that resets simply ends its stream.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import trio

from net import HandlerError, StreamClosed

from .errors import BlobNotFound, StorageError
from .manifest import Manifest
from .protocol import (
    MAX_FRAME_BYTES,
    MAX_REQUEST_BYTES,
    PROTOCOL,
    BadMessage,
    GetChunks,
    GetManifest,
    Have,
    HaveEntry,
    decode_request,
    encode_have_reply,
    error_code,
)
from .source import ChunkSource

if TYPE_CHECKING:
    from net import FrameStream, Transport

log = logging.getLogger(__name__)
T = TypeVar("T")

READ_AHEAD = 2
"""Chunks read from disk ahead of the one being sent, per stream."""
IDLE_TIMEOUT = 30.0
"""How long a stream may wait for its next request before the provider hangs up."""


class BlobServer:
    """Serves one ChunkSource on ``/oml/blob/1``; counters for metrics."""

    def __init__(self, source: ChunkSource, *, max_threads: int = 4) -> None:
        self._source = source
        self._threads = trio.CapacityLimiter(max_threads)
        self.chunks_served = 0
        self.bytes_served = 0
        self.requests = 0
        self.errors = 0

    def register(
        self, transport: Transport, *, max_streams: int = 16, max_streams_per_peer: int = 4
    ) -> None:
        """Start serving on ``transport`` (replaces an earlier blob handler)."""
        transport.set_stream_handler(
            PROTOCOL,
            self.handle,
            max_frame_bytes=MAX_FRAME_BYTES,
            max_streams=max_streams,
            max_streams_per_peer=max_streams_per_peer,
        )

    async def handle(self, peer: str, stream: FrameStream) -> None:
        """Answer requests on one stream until the fetcher closes its side.

        Raises:
            HandlerError: a request we cannot answer (sent to the peer as an
                ERROR frame, which ends the stream).
            NetError: the peer stalled, vanished or broke the framing (the
                transport resets the stream).
        """
        while True:
            try:
                raw = await stream.receive(MAX_REQUEST_BYTES, timeout=IDLE_TIMEOUT)
            except StreamClosed:
                return
            self.requests += 1
            try:
                request = decode_request(raw)
                await self._answer(stream, request)
            except StorageError as exc:
                self.errors += 1
                log.debug("blob request from %s refused: %s", peer, exc)
                raise HandlerError(error_code(exc), str(exc)[:400]) from None

    async def _answer(self, stream: FrameStream, request: Have | GetManifest | GetChunks) -> None:
        if isinstance(request, Have):
            entries = [await self._run(self._have, blob_id) for blob_id in request.blob_ids]
            await stream.send(encode_have_reply(entries))
        elif isinstance(request, GetManifest):
            manifest = await self._run(self._source.manifest, request.blob_id)
            await stream.send(manifest.encode())
        else:
            await self._send_chunks(stream, request)

    def _have(self, blob_id: bytes) -> HaveEntry:
        try:
            if not self._source.has_manifest(blob_id):
                return HaveEntry(has_manifest=False, present=0, total=0)
            total = self._source.manifest(blob_id).chunk_count
            return HaveEntry(
                has_manifest=True, present=self._source.present_chunks(blob_id), total=total
            )
        except BlobNotFound:  # collected between the two calls
            return HaveEntry(has_manifest=False, present=0, total=0)

    async def _send_chunks(self, stream: FrameStream, request: GetChunks) -> None:
        manifest: Manifest = await self._run(self._source.manifest, request.blob_id)
        end = request.start + request.count
        if end > manifest.chunk_count:
            raise BadMessage(
                f"chunks {request.start}..{end - 1} beyond the blob's {manifest.chunk_count}"
            )
        # A storage error is passed down the channel rather than raised in the
        # reader task, so it reaches the handler as itself, not in a group.
        send, receive = trio.open_memory_channel[bytes | StorageError](READ_AHEAD - 1)

        async def read_ahead() -> None:
            async with send:
                for index in range(request.start, end):
                    try:
                        data = await self._run(self._source.read_chunk, request.blob_id, index)
                    except StorageError as exc:
                        await send.send(exc)
                        return
                    await send.send(data)

        try:
            async with receive, trio.open_nursery() as nursery:
                # The nursery exits first: on an error the reader is cancelled
                # before the channel closes under it.
                nursery.start_soon(read_ahead)
                async for item in receive:
                    if isinstance(item, StorageError):
                        raise item
                    await stream.send(item, hashed=False)
                    self.chunks_served += 1
                    self.bytes_served += len(item)
        except BaseExceptionGroup as group:
            raise _sole(group) from None

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        return await trio.to_thread.run_sync(fn, *args, limiter=self._threads)


def _sole(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one exception in a (nested) group; the group itself if it holds several."""
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc
