"""The committed chain of one node: block store + ledger + tx index, one commit path.

Blocks reach a node two ways, through consensus (it took part in deciding
them) and through block sync (a peer had them already). Both are executed
by :meth:`Chain.execute` and stored by one of two entry points
(:meth:`Chain.store_committed`, :meth:`Chain.commit_synced`), so every
committed block is stored, executed, indexed, removed from the mempool and
announced in the same way.

Crash safety. Synced blocks are saved first (one LMDB transaction in the
block store) and executed second; a crash between the two leaves the store
ahead and :meth:`Chain.recover` re-executes the stored blocks on the next
start. Blocks decided by consensus go the other way round, because the core
calls ``Application.apply_block`` (:meth:`Chain.execute`; the ledger commits
at once) before it emits ``CommitBlock``, and one input may decide several
heights in a row (buffered messages for the next height). A crash in
between leaves the *ledger* ahead of the block store, possibly by more than
one block. That is tolerated: every execution also writes an "applied"
record (height -> block id, app hash after it) together with the block's tx
index entries, so when the WAL replay (or sync) brings those blocks again,
:meth:`Chain.execute` returns the recorded app hash instead of executing
twice, after checking it is the same block.

The consensus :class:`~consensus.state.ChainState` (last block id and
commit, app hash, validator priorities) is saved after every block in the
same environment, and re-derived from stored blocks if a crash left it
behind.

The tx index (hash -> height, index, result) lives in its own sub-database
of the block store's environment and is written right after the ledger, so
recovery rebuilds it too.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lmdb

from consensus.block import Block, Commit
from consensus.blockstore import BlockStore
from consensus.encoding import decode, encode, expect_bytes, expect_int, expect_list
from consensus.state import ChainState
from consensus.validators import ValidatorSet

from .genesis import Genesis
from .mempool import tx_hash

log = logging.getLogger(__name__)

MAP_SIZE = 1 << 34


class ChainError(Exception):
    """Base of the chain's errors."""


class ChainInvariantError(ChainError):
    """Stored state contradicts itself (e.g. the ledger is ahead of the block store): halt."""


class BlockRejected(ChainError):
    """A block (from a peer) does not verify against our chain; nothing was changed."""


@dataclass(frozen=True, slots=True)
class IndexedTx:
    height: int
    index: int
    code: int
    log: str
    codespace: str
    events: tuple[dict[str, Any], ...]


def valset_from_genesis(genesis: Genesis) -> ValidatorSet:
    """The (static) validator set: every genesis validator with its power."""
    return ValidatorSet.from_powers((v.pub_key, v.power) for v in genesis.validators)


def result_fields(res: Any) -> tuple[int, str, str, tuple[dict[str, Any], ...]]:
    """(code, log, codespace, events) from a ledger per-tx result, whatever its exact type."""
    code = int(getattr(res, "code", 0))
    text = str(getattr(res, "log", ""))
    codespace = str(getattr(res, "codespace", "") or ("ledger" if code else ""))
    events_raw = getattr(res, "events", ()) or ()
    events: list[dict[str, Any]] = []
    for ev in events_raw:
        if hasattr(ev, "to_json"):
            events.append(ev.to_json())
        elif isinstance(ev, dict):
            events.append(ev)
        else:
            events.append({"event": str(ev)})
    return code, text, codespace, tuple(events)


