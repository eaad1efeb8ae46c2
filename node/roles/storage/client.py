"""The fetcher's side of ``/oml/blob/1``: typed calls over one stream, and the HAVE query.

Provider discovery is a query, not gossip: :func:`find_providers` asks every
connected peer (``Transport.connected_peers()``) with one HAVE on a short
deadline, concurrently. On a testnet of a handful of nodes that costs one
round trip per peer per fetch and no background traffic; a node that is
not connected to a provider does not find it (it would need a peer list
or a relay, which this protocol does not do).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import trio

from net import ERR_UNSUPPORTED, NetError, RemoteError, StreamClosed

from .errors import BadManifest, StorageError
from .manifest import Manifest
from .protocol import (
    MAX_FRAME_BYTES,
    MAX_HAVE_REPLY_BYTES,
    PROTOCOL,
    GetChunks,
    GetManifest,
    Have,
    HaveEntry,
    decode_have_reply,
    encode_request,
    remote_error,
)

if TYPE_CHECKING:
    from net import FrameStream, Transport


class BlobPeer:
    """Requests to one provider over one open stream.

    Errors: a provider's typed refusal comes out as the matching
    :class:`StorageError` (``BlobNotFound``, ``ChunkMissing``,
    ``RequestRejected``, ``ProviderFailed``) and ends the stream; transport
    failures come out as :class:`net.NetError` (``RequestTimeout``,
    ``PeerUnreachable``, ``ProtocolViolation``, ``StreamClosed``).
    """

    def __init__(self, stream: FrameStream) -> None:
        self.stream = stream
        self.peer_id = stream.peer_id

    async def _receive(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            return await self.stream.receive(max_bytes, timeout=timeout)
        except RemoteError as exc:
            raise remote_error(exc.code, exc.message) from None

    async def have(self, blob_ids: Iterable[bytes]) -> list[HaveEntry]:
        """What the provider holds of each blob, in order.

        Raises:
            BadMessage: malformed reply (the peer's fault); see the class for the rest.
        """
        request = Have(blob_ids=tuple(blob_ids))
        await self.stream.send(encode_request(request))
        return decode_have_reply(await self._receive(MAX_HAVE_REPLY_BYTES), len(request.blob_ids))

    async def manifest(self, blob_id: bytes) -> Manifest:
        """The blob's manifest, checked against ``blob_id``.

        Raises:
            BadManifest: malformed, or it is the manifest of another blob.
        """
        await self.stream.send(encode_request(GetManifest(blob_id=blob_id)))
        manifest = Manifest.decode(await self._receive(MAX_FRAME_BYTES))
        if manifest.blob_id != blob_id:
            raise BadManifest(f"{self.peer_id} sent the manifest of another blob")
        return manifest

    async def request_chunks(self, blob_id: bytes, start: int, count: int) -> None:
        """Ask for a range; read it with :meth:`next_chunk`, one call per chunk, in order."""
        await self.stream.send(encode_request(GetChunks(blob_id=blob_id, start=start, count=count)))

    async def next_chunk(self, length: int, timeout: float | None = None) -> bytes:
        """The next chunk frame of the requested ranges, at most ``length`` bytes.

        A longer frame resets the stream (``ProtocolViolation``); a shorter
        one is returned and fails the caller's hash check. A clean EOF here
        means the provider stopped mid-range (LIBP2P.md: a killed peer can
        look like one), so it is an error, not an end.
        """
        return await self._receive(length, timeout)

    async def end(self, timeout: float = 2.0) -> None:
        """Close our side and wait for the provider's EOF, so both ends finish cleanly."""
        await self.stream.close()
        try:
            await self.stream.receive(0, timeout=timeout)
        except StreamClosed:
            return
        except (NetError, StorageError):
            await self.stream.reset()


@asynccontextmanager
async def open_peer(
    transport: Transport, peer: str, *, timeout: float | None = None
) -> AsyncIterator[BlobPeer]:
    """A :class:`BlobPeer` on a fresh ``/oml/blob/1`` stream to ``peer``."""
    async with transport.open_stream(
        peer, PROTOCOL, max_frame_bytes=MAX_FRAME_BYTES, timeout=timeout
    ) as stream:
        yield BlobPeer(stream)


async def ask_have(
    transport: Transport, peer: str, blob_ids: Iterable[bytes], *, timeout: float = 5.0
) -> list[HaveEntry]:
    """One HAVE to one peer on its own stream.

    Raises:
        NetError, StorageError: as :class:`BlobPeer`.
    """
    with trio.fail_after(timeout * 2):  # open + exchange + end, each under ``timeout``
        async with open_peer(transport, peer, timeout=timeout) as p:
            entries = await p.have(blob_ids)
            await p.end(timeout)
            return entries


async def find_providers(
    transport: Transport,
    blob_id: bytes,
    *,
    exclude: Iterable[str] = (),
    timeout: float = 5.0,
) -> tuple[dict[str, HaveEntry], dict[str, str]]:
    """Ask every connected peer (but ``exclude``) whether it holds ``blob_id``.

    Returns ``(providers, failures)``: the peers that have the manifest with
    what they hold, and the peers that did not answer properly with why
    (peers that do not serve the protocol are left out of both).
    """
    skip = set(exclude)
    peers = [p.peer_id for p in transport.connected_peers() if p.peer_id not in skip]
    found: dict[str, HaveEntry] = {}
    failures: dict[str, str] = {}

    async def ask(peer: str) -> None:
        try:
            (entry,) = await ask_have(transport, peer, [blob_id], timeout=timeout)
        except RemoteError as exc:
            if exc.code != ERR_UNSUPPORTED:  # e.g. busy: it may hold the blob, but not now
                failures[peer] = f"error {exc.code}: {exc.message}"
            return
        except (NetError, StorageError, trio.TooSlowError) as exc:
            failures[peer] = str(exc) or type(exc).__name__
            return
        if entry.has_manifest:
            found[peer] = entry

    async with trio.open_nursery() as nursery:
        for peer in peers:
            nursery.start_soon(ask, peer)
    return found, failures
