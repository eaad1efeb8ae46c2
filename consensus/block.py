"""Blocks, headers and commits.

A block is a header, the ordered opaque transactions and the commit (+2/3
precommit signatures) for the previous block, as in CometBFT. The header
commits to everything else: ``txs_root`` to the transactions, and
``last_commit_hash`` to the previous commit, so the block id (the header
hash) pins the whole block.

``app_hash`` is the application's hash *after* the previous block: a block
is agreed on before it is executed, so it can only vouch for the state its
parent left behind.

A :class:`Commit` lists one entry per validator (set order): the 64-byte
precommit signature for ``block_id`` at ``round``, or empty where that
validator's precommit is not included. The signed body is rebuilt from the
commit's own fields, so an entry can only be a precommit for this block.
"""

from __future__ import annotations

from dataclasses import dataclass

from .crypto import ADDRESS_SIZE, SIGNATURE_SIZE, sha256
from .encoding import (
    DecodeError,
    Value,
    decode,
    encode,
    expect_bytes,
    expect_int,
    expect_list,
    expect_text,
)
from .errors import ConsensusMisuseError, InvalidBlockError
from .merkle import txs_root
from .vote import HASH_SIZE, MAX_ROUND, NIL

HEADER_DOMAIN = b"oml/header/v1\x00"
COMMIT_DOMAIN = b"oml/commit/v1\x00"
MAX_CHAIN_ID_BYTES = 50
MAX_APP_HASH_BYTES = 64
#: Hash of "no previous commit" (height 1).
EMPTY_COMMIT_HASH = sha256(COMMIT_DOMAIN)
MAX_TXS = 100_000
MAX_TX_BYTES = 1 << 20
MAX_BLOCK_BYTES = 32 * 1024 * 1024


def _int(v: int, what: str, lo: int = 0, hi: int = 2**63 - 1) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise ConsensusMisuseError(f"{what} out of range: {v!r}")


def _bytes(v: bytes, what: str, size: int | None = None, max_size: int | None = None) -> None:
    if not isinstance(v, bytes):
        raise ConsensusMisuseError(f"{what} must be bytes")
    if size is not None and len(v) != size:
        raise ConsensusMisuseError(f"{what} must be {size} bytes")
    if max_size is not None and len(v) > max_size:
        raise ConsensusMisuseError(f"{what} longer than {max_size} bytes")


@dataclass(frozen=True, slots=True, kw_only=True)
class Header:
    chain_id: str
    height: int
    time_ms: int
    prev_block_id: bytes  # empty at height 1
    txs_root: bytes
    app_hash: bytes
    proposer_address: bytes
    validators_hash: bytes
    last_commit_hash: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.chain_id, str) or not self.chain_id \
                or len(self.chain_id.encode("utf-8")) > MAX_CHAIN_ID_BYTES:
            raise ConsensusMisuseError("chain_id must be 1..50 UTF-8 bytes")
        _int(self.height, "height", lo=1)
        _int(self.time_ms, "time_ms")
        if self.height == 1:
            _bytes(self.prev_block_id, "prev_block_id", size=0)
        else:
            _bytes(self.prev_block_id, "prev_block_id", size=HASH_SIZE)
        _bytes(self.txs_root, "txs_root", size=HASH_SIZE)
        _bytes(self.app_hash, "app_hash", max_size=MAX_APP_HASH_BYTES)
        _bytes(self.proposer_address, "proposer_address", size=ADDRESS_SIZE)
        _bytes(self.validators_hash, "validators_hash", size=HASH_SIZE)
        _bytes(self.last_commit_hash, "last_commit_hash", size=HASH_SIZE)

    def to_value(self) -> list[Value]:
        return [self.chain_id.encode("utf-8"), self.height, self.time_ms, self.prev_block_id,
                self.txs_root, self.app_hash, self.proposer_address, self.validators_hash,
                self.last_commit_hash]

    def hash(self) -> bytes:
        """The block id."""
        return sha256(HEADER_DOMAIN + encode(self.to_value()))

    @classmethod
    def from_value(cls, value: Value) -> Header:
        f = expect_list(value, 9, what="header")
        height = expect_int(f[1], what="header.height", lo=1, hi=2**63 - 1)
        prev = expect_bytes(f[3], what="header.prev_block_id", size=0 if height == 1 else HASH_SIZE)
        return cls(chain_id=expect_text(f[0], what="header.chain_id", max_size=MAX_CHAIN_ID_BYTES),
                   height=height,
                   time_ms=expect_int(f[2], what="header.time_ms", hi=2**63 - 1),
                   prev_block_id=prev,
                   txs_root=expect_bytes(f[4], what="header.txs_root", size=HASH_SIZE),
                   app_hash=expect_bytes(f[5], what="header.app_hash", max_size=MAX_APP_HASH_BYTES),
                   proposer_address=expect_bytes(f[6], what="header.proposer_address",
                                                 size=ADDRESS_SIZE),
                   validators_hash=expect_bytes(f[7], what="header.validators_hash",
                                                size=HASH_SIZE),
                   last_commit_hash=expect_bytes(f[8], what="header.last_commit_hash",
                                                 size=HASH_SIZE))


