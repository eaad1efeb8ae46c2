"""Catch-up (block sync), sans-IO: verify committed blocks fetched from peers, in order.

A node that is behind cannot take part in consensus for heights it missed;
it fetches (block, commit) pairs from peers instead. Nothing a peer sends is
trusted: each block must be the next height on our chain (its
``prev_block_id`` is our last block's id), be well formed
(:meth:`Block.validate_basic`), name our validator set, and come with a
commit that proves +2/3 of the voting power precommitted exactly this block
at this height (:func:`verify_commit`, which checks every signature present).
A pair that fails is rejected with a :class:`SyncFault` naming why, and the
peer that sent it is reported so the caller can score or ban it.

Like the core, :class:`CatchUp` does no I/O and reads no clock. The caller
(the daemon, over libp2p request/response; a test, directly) tells it what
peers report (:meth:`CatchUp.on_peer_status`), asks it what to fetch from
whom (:meth:`CatchUp.next_requests`), hands it what arrived
(:meth:`CatchUp.on_blocks`) or that a request failed or timed out
(:meth:`CatchUp.on_request_failed`), and applies the verified blocks it gets
back, in order. Answers may arrive out of order; pairs are buffered (up to
``max_ahead`` heights) and verified only when they become the next height,
because linkage needs the block before.

Commit format note: a :class:`Commit` has one slot per validator in set
order, so "unknown validator" and "duplicate signer" show up as a commit
whose size is not the set's size (:attr:`SyncFault.WRONG_SIZE`); a signer
can never be counted twice.

Validator set: the ledger's set is fixed at genesis. If it ever changes, the
caller must call :meth:`CatchUp.set_validators` before blocks signed by the
new set are verified; until then they are rejected as
:attr:`SyncFault.WRONG_VALIDATORS`.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field

from .block import Block, Commit
from .encoding import DecodeError
from .errors import ConsensusMisuseError, InvalidBlockError, InvalidCommitError, InvalidMessageError
from .validators import ValidatorSet, verify_commit

DEFAULT_BATCH = 64
DEFAULT_MAX_AHEAD = 512


class SyncFault(enum.Enum):
    """Why a fetched (block, commit) pair was rejected."""

    MALFORMED = "bytes do not decode as a block and a commit"
    WRONG_CHAIN = "block is for another chain"
    WRONG_HEIGHT = "block is not at the height it was sent for"
    INVALID_BLOCK = "block is not well formed (roots, last commit linkage, sizes)"
    WRONG_PREVIOUS = "block does not extend our chain (previous block id differs)"
    WRONG_VALIDATORS = "block names a validator set other than ours"
    UNKNOWN_PROPOSER = "block proposer is not in the validator set"
    WRONG_COMMIT_HEIGHT = "commit is for another height"
    WRONG_BLOCK = "commit is for another block"
    WRONG_SIZE = "commit size differs from the validator set (unknown or extra signer)"
    INSUFFICIENT_POWER = "commit signers hold no more than 2/3 of the voting power"
    BAD_SIGNATURE = "a precommit signature in the commit is invalid"
    UNSOLICITED = "blocks that were not asked for"


class SyncBlockError(InvalidMessageError):
    """A fetched block or its commit is invalid (peer misbehaviour: score the peer)."""

    def __init__(self, fault: SyncFault, height: int, detail: str = "") -> None:
        self.fault = fault
        self.height = height
        self.detail = detail
        super().__init__(f"height {height}: {fault.value}{': ' + detail if detail else ''}")


def verify_synced_block(*, chain_id: str, valset: ValidatorSet, height: int,
                        prev_block_id: bytes, block: Block, commit: Commit) -> None:
    """Check that ``block`` is committed at ``height`` on top of ``prev_block_id``.

    Cheap checks come first, and the +2/3 power of the present signatures is
    counted before any signature is verified, so a bogus commit costs little.

    Raises:
        SyncBlockError: with the :class:`SyncFault` that failed first.
    """
    h = block.header
    if h.chain_id != chain_id:
        raise SyncBlockError(SyncFault.WRONG_CHAIN, height, repr(h.chain_id))
    if h.height != height:
        raise SyncBlockError(SyncFault.WRONG_HEIGHT, height, f"block says {h.height}")
    try:
        block.validate_basic()
    except InvalidBlockError as exc:
        raise SyncBlockError(SyncFault.INVALID_BLOCK, height, str(exc)) from None
    if h.prev_block_id != prev_block_id:
        raise SyncBlockError(SyncFault.WRONG_PREVIOUS, height,
                             f"{h.prev_block_id.hex()} != {prev_block_id.hex()}")
    if h.validators_hash != valset.hash():
        raise SyncBlockError(SyncFault.WRONG_VALIDATORS, height)
    if valset.index_of(h.proposer_address) is None:
        raise SyncBlockError(SyncFault.UNKNOWN_PROPOSER, height, h.proposer_address.hex())
    if commit.height != height:
        raise SyncBlockError(SyncFault.WRONG_COMMIT_HEIGHT, height, f"commit is {commit.height}")
    block_id = block.id()
    if commit.block_id != block_id:
        raise SyncBlockError(SyncFault.WRONG_BLOCK, height,
                             f"commit for {commit.block_id.hex()}, block is {block_id.hex()}")
    if len(commit.signatures) != len(valset):
        raise SyncBlockError(SyncFault.WRONG_SIZE, height,
                             f"{len(commit.signatures)} slots for {len(valset)} validators")
    claimed = sum(valset.power_at(i) for i, sig in enumerate(commit.signatures) if sig)
    if not valset.has_two_thirds(claimed):
        raise SyncBlockError(SyncFault.INSUFFICIENT_POWER, height,
                             f"{claimed} of {valset.total_power}")
    try:
        verify_commit(chain_id, valset, block_id, height, commit)
    except InvalidCommitError as exc:
        # Height, block, size and power were checked above with the same rules,
        # so what verify_commit can still find is a bad signature.
        raise SyncBlockError(SyncFault.BAD_SIGNATURE, height, str(exc)) from None


def decode_pair(block: bytes | Block, commit: bytes | Commit, height: int
                ) -> tuple[Block, Commit]:
    """Decode a fetched pair (bytes from the wire, or already-built objects).

    Raises:
        SyncBlockError: MALFORMED when the bytes are not a block and a commit.
    """
    try:
        b = block if isinstance(block, Block) else Block.decode(block)
        c = commit if isinstance(commit, Commit) else Commit.decode(commit)
    except (DecodeError, ConsensusMisuseError) as exc:
        raise SyncBlockError(SyncFault.MALFORMED, height, str(exc)) from None
    return b, c


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockRequest:
    """Ask ``peer`` for the committed blocks ``first..last`` (inclusive)."""

    peer: str
    first: int
    last: int


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifiedBlock:
    """A block proven committed, ready to apply (in the order handed out)."""

    block: Block
    commit: Commit
    peer: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Rejection:
    """``peer`` sent something invalid; the caller scores or bans it."""

    peer: str
    error: SyncBlockError


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncResult:
    """What one call of :meth:`CatchUp.on_blocks` produced."""

    ready: tuple[VerifiedBlock, ...] = ()
    rejected: tuple[Rejection, ...] = ()


@dataclass(slots=True)
class _Peer:
    base: int
    height: int
    in_flight: tuple[int, int] | None = None


@dataclass(slots=True)
class _Pending:
    peer: str
    block: bytes | Block
    commit: bytes | Commit


@dataclass(slots=True)
class _State:
    peers: dict[str, _Peer] = field(default_factory=dict)
    buffer: dict[int, _Pending] = field(default_factory=dict)


class CatchUp:
    """Plans block requests across peers and verifies the answers in height order.

    Args:
        chain_id: our chain.
        valset: the validator set that signs the next blocks.
        height: the last height we have applied (0 before the first block).
        last_block_id: that block's id (empty before the first block).
        batch: most blocks in one request.
        max_ahead: most heights beyond ours that are requested or buffered.
    """

    def __init__(self, *, chain_id: str, valset: ValidatorSet, height: int,
                 last_block_id: bytes, batch: int = DEFAULT_BATCH,
                 max_ahead: int = DEFAULT_MAX_AHEAD) -> None:
        if batch < 1 or max_ahead < batch:
            raise ConsensusMisuseError("need batch >= 1 and max_ahead >= batch")
        self.chain_id = chain_id
        self.valset = valset
        self.batch = batch
        self.max_ahead = max_ahead
        self._s = _State()
        self.reset(height, last_block_id)

    # --- our chain ---------------------------------------------------------

    def reset(self, height: int, last_block_id: bytes) -> None:
        """Restart from ``height`` (e.g. applying a handed-out block failed).

        Drops everything buffered and in flight; peers' reported heights stay.
        """
        if height < 0 or (height == 0) != (last_block_id == b""):
            raise ConsensusMisuseError("height 0 goes with an empty block id, and only it")
        self.height = height
        self.last_block_id = last_block_id
        self._s.buffer.clear()
        for p in self._s.peers.values():
            p.in_flight = None

    def set_validators(self, valset: ValidatorSet) -> None:
        """The validator set for the next blocks changed (see module docs)."""
        self.valset = valset

    # --- peers -------------------------------------------------------------

    def on_peer_status(self, peer: str, height: int, base: int = 1) -> None:
        """``peer`` reports it stores blocks ``base..height``."""
        if height < 0 or base < 0:
            raise ConsensusMisuseError("peer heights must be non-negative")
        p = self._s.peers.get(peer)
        if p is None:
            self._s.peers[peer] = _Peer(base=max(base, 1), height=height)
        else:
            p.base, p.height = max(base, 1), height

    def on_peer_gone(self, peer: str) -> None:
        """Forget ``peer`` (disconnected or banned); its range is requested elsewhere.

        :meth:`drain` does this itself for a peer whose block it rejects.
        """
        self._s.peers.pop(peer, None)
        for h in [h for h, e in self._s.buffer.items() if e.peer == peer]:
            del self._s.buffer[h]

    def max_peer_height(self) -> int:
        return max((p.height for p in self._s.peers.values()), default=0)

    @property
    def caught_up(self) -> bool:
        """No known peer reports a height above ours."""
        return self.height >= self.max_peer_height()

    # --- requests ------------------------------------------------------------

    def _missing_ranges(self) -> list[tuple[int, int]]:
        top = min(self.max_peer_height(), self.height + self.max_ahead)
        taken = set(self._s.buffer)
        for p in self._s.peers.values():
            if p.in_flight is not None:
                taken.update(range(p.in_flight[0], p.in_flight[1] + 1))
        ranges: list[tuple[int, int]] = []
        h = self.height + 1
        while h <= top:
            if h in taken:
                h += 1
                continue
            start = h
            while h <= top and h not in taken and h - start < self.batch:
                h += 1
            ranges.append((start, h - 1))
        return ranges

    def next_requests(self) -> list[BlockRequest]:
        """Requests to send now: missing ranges, each to one idle peer that has it.

        Each peer has at most one request in flight; the next height we need
        goes to the highest peer first. Calling again without new events
        returns nothing new.
        """
        out: list[BlockRequest] = []
        idle = sorted((name for name, p in self._s.peers.items() if p.in_flight is None),
                      key=lambda n: (-self._s.peers[n].height, n))
        for first, last in self._missing_ranges():
            for name in idle:
                p = self._s.peers[name]
                if p.base <= first <= p.height:
                    last_here = min(last, p.height)
                    p.in_flight = (first, last_here)
                    out.append(BlockRequest(peer=name, first=first, last=last_here))
                    idle.remove(name)
                    break
        return out

    def on_request_failed(self, peer: str) -> None:
        """``peer``'s request failed or timed out; its range goes back to the pool."""
        p = self._s.peers.get(peer)
        if p is not None:
            p.in_flight = None

    # --- answers -------------------------------------------------------------

    def on_blocks(self, peer: str, pairs: Sequence[tuple[bytes | Block, bytes | Commit]],
                  *, first: int | None = None) -> SyncResult:
        """Take ``peer``'s answer; return blocks now verified in order, and rejections.

        ``pairs`` are consecutive heights starting at ``first``: by default
        the start of the peer's in-flight request or, with none in flight, our
        next height (so a caller with its own fetch loop can use this as a
        plain verifier). Passing the request's ``first`` lets a late answer to
        a request already given up (:meth:`on_request_failed`) be told apart:
        one that does not match the request in flight is ignored.
        An empty answer means the peer lacks those blocks: its height is
        lowered so it is not asked again until it reports more.
        """
        p = self._s.peers.get(peer)
        if p is not None and p.in_flight is not None:
            if first is not None and first != p.in_flight[0]:
                return SyncResult()  # a stale answer; the live request stays open
            first, last = p.in_flight
            p.in_flight = None
        else:
            first = self.height + 1 if first is None else first
            last = first + len(pairs) - 1
        if len(pairs) > last - first + 1:
            err = SyncBlockError(SyncFault.UNSOLICITED, first,
                                 f"{len(pairs)} blocks for a request of {last - first + 1}")
            return SyncResult(rejected=(Rejection(peer=peer, error=err),))
        if not pairs:
            if p is not None:
                p.height = min(p.height, first - 1)
            return SyncResult()
        for i, (block, commit) in enumerate(pairs):
            h = first + i
            if self.height < h <= self.height + self.max_ahead and h not in self._s.buffer:
                self._s.buffer[h] = _Pending(peer, block, commit)
        return self.drain()

    def drain(self) -> SyncResult:
        """Verify buffered pairs from our next height on, as far as they go."""
        ready: list[VerifiedBlock] = []
        rejected: list[Rejection] = []
        while (entry := self._s.buffer.pop(self.height + 1, None)) is not None:
            h = self.height + 1
            try:
                block, commit = decode_pair(entry.block, entry.commit, h)
                verify_synced_block(chain_id=self.chain_id, valset=self.valset, height=h,
                                    prev_block_id=self.last_block_id, block=block,
                                    commit=commit)
            except SyncBlockError as exc:
                rejected.append(Rejection(peer=entry.peer, error=exc))
                # Nothing else this peer sent is worth verifying, and it is not
                # asked again until it reports its status anew; others fill in.
                self.on_peer_gone(entry.peer)
                continue
            ready.append(VerifiedBlock(block=block, commit=commit, peer=entry.peer))
            self.height = h
            self.last_block_id = block.id()
        return SyncResult(ready=tuple(ready), rejected=tuple(rejected))
