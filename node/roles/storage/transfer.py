"""Blob transfer over libp2p: protocol ``/oml/blob/1`` (the public face of the pieces).

- :mod:`.protocol`: the wire messages, limits and error codes (sans-IO).
- :mod:`.server`: :class:`BlobServer` answers HAVE / MANIFEST / CHUNKS from a
  :class:`ChunkSource` (``BlobStore.serve`` side).
- :mod:`.client`: typed calls over one stream, and :func:`find_providers`
  (a HAVE query to every connected peer).
- :mod:`.fetcher`: :class:`Fetcher` pulls a blob from several providers in
  parallel into a :class:`ChunkSink`, verifying every chunk, penalising
  liars and resuming from what is on disk.

Typical wiring (the daemon's storage role)::

    store = BlobStore.open(home / "blobs", quota_bytes=...)
    BlobServer(store).register(transport)
    fetcher = Fetcher(transport, store, penalties=PenaltyBox())
    manifest = await fetcher.fetch(blob_id, on_progress=lambda p: ...)

See docs/storage.md for the protocol, the failure handling and the benchmark.
"""

from __future__ import annotations

from .client import BlobPeer as BlobPeer
from .client import ask_have as ask_have
from .client import find_providers as find_providers
from .client import open_peer as open_peer
from .fetcher import AllProvidersFailed as AllProvidersFailed
from .fetcher import Fetcher as Fetcher
from .fetcher import FetchProgress as FetchProgress
from .fetcher import NoProviders as NoProviders
from .fetcher import PenaltyBox as PenaltyBox
from .fetcher import TransferError as TransferError
from .protocol import MAX_HAVE_IDS as MAX_HAVE_IDS
from .protocol import MAX_RANGE_CHUNKS as MAX_RANGE_CHUNKS
from .protocol import PROTOCOL as PROTOCOL
from .protocol import BadMessage as BadMessage
from .protocol import HaveEntry as HaveEntry
from .protocol import ProviderFailed as ProviderFailed
from .protocol import RequestRejected as RequestRejected
from .protocol import RequestTooLarge as RequestTooLarge
from .server import BlobServer as BlobServer
from .source import ChunkSink as ChunkSink
from .source import ChunkSource as ChunkSource