class Chain:
    """Block store, ledger and tx index of one node, with the one commit path.

    ``ledger`` is a :class:`node.ledger.Ledger` (``apply_block``, ``height``,
    ``app_hash``); ``on_committed`` callbacks run after every commit with
    (block, commit, ledger result) and must not raise.
    """

    def __init__(self, data_dir: Path, genesis: Genesis, ledger: Any) -> None:
        self.genesis = genesis
        self.chain_id = genesis.chain_id
        self.valset = valset_from_genesis(genesis)
        self.ledger = ledger
        path = data_dir / "chain"
        os.makedirs(path, exist_ok=True)
        # sync=False: each block's three write transactions (block, tx index,
        # consensus state) are made durable together by one env.sync() at the
        # end of the commit, instead of one fdatasync each.
        self._env = lmdb.open(str(path), map_size=MAP_SIZE, max_dbs=8, subdir=True, lock=True,
                              sync=False)
        self.blocks = BlockStore(self._env)
        self._closed = False
        self._txindex = self._env.open_db(b"txindex")
        self._applied = self._env.open_db(b"applied")
        self._meta = self._env.open_db(b"chain.meta")
        self.on_committed: list[Callable[[Block, Commit, Any], None]] = []
        # the latest block, cached for status, proposals and linkage checks
        self._latest: Block | None = None
        self.state = self._load_state()

    def _load_state(self) -> ChainState:
        with self._env.begin() as txn:
            raw = txn.get(b"state", db=self._meta)
        if raw is None:
            return ChainState.genesis(self.chain_id, self.genesis.genesis_time_ms, self.valset,
                                      app_hash=self.ledger.app_hash if self.ledger.height == 0
                                      else b"")
        return ChainState.decode(bytes(raw))

    def _save_state(self, state: ChainState) -> None:
        with self._env.begin(write=True) as txn:
            txn.put(b"state", state.encode(), db=self._meta)
        self.state = state

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._env.sync(True)
        self._env.close()

    # --- reading -------------------------------------------------------------

    @property
    def height(self) -> int:
        return self.blocks.height

    def block(self, height: int) -> Block | None:
        top = self.blocks.height
        if height < 1 or height > top or height < self.blocks.base:
            return None
        if height == top and self._latest is not None and self._latest.height == top:
            return self._latest
        _hash, raw = self.blocks.block_bytes(height)
        return Block.decode(raw)

    def latest_block(self) -> Block | None:
        if self._latest is None and self.blocks.height:
            self._latest = self.block(self.blocks.height)
        return self._latest

    def commit_for(self, height: int) -> Commit | None:
        if height < 1 or height > self.blocks.height:
            return None
        return Commit.decode(self.blocks.commit_bytes(height))

    def indexed_tx(self, h: bytes) -> IndexedTx | None:
        with self._env.begin() as txn:
            raw = txn.get(h, db=self._txindex)
        if raw is None:
            return None
        v = expect_list(decode(bytes(raw)), 6)
        return IndexedTx(height=expect_int(v[0]), index=expect_int(v[1]), code=expect_int(v[2]),
                         log=expect_bytes(v[3]).decode("utf-8", "replace"),
                         codespace=expect_bytes(v[4]).decode("utf-8", "replace"),
                         events=tuple(json.loads(expect_bytes(v[5]) or b"[]")))

    # --- committing ----------------------------------------------------------

    def verify_fetched(self, block: Block, commit: Commit) -> None:
        """Check that a block fetched from a peer is the next block of our chain.

        On top of ``consensus.catchup.verify_synced_block`` (linkage, roots,
        validator set, +2/3 commit with every signature checked) the header's
        app hash must equal our ledger's: a peer on a diverged state is refused
        before anything is applied.

        Raises:
            BlockRejected: naming the first check that failed.
        """
        from consensus.catchup import SyncBlockError, verify_synced_block

        want = self.height + 1
        latest = self.latest_block()
        try:
            verify_synced_block(chain_id=self.chain_id, valset=self.valset, height=want,
                                prev_block_id=latest.id() if latest is not None else b"",
                                block=block, commit=commit)
        except SyncBlockError as exc:
            raise BlockRejected(str(exc)) from None
        if block.header.app_hash != self.state.app_hash:
            raise BlockRejected(f"block {want} names app hash {block.header.app_hash.hex()[:16]}"
                                f", ours is {self.state.app_hash.hex()[:16]}")

    def _store(self, block: Block, commit: Commit) -> None:
        # The header's own prev hash, so the store checks it links to what it holds.
        self.blocks.save_block_bytes(
            height=block.height, block_hash=block.id(),
            prev_hash=block.header.prev_block_id,
            block=block.encode(),
            last_commit=block.last_commit.encode() if block.last_commit is not None else None,
            seen_commit=commit.encode())
        self._latest = block

    def _notify(self, block: Block, commit: Commit, result: Any) -> None:
        for cb in self.on_committed:
            try:
                cb(block, commit, result)
            except Exception:
                log.exception("on_committed listener failed at height %d", block.height)

    def applied_app_hash(self, height: int, block_id: bytes) -> bytes:
        """The app hash after ``height``, which the ledger has already executed.

        Raises:
            ChainInvariantError: the record is missing, or names another block.
        """
        with self._env.begin() as txn:
            raw = txn.get(height.to_bytes(8, "big"), db=self._applied)
        if raw is None:
            if height == self.ledger.height:
                # executed just before a crash that hit before its record was written
                return self.ledger.app_hash
            raise ChainInvariantError(f"block {height} was executed but its record is missing")
        raw = bytes(raw)
        if raw[:32] != block_id:
            raise ChainInvariantError(f"block {height} {block_id.hex()[:16]} differs from the "
                                      f"executed block {raw[:32].hex()[:16]}")
        return raw[32:]

    def execute(self, block: Block) -> tuple[bytes, Any]:
        """Execute ``block`` in the ledger (once): returns (app hash after it, ledger result).

        If the ledger already executed this height (before a crash) nothing
        runs again: the recorded app hash is returned with result None.
        """
        if self.ledger.height >= block.height:
            log.warning("block %d was already executed; not executing it twice", block.height)
            return self.applied_app_hash(block.height, block.id()), None
        h = block.header
        result = self.ledger.apply_block(block.height, h.time_ms, h.proposer_address,
                                         list(block.txs))
        tx_results = list(getattr(result, "tx_results", ()) or ())
        with self._env.begin(write=True) as txn:
            txn.put(block.height.to_bytes(8, "big"), block.id() + result.app_hash,
                    db=self._applied)
            for i, tx in enumerate(block.txs):
                code, text, codespace, events = result_fields(
                    tx_results[i] if i < len(tx_results) else None)
                txn.put(tx_hash(tx), encode([block.height, i, code, text.encode(),
                                             codespace.encode(),
                                             json.dumps(list(events)).encode()]),
                        db=self._txindex)
        self._env.sync(True)
        return result.app_hash, result

    def commit_synced(self, block: Block, commit: Commit) -> Any:
        """Store, execute and index a verified block fetched by block sync."""
        self._store(block, commit)
        app_hash, result = self.execute(block)
        self._save_state(self.state.next(block, commit, app_hash))
        self._env.sync(True)
        self._notify(block, commit, result)
        return result

    def store_committed(self, block: Block, commit: Commit, state: ChainState,
                        result: Any) -> None:
        """Store a block the consensus core decided; it was executed by :meth:`execute`.

        ``result`` is that execution's ledger result (None if it happened
        before a crash).
        """
        if self.ledger.height < block.height:
            raise ChainInvariantError(f"consensus committed block {block.height} but the "
                                      f"ledger is at height {self.ledger.height}")
        self._store(block, commit)
        self._save_state(state)
        self._env.sync(True)
        self._notify(block, commit, result)

    def recover(self) -> int:
        """Bring ledger and consensus state level with the block store after a crash.

        Returns how many stored blocks were re-executed. A ledger ahead of the
        store is allowed when every executed height has its record (see the
        module docstring); the blocks are stored when decided or synced again.

        Raises:
            ChainInvariantError: a record or a stored block is missing.
        """
        lh, sh = self.ledger.height, self.blocks.height
        for height in range(sh + 1, lh):
            with self._env.begin() as txn:
                if txn.get(height.to_bytes(8, "big"), db=self._applied) is None:
                    raise ChainInvariantError(f"ledger at height {lh}, block store at {sh}, "
                                              f"and no record of executing block {height}")
        for height in range(lh + 1, sh + 1):
            blk = self.block(height)
            if blk is None:
                raise ChainInvariantError(f"block {height} missing from the store")
            log.info("re-executing block %d after restart", height)
            self.execute(blk)
        state = self.state
        while state.height < sh:
            h = state.height + 1
            blk, commit = self.block(h), self.commit_for(h)
            if blk is None or commit is None:
                raise ChainInvariantError(f"block {h} or its commit missing from the store")
            state = state.next(blk, commit, self.applied_app_hash(h, blk.id()))
        if state is not self.state:
            self._save_state(state)
        self._env.sync(True)
        if state.height == sh and lh == sh and state.app_hash != self.ledger.app_hash:
            raise ChainInvariantError("consensus state and ledger disagree on the app hash")
        return max(0, sh - lh)


__all__ = ["BlockRejected", "Chain", "ChainError", "ChainInvariantError", "IndexedTx",
           "result_fields", "valset_from_genesis"]
