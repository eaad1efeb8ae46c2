"""Block sync: serve committed blocks to peers, and fetch them when behind.

Gossip never recovers what a node missed while it was down (LIBP2P.md), so a
node that restarts, or a fresh full node starting from genesis, catches up
over a request/response protocol instead:

``/oml/blocksync/1.0.0``, canonical-encoded messages::

    request  [0]                  -> [base, height]          status
    request  [1, from, to]        -> [[block, commit], ...]  blocks from..to
    error    (any request)        -> [255, reason-utf8]

A block range answer holds at most :data:`MAX_BLOCKS_PER_RESPONSE` blocks and
stops early below the size cap, so one answer always fits a stream message.
The commit for block ``h`` is the +2/3 precommits for it (from block h+1, or
the node's own seen commit for its latest block).

This module moves bytes and chooses peers; it does not verify anything. The
daemon passes in a ``commit_fetched`` callback that verifies each block
against its commit and the validator set (``consensus.catchup``) and applies
it; a peer whose blocks fail verification is skipped for a while.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import trio

from consensus.encoding import (
    DecodeError,
    decode,
    encode,
    expect_bytes,
    expect_int,
    expect_list,
)
from net.errors import NetError

log = logging.getLogger(__name__)

SYNC_PROTOCOL = "/oml/blocksync/1.0.0"
REQ_STATUS = 0
REQ_BLOCKS = 1
RESP_ERROR = 255
MAX_BLOCKS_PER_RESPONSE = 64
#: Blocks are added to an answer while it stays below this size.
MAX_RESPONSE_BYTES = 2 * 1024 * 1024
MAX_REQUEST_BYTES = 64


class SyncError(Exception):
    """Base of block-sync errors."""


class SyncProtocolError(SyncError):
    """A peer sent a malformed request or answer (peer misbehaviour)."""


class BlockSource(Protocol):
    """What the server side needs from the block store."""

    def sync_base(self) -> int: ...  # lowest height served (1 when nothing is pruned)

    def sync_height(self) -> int: ...  # latest committed height

    def sync_block(self, height: int) -> tuple[bytes, bytes] | None: ...  # (block, commit)


# --- codec -----------------------------------------------------------------


def encode_status_request() -> bytes:
    return encode([REQ_STATUS])


def encode_blocks_request(first: int, last: int) -> bytes:
    return encode([REQ_BLOCKS, first, last])


def decode_status(data: bytes) -> tuple[int, int]:
    """Decode a status answer into (base, height)."""
    try:
        v = expect_list(decode(data, MAX_REQUEST_BYTES), what="status")
        if len(v) == 2 and v[0] == RESP_ERROR:
            raise SyncProtocolError(f"peer refused status: {v[1]!r:.100}")
        v = expect_list(v, 2, what="status")
        base = expect_int(v[0], what="base")
        height = expect_int(v[1], what="height")
    except DecodeError as exc:
        raise SyncProtocolError(f"bad status answer: {exc}") from None
    if height and base > height:
        raise SyncProtocolError(f"status base {base} above height {height}")
    return base, height


def decode_blocks(data: bytes, first: int, last: int, max_bytes: int
                  ) -> list[tuple[bytes, bytes]]:
    """Decode a block-range answer; it must start at ``first`` and hold at most ``last``.

    Heights are checked by the caller's verifier; here only the shape and count.
    """
    try:
        v = expect_list(decode(data, max_bytes), what="blocks")
        if len(v) == 2 and v[0] == RESP_ERROR:
            raise SyncProtocolError(f"peer refused blocks: {v[1]!r:.100}")
        out = []
        for i, item in enumerate(expect_list(v, what="blocks",
                                             max_length=min(MAX_BLOCKS_PER_RESPONSE,
                                                            last - first + 1))):
            pair = expect_list(item, 2, what=f"blocks[{i}]")
            out.append((expect_bytes(pair[0], what="block"),
                        expect_bytes(pair[1], what="commit")))
    except DecodeError as exc:
        raise SyncProtocolError(f"bad blocks answer: {exc}") from None
    return out


def _error(reason: str) -> bytes:
    return encode([RESP_ERROR, reason.encode()[:200]])


def serve_request(source: BlockSource, data: bytes) -> bytes:
    """Answer one sync request from the block store (never raises on bad input)."""
    try:
        req = expect_list(decode(data, MAX_REQUEST_BYTES), what="request", max_length=3)
        if not req:
            return _error("empty request")
        kind = expect_int(req[0], what="kind")
        if kind == REQ_STATUS and len(req) == 1:
            return encode([source.sync_base(), source.sync_height()])
        if kind == REQ_BLOCKS and len(req) == 3:
            first = expect_int(req[1], what="from", lo=1)
            last = expect_int(req[2], what="to", lo=first)
        else:
            return _error("unknown request")
    except DecodeError as exc:
        return _error(f"malformed request: {exc}")
    last = min(last, source.sync_height(), first + MAX_BLOCKS_PER_RESPONSE - 1)
    out: list[list[bytes]] = []
    size = 0
    for h in range(max(first, source.sync_base()), last + 1):
        pair = source.sync_block(h)
        if pair is None:
            break
        size += len(pair[0]) + len(pair[1]) + 16
        if out and size > MAX_RESPONSE_BYTES:
            break
        out.append([pair[0], pair[1]])
    return encode(out)


# --- client side -------------------------------------------------------------


class SyncTransport(Protocol):
    """The part of ``net.Transport`` that sync uses."""

    async def request(self, peer: str, protocol: str, data: bytes, *,
                      timeout: float = ...) -> bytes: ...

    def connected_peers(self) -> Sequence[object]: ...


#: Called with (peer, [(block, commit), ...]) starting at our height + 1; returns
#: how many blocks were verified and applied. Raises to blame the peer.
CommitFetched = Callable[[str, list[tuple[bytes, bytes]]], Awaitable[int]]


@dataclass
class PeerSyncState:
    height: int = 0
    base: int = 0
    banned_until: float = 0.0


def peer_id_of(info: object) -> str:
    """Peer id from a ``net`` PeerInfo (attribute ``peer_id`` or ``id``) or a str."""
    if isinstance(info, str):
        return info
    for attr in ("peer_id", "id"):
        value = getattr(info, attr, None)
        if value is not None:
            return str(value)
    raise TypeError(f"cannot get a peer id from {info!r}")


class BlockSyncer:
    """Polls peers' heights and fetches blocks ahead of ours.

    ``our_height`` is read through a callback because blocks also arrive
    through consensus; the syncer never caches it.
    """

    def __init__(self, transport: SyncTransport, our_height: Callable[[], int],
                 commit_fetched: CommitFetched, *, request_timeout: float = 10.0,
                 max_msg_bytes: int = 4 * 1024 * 1024, ban_seconds: float = 30.0) -> None:
        self.transport = transport
        self.our_height = our_height
        self.commit_fetched = commit_fetched
        self.request_timeout = request_timeout
        self.max_msg_bytes = max_msg_bytes
        self.ban_seconds = ban_seconds
        self.peers: dict[str, PeerSyncState] = {}

    def best_peer_height(self) -> int:
        """Highest height a (non-banned) peer reported at the last poll."""
        now = time.monotonic()
        return max((p.height for p in self.peers.values() if p.banned_until <= now), default=0)

    async def poll_status(self) -> None:
        """Ask every connected peer for its height (in parallel, bounded by a timeout)."""
        peers = [peer_id_of(p) for p in self.transport.connected_peers()]
        for gone in set(self.peers) - set(peers):
            if self.peers[gone].banned_until <= time.monotonic():
                del self.peers[gone]

        async def ask(peer: str) -> None:
            try:
                data = await self.transport.request(peer, SYNC_PROTOCOL,
                                                    encode_status_request(),
                                                    timeout=self.request_timeout)
                base, height = decode_status(data)
            except SyncProtocolError as exc:
                log.info("peer %s sent a bad sync status: %s", peer[-8:], exc)
                self._ban(peer)
                return
            except NetError as exc:  # unreachable, timeout, refused: skip the peer this time
                log.debug("status from %s failed: %s", peer[-8:], exc)
                return
            except Exception:  # a transport bug: loud, but one peer's request must not stop sync
                log.exception("status request to %s failed unexpectedly", peer[-8:])
                return
            st = self.peers.setdefault(peer, PeerSyncState())
            st.base, st.height = base, height

        async with trio.open_nursery() as nursery:
            for peer in peers:
                nursery.start_soon(ask, peer)

    def _ban(self, peer: str) -> None:
        self.peers.setdefault(peer, PeerSyncState()).banned_until = (
            time.monotonic() + self.ban_seconds)

    def _candidates(self, want: int) -> list[str]:
        now = time.monotonic()
        ok = [(p, s) for p, s in self.peers.items()
              if s.banned_until <= now and s.height >= want and s.base <= want]
        ok.sort(key=lambda ps: -ps[1].height)
        return [p for p, _ in ok]

    async def sync_once(self) -> int:
        """Fetch and apply blocks until no known peer is ahead; returns blocks applied."""
        applied = 0
        while True:
            want = self.our_height() + 1
            candidates = self._candidates(want)
            if not candidates:
                return applied
            peer = candidates[0]
            last = min(self.peers[peer].height, want + MAX_BLOCKS_PER_RESPONSE - 1)
            try:
                data = await self.transport.request(peer, SYNC_PROTOCOL,
                                                    encode_blocks_request(want, last),
                                                    timeout=self.request_timeout)
                pairs = decode_blocks(data, want, last, self.max_msg_bytes)
            except SyncProtocolError as exc:
                log.warning("peer %s sent bad blocks: %s", peer[-8:], exc)
                self._ban(peer)
                continue
            except NetError as exc:  # try another peer; this one is re-polled later
                log.info("fetching blocks %d..%d from %s failed: %s", want, last, peer[-8:],
                         exc)
                self.peers[peer].height = 0  # re-learned at the next poll
                continue
            except Exception:  # a transport bug: loud, but sync goes on with other peers
                log.exception("fetching blocks from %s failed unexpectedly", peer[-8:])
                self._ban(peer)
                continue
            if not pairs:
                self.peers[peer].height = min(self.peers[peer].height, want - 1)
                continue
            try:
                n = await self.commit_fetched(peer, pairs)
            except SyncError as exc:
                log.warning("blocks from %s rejected: %s", peer[-8:], exc)
                self._ban(peer)
                continue
            applied += n
            if n == 0:
                self._ban(peer)


def follower_committer(chain: Any) -> CommitFetched:
    """The ``commit_fetched`` callback of a node that follows by sync alone (no consensus).

    Each pair is decoded, verified against ``chain`` (a :class:`node.chain.Chain`)
    and committed through ``Chain.commit_synced``. A bad first pair blames the
    peer (:class:`SyncError`); a bad later pair just ends the batch, keeping
    the good blocks before it.
    """
    from consensus.catchup import SyncBlockError, decode_pair

    from .chain import BlockRejected

    async def commit_fetched(peer: str, pairs: list[tuple[bytes, bytes]]) -> int:
        n = 0
        for raw_block, raw_commit in pairs:
            try:
                block, commit = decode_pair(raw_block, raw_commit, chain.height + 1)
                chain.verify_fetched(block, commit)
            except (SyncBlockError, BlockRejected) as exc:
                if n:
                    break
                raise SyncError(str(exc)) from None
            chain.commit_synced(block, commit)
            n += 1
            await trio.lowlevel.checkpoint()
        if n:
            log.info("synced to height %d from %s", chain.height, peer[-8:])
        return n

    return commit_fetched


__all__ = [
    "MAX_BLOCKS_PER_RESPONSE",
    "SYNC_PROTOCOL",
    "BlockSource",
    "BlockSyncer",
    "CommitFetched",
    "SyncError",
    "SyncProtocolError",
    "decode_blocks",
    "decode_status",
    "encode_blocks_request",
    "encode_status_request",
    "follower_committer",
    "peer_id_of",
    "serve_request",
]