@dataclass(frozen=True, slots=True, kw_only=True)
class Commit:
    """+2/3 precommits for ``block_id`` at (``height``, ``round``), one slot per validator."""

    height: int
    round: int
    block_id: bytes
    signatures: tuple[bytes, ...]

    def __post_init__(self) -> None:
        _int(self.height, "commit.height", lo=1)
        _int(self.round, "commit.round", hi=MAX_ROUND)
        _bytes(self.block_id, "commit.block_id", size=HASH_SIZE)
        if not isinstance(self.signatures, tuple) or not self.signatures:
            raise ConsensusMisuseError("commit.signatures must be a non-empty tuple")
        for sig in self.signatures:
            if not isinstance(sig, bytes) or len(sig) not in (0, SIGNATURE_SIZE):
                raise ConsensusMisuseError("commit signature must be empty or 64 bytes")

    def to_value(self) -> list[Value]:
        return [self.height, self.round, self.block_id, list(self.signatures)]

    def encode(self) -> bytes:
        return encode(self.to_value())

    def hash(self) -> bytes:
        return sha256(COMMIT_DOMAIN + self.encode())

    @classmethod
    def from_value(cls, value: Value) -> Commit:
        f = expect_list(value, 4, what="commit")
        sigs = expect_list(f[3], what="commit.signatures", max_length=1000)
        if not sigs:
            raise DecodeError("commit.signatures: empty")
        out = []
        for s in sigs:
            sig = expect_bytes(s, what="commit.signature", max_size=SIGNATURE_SIZE)
            if len(sig) not in (0, SIGNATURE_SIZE):
                raise DecodeError("commit.signature: must be empty or 64 bytes")
            out.append(sig)
        return cls(height=expect_int(f[0], what="commit.height", lo=1, hi=2**63 - 1),
                   round=expect_int(f[1], what="commit.round", hi=MAX_ROUND),
                   block_id=expect_bytes(f[2], what="commit.block_id", size=HASH_SIZE),
                   signatures=tuple(out))

    @classmethod
    def decode(cls, data: bytes) -> Commit:
        """Parse untrusted bytes; raise only :class:`DecodeError`."""
        try:
            return cls.from_value(decode(data))
        except ConsensusMisuseError as exc:
            raise DecodeError(f"commit: {exc}") from None


def commit_hash(commit: Commit | None) -> bytes:
    """``last_commit_hash`` for a header: the commit's hash, or the empty marker."""
    return EMPTY_COMMIT_HASH if commit is None else commit.hash()


@dataclass(frozen=True, slots=True, kw_only=True)
class Block:
    header: Header
    txs: tuple[bytes, ...]
    last_commit: Commit | None  # None only at height 1

    def __post_init__(self) -> None:
        if not isinstance(self.header, Header):
            raise ConsensusMisuseError("header must be a Header")
        if not isinstance(self.txs, tuple) or any(not isinstance(t, bytes) for t in self.txs):
            raise ConsensusMisuseError("txs must be a tuple of bytes")
        if self.last_commit is not None and not isinstance(self.last_commit, Commit):
            raise ConsensusMisuseError("last_commit must be a Commit or None")

    @property
    def height(self) -> int:
        return self.header.height

    def id(self) -> bytes:
        """The block id: the header hash (which commits to txs and last commit)."""
        return self.header.hash()

    def validate_basic(self) -> None:
        """Check the parts that need no chain state: roots, commit linkage, sizes.

        Raises:
            InvalidBlockError: the header does not match the body.
        """
        h = self.header
        if len(self.txs) > MAX_TXS or any(len(t) > MAX_TX_BYTES for t in self.txs):
            raise InvalidBlockError("too many or too large transactions")
        if txs_root(self.txs) != h.txs_root:
            raise InvalidBlockError("txs_root does not match the transactions")
        if commit_hash(self.last_commit) != h.last_commit_hash:
            raise InvalidBlockError("last_commit_hash does not match the last commit")
        if h.height == 1:
            if self.last_commit is not None:
                raise InvalidBlockError("block at height 1 carries a last commit")
        else:
            c = self.last_commit
            if c is None:
                raise InvalidBlockError("block lacks the previous block's commit")
            if c.height != h.height - 1 or c.block_id != h.prev_block_id:
                raise InvalidBlockError("last commit is not for the previous block")

    def to_value(self) -> list[Value]:
        return [self.header.to_value(), list(self.txs),
                [] if self.last_commit is None else self.last_commit.to_value()]

    def encode(self) -> bytes:
        return encode(self.to_value())

    @classmethod
    def from_value(cls, value: Value) -> Block:
        f = expect_list(value, 3, what="block")
        header = Header.from_value(f[0])
        txs = tuple(expect_bytes(t, what="tx", max_size=MAX_TX_BYTES)
                    for t in expect_list(f[1], what="block.txs", max_length=MAX_TXS))
        lc = expect_list(f[2], what="block.last_commit")
        return cls(header=header, txs=txs, last_commit=Commit.from_value(lc) if lc else None)

    @classmethod
    def decode(cls, data: bytes) -> Block:
        """Parse untrusted bytes; raise only :class:`DecodeError`."""
        try:
            return cls.from_value(decode(data, MAX_BLOCK_BYTES))
        except ConsensusMisuseError as exc:
            raise DecodeError(f"block: {exc}") from None


__all__ = ["EMPTY_COMMIT_HASH", "NIL", "Block", "Commit", "Header", "commit_hash"]
