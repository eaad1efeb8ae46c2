"""The ledger facade the daemon calls: open, check, apply blocks, query.

The ledger is a deterministic state machine: the state after block ``h``
depends only on the genesis document and the transactions of blocks
``1..h`` (plus each block's height and proposer). It never reads a clock,
the block time only comes in with :meth:`Ledger.apply_block`.

Signature checks are the dominant cost of a block. :meth:`apply_block`
decodes the whole block, skips the signatures :meth:`check_tx` already
verified for the mempool (by transaction hash), verifies the rest as one
phase on a small thread pool (PyNaCl releases the GIL inside libsodium; see
:mod:`.sigverify`), then applies the transactions in order.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import lmdb

from node.genesis import Genesis

from .apphash import GENESIS_PREV, next_app_hash
from .claims import settle_due
from .errors import Code, InvariantError, LedgerUsageError, TxFailed
from .executor import decode_and_check_chain, execute, preflight
from .genesis import META_CHAIN_ID, genesis_hash, genesis_writes, parse_app_state
from .params import Params
from .records import Account, Claim, ClaimStatus, HostRecord, Model, RoleRecord
from .results import BlockResult, TxCheck, TxResult
from .sigverify import VerifiedCache, verify_all
from .state import (
    ACCOUNTS,
    CLAIMS,
    HOSTS,
    META,
    META_BURNED,
    META_GENESIS_SUPPLY,
    MODELS,
    ROLES,
    TABLES,
    Ctx,
    Overlay,
    State,
    host_key,
    u64,
)
from .store import DEFAULT_MAP_SIZE, Store, TxnReader
from .txs import Role

META_HEIGHT = b"height"
META_APP_HASH = b"app_hash"
META_TIME = b"time_ms"
META_GENESIS_HASH = b"genesis_hash"
MAP_RESIZE_ATTEMPTS = 8
VERIFY_CHUNK = 64
PARALLEL_MIN_TXS = 2 * VERIFY_CHUNK


@dataclass(frozen=True, slots=True)
class SupplyBreakdown:
    """Where every unit of the genesis supply is now (the DESIGN.md invariant)."""

    balances: int
    collateral: int
    escrow: int
    role_bonds: int
    claim_bonds: int
    burned: int
    genesis_supply: int

    @property
    def total(self) -> int:
        return (self.balances + self.collateral + self.escrow + self.role_bonds
                + self.claim_bonds + self.burned)

    @property
    def balanced(self) -> bool:
        return self.total == self.genesis_supply

    def to_json(self) -> dict[str, int]:
        return {"balances": self.balances, "collateral": self.collateral, "escrow": self.escrow,
                "role_bonds": self.role_bonds, "claim_bonds": self.claim_bonds,
                "burned": self.burned, "total": self.total, "genesis_supply": self.genesis_supply}


def _read_u64(r: TxnReader, key: bytes) -> int:
    raw = r.get(META, key)
    if raw is None or len(raw) != 8:
        raise InvariantError(f"ledger store lacks meta {key.decode()}")
    return struct.unpack(">Q", raw)[0]


class Ledger:
    """The OML ledger over an LMDB store. Not thread-safe for writers: one
    caller applies blocks; queries may come from other threads."""

    def __init__(self, store: Store, chain_id: str, params: Params, *, verify_signatures: bool,
                 verify_threads: int, verified_cache: int = 100_000) -> None:
        self._store = store
        self.chain_id = chain_id
        self._params = params
        self._verify = verify_signatures
        self._pool = (ThreadPoolExecutor(max_workers=verify_threads,
                                         thread_name_prefix="ledger-verify")
                      if verify_signatures and verify_threads > 1 else None)
        self._verified = VerifiedCache(verified_cache)
        self._closed = False
        with store.read() as r:
            self.height = _read_u64(r, META_HEIGHT)
            self.last_block_time_ms = _read_u64(r, META_TIME)
            app_hash = r.get(META, META_APP_HASH)
            if app_hash is None or len(app_hash) != 32:
                raise InvariantError("ledger store lacks the app hash")
            self.app_hash: bytes = app_hash

    @classmethod
    def open(cls, path: Path, genesis: Genesis, *, map_size: int = DEFAULT_MAP_SIZE,
             verify_signatures: bool = True, verify_threads: int = 2,
             durable: bool = True, verified_cache: int = 100_000) -> Ledger:
        """Open the store at ``path``; initialise it from ``genesis`` on first open.

        ``verify_signatures=False`` is for benchmarks and replaying blocks that
        were already verified; a live node never sets it. ``durable=False``
        skips LMDB's fsync per block (tests only). ``verify_threads`` sizes
        the signature-verification pool (1: verify on the calling thread).
        ``verified_cache`` bounds how many hashes of transactions verified by
        :meth:`check_tx` are remembered so the block does not verify them
        again (0 disables it).

        Raises:
            GenesisStateError: ``genesis.app_state`` is malformed.
            LedgerUsageError: the store belongs to another chain or genesis.
        """
        app = parse_app_state(genesis.app_state)
        store = Store(path, map_size=map_size, durable=durable)
        try:
            with store.write() as w:
                stored_chain = w.get(META, META_CHAIN_ID)
                if stored_chain is None:
                    kv = genesis_writes(genesis.chain_id, app, w)
                    app_hash = next_app_hash(GENESIS_PREV, 0, kv.writes)
                    store.apply(w, kv.writes)
                    store.apply(w, {(META, META_HEIGHT): u64(0), (META, META_APP_HASH): app_hash,
                                    (META, META_TIME): u64(genesis.genesis_time_ms),
                                    (META, META_GENESIS_HASH): genesis_hash(genesis)})
                elif stored_chain != genesis.chain_id.encode("utf-8"):
                    raise LedgerUsageError(f"store at {path} holds chain "
                                           f"{stored_chain.decode('utf-8', 'replace')!r}, "
                                           f"not {genesis.chain_id!r}")
                elif w.get(META, META_GENESIS_HASH) != genesis_hash(genesis):
                    raise LedgerUsageError(f"store at {path} was made from another genesis")
            return cls(store, genesis.chain_id, app.params, verify_signatures=verify_signatures,
                       verify_threads=verify_threads, verified_cache=verified_cache)
        except BaseException:
            store.close()
            raise

    # -- mempool checks --------------------------------------------------------
    def stateless_check(self, tx: bytes) -> TxCheck:
        """Size, decoding, chain id and signature; reads no state."""
        check = preflight(tx, self.chain_id, True)[1]
        if check.ok:
            self._verified.add(check.tx_hash)
        return check

    def check_tx(self, tx: bytes) -> TxCheck:
        """:meth:`stateless_check`, then: the sender exists and the nonce is not used.

        A nonce above the next one passes (the mempool may hold a sender's
        later transactions); :meth:`apply_block` needs it exact.
        """
        parsed, check = preflight(tx, self.chain_id, True)
        if not check.ok or parsed is None:
            return check
        acct = self.account(check.sender)
        if acct is None:
            return TxCheck(Code.UNKNOWN_SENDER, "sender has no account", check.tx_hash,
                           check.sender, check.nonce)
        if parsed.nonce < acct.nonce:
            return TxCheck(Code.BAD_NONCE, f"nonce {parsed.nonce} already used "
                           f"(next is {acct.nonce})", check.tx_hash, check.sender, check.nonce)
        # Only what the mempool admits is remembered: a refused tx will not be
        # proposed by us, and validly signed junk from unfunded keys must not
        # push the admitted transactions out of the bounded cache.
        self._verified.add(check.tx_hash)
        return check

    # -- blocks ------------------------------------------------------------------
    def _preflighted(self, txs: Sequence[bytes]) -> list[tuple[Any, TxCheck]]:
        """Decode every transaction, then verify all signatures as one phase
        (on the pool when the block is big enough; see :mod:`.sigverify`)."""
        decoded = [decode_and_check_chain(raw, self.chain_id) for raw in txs]
        if not self._verify:
            return decoded
        # Transactions this node's mempool already verified need no second check.
        to_verify = [tx for tx, check in decoded
                     if check.ok and not self._verified.take(tx.hash)]
        need = {id(tx) for tx in to_verify}
        pool = self._pool if len(to_verify) >= PARALLEL_MIN_TXS else None
        valid = iter(verify_all(to_verify, pool, VERIFY_CHUNK))
        out = []
        for tx, check in decoded:
            if check.ok and id(tx) in need and not next(valid):
                check = TxCheck(Code.BAD_SIGNATURE, "signature does not verify", tx.hash,
                                tx.sender, tx.nonce)
            out.append((tx, check))
        return out

    def apply_block(self, height: int, time_ms: int, proposer: bytes,
                    txs: Sequence[bytes]) -> BlockResult:
        """Apply a decided block: every transaction in order, then the end-block logic.

        All state changes commit in one LMDB write transaction; if this raises,
        nothing was written and the ledger is still at ``height - 1``.

        Raises:
            LedgerUsageError: ``height`` is not the next height, time goes back,
                ``proposer`` is not a 20-byte address, or the ledger is closed.
            InvariantError: the stored state is inconsistent (halt the node).
        """
        if self._closed:
            raise LedgerUsageError("ledger is closed")
        if isinstance(height, bool) or not isinstance(height, int) or height != self.height + 1:
            raise LedgerUsageError(f"expected block {self.height + 1}, got {height!r}")
        if isinstance(time_ms, bool) or not isinstance(time_ms, int) or \
                not self.last_block_time_ms <= time_ms < 2**63:
            raise LedgerUsageError(f"block time {time_ms!r} is before the last block time "
                                   f"{self.last_block_time_ms}")
        if not isinstance(proposer, bytes) or len(proposer) != 20:
            raise LedgerUsageError("proposer must be a 20-byte address")
        checked = self._preflighted(txs)  # before taking LMDB's writer lock
        for attempt in range(MAP_RESIZE_ATTEMPTS + 1):
            try:
                result = self._apply_checked(height, time_ms, proposer, checked)
                break
            except lmdb.MapFullError:
                # Nothing was committed and the block is a pure function of the
                # state, so growing the map and running it again is safe.
                if attempt == MAP_RESIZE_ATTEMPTS:
                    raise
                self._store.grow()
        self.height, self.app_hash, self.last_block_time_ms = height, result.app_hash, time_ms
        return result

    def _apply_checked(self, height: int, time_ms: int, proposer: bytes,
                       checked: list[tuple[Any, TxCheck]]) -> BlockResult:
        results: list[TxResult] = []
        with self._store.write() as w:
            kv = Overlay(w)
            base = Ctx(state=State(kv), params=self._params, chain_id=self.chain_id,
                       height=height, time_ms=time_ms, proposer=proposer)
            for parsed, check in checked:
                if not check.ok:
                    kind = parsed.kind.name.lower() if parsed is not None else ""
                    results.append(TxResult(check.code, check.log, check.tx_hash, kind=kind))
                else:
                    results.append(execute(kv, base, parsed))
            try:
                settle_due(base)
            except TxFailed as exc:
                raise InvariantError(f"end of block {height} failed: {exc.message}") from None
            app_hash = next_app_hash(self.app_hash, height, kv.writes)
            self._store.apply(w, kv.writes)
            self._store.apply(w, {(META, META_HEIGHT): u64(height),
                                  (META, META_APP_HASH): app_hash,
                                  (META, META_TIME): u64(time_ms)})
        return BlockResult(height, app_hash, tuple(results), tuple(base.events))

    # -- queries (committed state) -------------------------------------------
    def _query(self, fn: Any) -> Any:
        if self._closed:
            raise LedgerUsageError("ledger is closed")
        with self._store.read() as r:
            return fn(State(Overlay(r)))

    def account(self, address: bytes) -> Account | None:
        return self._query(lambda s: s.account(address))

    def model(self, model_id: bytes) -> Model | None:
        return self._query(lambda s: s.model(model_id))

    def host(self, model_id: bytes, host: bytes) -> HostRecord | None:
        return self._query(lambda s: s.host(model_id, host))

    def claim(self, claim_id: int) -> Claim | None:
        return self._query(lambda s: s.claim(claim_id))

    def role(self, role: Role | int, address: bytes) -> RoleRecord | None:
        return self._query(lambda s: s.role(int(role), address))

    def params(self) -> Params:
        return self._params

    def index_burned(self, model_id: bytes, host: bytes, index: int) -> bool:
        """Whether fingerprint ``index`` of the host's current commitment was used."""
        def q(s: State) -> bool:
            rec = s.host(model_id, host)
            return rec is not None and s.is_burned(model_id, host, rec.generation, index)
        return self._query(q)

    def models(self, start: bytes = b"", limit: int = 100) -> list[Model]:
        """Models in id order from ``start`` (for paging: pass the last id + b"\\x00")."""
        return self._scan(MODELS, Model, start, b"", limit)

    def hosts_of(self, model_id: bytes, limit: int = 1000) -> list[HostRecord]:
        """Every host record of ``model_id``, in host address order."""
        return self._scan(HOSTS, HostRecord, b"", host_key(model_id, b""), limit)

    def roles(self, role: Role | int | None = None, limit: int = 1000) -> list[RoleRecord]:
        """Registered OMLizers and provers (one role, or both), in (role, address) order."""
        prefix = bytes([int(role)]) if role is not None else b""
        return self._scan(ROLES, RoleRecord, b"", prefix, limit)

    def claims(self, start_id: int = 0, limit: int = 100) -> list[Claim]:
        """Claims in id order from ``start_id``."""
        return self._scan(CLAIMS, Claim, u64(start_id), b"", limit)

    def _scan(self, table: bytes, cls: Any, start: bytes, prefix: bytes, limit: int) -> list[Any]:
        if self._closed:
            raise LedgerUsageError("ledger is closed")
        if not 0 < limit <= 10_000:
            raise LedgerUsageError("limit must be in 1..10000")
        out = []
        with self._store.read() as r:
            for _, value in r.items(table, start, prefix):
                out.append(cls.decode(value))
                if len(out) == limit:
                    break
        return out

    def supply_breakdown(self) -> SupplyBreakdown:
        """Sum every holding in the committed state (a full scan: for tests and audits)."""
        if self._closed:
            raise LedgerUsageError("ledger is closed")
        with self._store.read() as r:
            balances = sum(Account.decode(v).balance for _, v in r.items(ACCOUNTS))
            hosts = [HostRecord.decode(v) for _, v in r.items(HOSTS)]
            bonds = sum(RoleRecord.decode(v).bond for _, v in r.items(ROLES))
            claims = [Claim.decode(v) for _, v in r.items(CLAIMS)]
            state = State(Overlay(r))
            return SupplyBreakdown(
                balances=balances, collateral=sum(h.collateral for h in hosts),
                escrow=sum(h.escrow for h in hosts), role_bonds=bonds,
                claim_bonds=sum(c.bond for c in claims if ClaimStatus(c.status).open),
                burned=state.meta_int(META_BURNED),
                genesis_supply=state.meta_int(META_GENESIS_SUPPLY))

    def export_state(self) -> dict[str, dict[bytes, bytes]]:
        """Every table's raw contents (for debugging and store-equality tests)."""
        if self._closed:
            raise LedgerUsageError("ledger is closed")
        with self._store.read() as r:
            return {t.decode(): dict(r.items(t)) for t in TABLES}

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        self._store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
