"""Block store on LMDB: committed blocks and their commits, by height and by hash.

Why it looks like this. A committed block at height h carries the commit for
h-1 (its ``last_commit``), so the canonical commit for a block is only known
once the next block is stored; until then the node keeps its own "seen
commit" (the +2/3 precommits it collected itself), as CometBFT does. Peers
that catch up from us need both, so :meth:`BlockStore.commit_bytes` answers
with the canonical commit when there is one and the seen commit for the
latest block otherwise.

Layout: one LMDB environment (shared with the ledger if the node wishes, as
the design wants one environment per data dir), with named sub-databases

    ``block.blocks``   height (u64 BE) -> block hash (32 bytes) || encoded block
    ``block.hashes``   block hash      -> height (u64 BE)
    ``block.commits``  height          -> encoded commit for that height's block
    ``block.seen``     height          -> the node's own seen commit (latest only)
    ``block.meta``     b"base", b"height" -> u64 BE

Every save is one write transaction, so a crash leaves the store at a block
boundary. The store keeps bytes (``*_bytes`` methods, and what peers are
served); the typed methods (:meth:`BlockStore.save_block`,
:meth:`BlockStore.load_block`, ...) decode with the consensus types and
recompute the block id on load, so a damaged entry surfaces as
:class:`BlockStoreCorruptError` rather than as a wrong block.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Self

import lmdb

from .block import Block, Commit
from .encoding import DecodeError
from .errors import ConsensusMisuseError

HASH_SIZE = 32
_U64 = struct.Struct(">Q")
_DB_NAMES = ("blocks", "hashes", "commits", "seen", "meta")
#: Sub-databases the store needs in an environment it did not open itself.
MAX_DBS_NEEDED = len(_DB_NAMES)
DEFAULT_MAP_SIZE = 1 << 34  # 16 GiB of address space; the file grows as used


class BlockStoreError(Exception):
    """Base of the block store errors."""


class BlockNotFoundError(BlockStoreError, LookupError):
    """No block (or commit) at that height or with that hash."""


class BlockStoreUsageError(BlockStoreError):
    """Our own code asked for something invalid (a gap in heights, bad arguments)."""


class BlockHashMismatchError(BlockStoreUsageError):
    """A block to save does not link to the stored chain (previous hash differs)."""


class BlockStoreCorruptError(BlockStoreError):
    """A stored entry is unreadable or inconsistent: a broken invariant, halt."""


def _u64(n: int) -> bytes:
    return _U64.pack(n)


def _from_u64(raw: bytes, what: str) -> int:
    if len(raw) != 8:
        raise BlockStoreCorruptError(f"{what}: expected 8 bytes, got {len(raw)}")
    return _U64.unpack(raw)[0]


class BlockStore:
    """Committed blocks, their commits and the height range, in LMDB.

    Args:
        env: an open environment with room for :data:`MAX_DBS_NEEDED` more
            named databases (see :meth:`open` to make one).
        prefix: prefix of the sub-database names, so several stores (or the
            ledger's tables) can share one environment.
    """

    def __init__(self, env: lmdb.Environment, *, prefix: str = "block.") -> None:
        self._env = env
        self._owns_env = False
        self._db = {name: env.open_db(f"{prefix}{name}".encode()) for name in _DB_NAMES}

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, map_size: int = DEFAULT_MAP_SIZE,
             sync: bool = True) -> BlockStore:
        """Open (or create) a store in its own environment at directory ``path``.

        ``sync=False`` skips LMDB's fsync on commit (tests and benchmarks only:
        the store stays consistent after a process crash, not after power loss).
        """
        os.makedirs(path, exist_ok=True)
        env = lmdb.open(os.fspath(path), map_size=map_size, max_dbs=MAX_DBS_NEEDED,
                        subdir=True, lock=True, sync=sync, metasync=sync)
        store = cls(env)
        store._owns_env = True
        return store

    def close(self) -> None:
        """Close the environment if this store opened it."""
        if self._owns_env:
            self._env.close()
            self._owns_env = False

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- range -------------------------------------------------------------

    def _meta(self, txn: lmdb.Transaction, key: bytes) -> int:
        raw = txn.get(key, db=self._db["meta"])
        return 0 if raw is None else _from_u64(raw, f"meta {key!r}")

    @property
    def base(self) -> int:
        """Lowest stored height, 0 when the store is empty."""
        with self._env.begin() as txn:
            return self._meta(txn, b"base")

    @property
    def height(self) -> int:
        """Highest stored height, 0 when the store is empty."""
        with self._env.begin() as txn:
            return self._meta(txn, b"height")

    def range(self) -> tuple[int, int]:
        """(base, height) read in one transaction; (0, 0) when empty."""
        with self._env.begin() as txn:
            return self._meta(txn, b"base"), self._meta(txn, b"height")

    # --- writing -----------------------------------------------------------

    def save_block_bytes(self, *, height: int, block_hash: bytes, prev_hash: bytes,
                         block: bytes, last_commit: bytes | None, seen_commit: bytes) -> None:
        """Store block ``height`` with its commits in one transaction.

        Args:
            height: must be ``self.height + 1``, or any height >= 1 when empty
                (a node that starts from a snapshot has no older blocks).
            block_hash: the block's hash (the caller computed it from the header).
            prev_hash: the previous block hash the header names; must equal the
                stored hash at ``height - 1`` when that block is stored.
            block: encoded block.
            last_commit: encoded commit for ``height - 1`` carried in the block,
                or None at the first height.
            seen_commit: encoded commit for this block as this node saw it.

        Raises:
            BlockStoreUsageError: wrong height or argument sizes; nothing written.
            BlockHashMismatchError: ``prev_hash`` does not match the stored chain,
                or a different block with this hash is already stored.
        """
        if not isinstance(height, int) or height < 1:
            raise BlockStoreUsageError(f"height must be >= 1, got {height!r}")
        for name, value in (("block_hash", block_hash), ("prev_hash", prev_hash)):
            if not isinstance(value, bytes) or len(value) not in (0, HASH_SIZE):
                raise BlockStoreUsageError(f"{name} must be {HASH_SIZE} bytes")
        if len(block_hash) != HASH_SIZE:
            raise BlockStoreUsageError("block_hash must not be empty")
        with self._env.begin(write=True) as txn:
            top = self._meta(txn, b"height")
            if top and height != top + 1:
                raise BlockStoreUsageError(f"next height is {top + 1}, got {height}")
            if top:
                stored_prev = self._get_hash(txn, top)
                if prev_hash != stored_prev:
                    raise BlockHashMismatchError(
                        f"block {height} names previous hash {prev_hash.hex()}, "
                        f"stored block {top} has {stored_prev.hex()}")
            if top and last_commit is None:
                raise BlockStoreUsageError(f"block {height} must carry the commit for {top}")
            if txn.get(block_hash, db=self._db["hashes"]) is not None:
                raise BlockHashMismatchError(f"hash {block_hash.hex()} is already stored")
            txn.put(_u64(height), block_hash + block, db=self._db["blocks"])
            txn.put(block_hash, _u64(height), db=self._db["hashes"])
            if last_commit is not None and top:  # checked above: present whenever top
                txn.put(_u64(top), last_commit, db=self._db["commits"])
            if top:
                txn.delete(_u64(top), db=self._db["seen"])
            txn.put(_u64(height), seen_commit, db=self._db["seen"])
            if not top:
                txn.put(b"base", _u64(height), db=self._db["meta"])
            txn.put(b"height", _u64(height), db=self._db["meta"])

    def prune_before(self, height: int) -> int:
        """Delete blocks below ``height`` (never the latest); return how many went.

        Raises:
            BlockStoreUsageError: ``height`` is above the latest height.
        """
        with self._env.begin(write=True) as txn:
            base, top = self._meta(txn, b"base"), self._meta(txn, b"height")
            if not top or height <= base:
                return 0
            if height > top:
                raise BlockStoreUsageError(f"cannot prune to {height}, latest is {top}")
            for h in range(base, height):
                key = _u64(h)
                raw = txn.get(key, db=self._db["blocks"])
                if raw is not None:
                    txn.delete(raw[:HASH_SIZE], db=self._db["hashes"])
                txn.delete(key, db=self._db["blocks"])
                txn.delete(key, db=self._db["commits"])
            txn.put(b"base", _u64(height), db=self._db["meta"])
            return height - base

    # --- reading -----------------------------------------------------------

    def _get_hash(self, txn: lmdb.Transaction, height: int) -> bytes:
        raw = txn.get(_u64(height), db=self._db["blocks"])
        if raw is None or len(raw) < HASH_SIZE:
            raise BlockStoreCorruptError(f"block {height} is inside the stored range but absent")
        return bytes(raw[:HASH_SIZE])

    def _entry(self, txn: lmdb.Transaction, height: int) -> tuple[bytes, bytes]:
        base, top = self._meta(txn, b"base"), self._meta(txn, b"height")
        if not top or not base <= height <= top:
            raise BlockNotFoundError(f"no block at height {height} (stored {base}..{top})")
        raw = txn.get(_u64(height), db=self._db["blocks"])
        if raw is None or len(raw) <= HASH_SIZE:
            raise BlockStoreCorruptError(f"block {height} is inside the stored range but absent")
        return bytes(raw[:HASH_SIZE]), bytes(raw[HASH_SIZE:])

    def block_bytes(self, height: int) -> tuple[bytes, bytes]:
        """(block hash, encoded block) at ``height``.

        Raises:
            BlockNotFoundError: outside the stored range.
            BlockStoreCorruptError: inside the range but missing.
        """
        with self._env.begin() as txn:
            return self._entry(txn, height)

    def height_of_hash(self, block_hash: bytes) -> int:
        """Height of the stored block with ``block_hash``.

        Raises:
            BlockNotFoundError: no stored block has that hash.
        """
        with self._env.begin() as txn:
            raw = txn.get(block_hash, db=self._db["hashes"])
            if raw is None:
                raise BlockNotFoundError(f"no block with hash {block_hash.hex()}")
            return _from_u64(raw, "hash index")

    def block_bytes_by_hash(self, block_hash: bytes) -> tuple[int, bytes]:
        """(height, encoded block) for ``block_hash``, checked against the height index.

        Raises:
            BlockNotFoundError: no stored block has that hash.
            BlockStoreCorruptError: the indexes disagree.
        """
        with self._env.begin() as txn:
            raw = txn.get(block_hash, db=self._db["hashes"])
            if raw is None:
                raise BlockNotFoundError(f"no block with hash {block_hash.hex()}")
            height = _from_u64(raw, "hash index")
            stored_hash, block = self._entry(txn, height)
            if stored_hash != block_hash:
                raise BlockStoreCorruptError(
                    f"hash index says {block_hash.hex()} is at {height}, "
                    f"block there has hash {stored_hash.hex()}")
            return height, block

    def commit_bytes(self, height: int) -> bytes:
        """The commit for the block at ``height``: canonical if known, else our seen commit.

        Raises:
            BlockNotFoundError: no commit for that height is stored.
        """
        with self._env.begin() as txn:
            raw = txn.get(_u64(height), db=self._db["commits"])
            if raw is None:
                raw = txn.get(_u64(height), db=self._db["seen"])
            if raw is None:
                raise BlockNotFoundError(f"no commit for height {height}")
            return bytes(raw)

    def seen_commit_bytes(self, height: int) -> bytes:
        """This node's own commit for the latest block (only the latest is kept).

        Raises:
            BlockNotFoundError: ``height`` is not the latest stored height.
        """
        with self._env.begin() as txn:
            raw = txn.get(_u64(height), db=self._db["seen"])
            if raw is None:
                raise BlockNotFoundError(f"no seen commit for height {height}")
            return bytes(raw)

    def iter_block_bytes(self, start: int, stop: int) -> Iterator[tuple[int, bytes, bytes]]:
        """(height, hash, block) for heights in [start, stop) within the stored range."""
        with self._txn() as txn:
            base, top = self._meta(txn, b"base"), self._meta(txn, b"height")
            for h in range(max(start, base), min(stop, top + 1)):
                block_hash, block = self._entry(txn, h)
                yield h, block_hash, block

    @contextmanager
    def _txn(self) -> Iterator[lmdb.Transaction]:
        with self._env.begin() as txn:
            yield txn

    # --- serving peers (node.sync's BlockSource) ---------------------------

    def sync_base(self) -> int:
        """Lowest height served to syncing peers (0 when empty)."""
        return self.base

    def sync_height(self) -> int:
        """Latest committed height served to syncing peers."""
        return self.height

    def sync_block(self, height: int) -> tuple[bytes, bytes] | None:
        """(encoded block, encoded commit) at ``height``, or None if not stored."""
        with self._env.begin() as txn:
            base, top = self._meta(txn, b"base"), self._meta(txn, b"height")
            if not top or not base <= height <= top:
                return None
            _, block = self._entry(txn, height)
            commit = (txn.get(_u64(height), db=self._db["commits"])
                      or txn.get(_u64(height), db=self._db["seen"]))
            if commit is None:
                raise BlockStoreCorruptError(f"block {height} is stored without a commit")
            return block, bytes(commit)

    # --- typed layer (consensus.block types) --------------------------------

    def save_block(self, block: Block, seen_commit: Commit) -> None:
        """Store a committed ``block`` with the commit this node saw for it.

        Raises:
            BlockStoreUsageError: not the next height, or ``seen_commit`` is not
                for this block.
            BlockHashMismatchError: the block does not link to the stored chain.
        """
        block_id = block.id()
        if seen_commit.height != block.height or seen_commit.block_id != block_id:
            raise BlockStoreUsageError(
                f"seen commit is for {seen_commit.height}/{seen_commit.block_id.hex()}, "
                f"not block {block.height}/{block_id.hex()}")
        self.save_block_bytes(
            height=block.height, block_hash=block_id, prev_hash=block.header.prev_block_id,
            block=block.encode(),
            last_commit=None if block.last_commit is None else block.last_commit.encode(),
            seen_commit=seen_commit.encode())

    def load_block(self, height: int) -> Block:
        """The block at ``height``, decoded and checked against its stored hash.

        Raises:
            BlockNotFoundError: outside the stored range.
            BlockStoreCorruptError: undecodable, or its hash is not the stored one.
        """
        block_hash, raw = self.block_bytes(height)
        return _decode_block(raw, height, block_hash)

    def load_block_by_hash(self, block_hash: bytes) -> Block:
        """The stored block whose id is ``block_hash``.

        Raises:
            BlockNotFoundError: no stored block has that hash.
            BlockStoreCorruptError: the entry is damaged.
        """
        height, raw = self.block_bytes_by_hash(block_hash)
        return _decode_block(raw, height, block_hash)

    def load_commit(self, height: int) -> Commit:
        """The commit for block ``height`` (canonical, or our seen one for the latest).

        Raises:
            BlockNotFoundError: none stored.
            BlockStoreCorruptError: undecodable or not for that height.
        """
        return _decode_commit(self.commit_bytes(height), height)

    def load_seen_commit(self, height: int) -> Commit:
        """This node's own commit for the latest block."""
        return _decode_commit(self.seen_commit_bytes(height), height)


def _decode_block(raw: bytes, height: int, block_hash: bytes) -> Block:
    try:
        block = Block.decode(raw)
    except (DecodeError, ConsensusMisuseError) as exc:
        raise BlockStoreCorruptError(f"block {height} does not decode: {exc}") from None
    if block.height != height or block.id() != block_hash:
        raise BlockStoreCorruptError(
            f"block stored at {height} is {block.height}/{block.id().hex()}, "
            f"index says {block_hash.hex()}")
    return block


def _decode_commit(raw: bytes, height: int) -> Commit:
    try:
        commit = Commit.decode(raw)
    except (DecodeError, ConsensusMisuseError) as exc:
        raise BlockStoreCorruptError(f"commit {height} does not decode: {exc}") from None
    if commit.height != height:
        raise BlockStoreCorruptError(f"commit stored for {height} is for {commit.height}")
    return commit
