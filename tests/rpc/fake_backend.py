"""An in-memory NodeBackend test double: a tiny chain whose blocks the test commits by hand."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from node.rpc import (
    BadArgument,
    BlockView,
    CheckResult,
    EventBus,
    MempoolView,
    NetInfo,
    NewBlockEvent,
    NodeInfo,
    NodeStatus,
    NotFound,
    PeerView,
    SyncInfo,
    TxResult,
    TxView,
    ValidatorInfo,
    ValidatorSetView,
)

VAL_PUB = bytes(range(32))
VAL_ADDR = hashlib.sha256(VAL_PUB).digest()[:20]
#: A well-formed libp2p peer id (of a fixed test seed).
PEER = "12D3KooWH3uVF6wv47WnArKHk5p6cvgCJEb74UTmxztmQDc298L3"
GENESIS_MS = 1_700_000_000_000


@dataclass(frozen=True)
class Record:
    data: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return dict(self.data)


def txhash(tx: bytes) -> bytes:
    return hashlib.sha256(tx).digest()


class FakeBackend:
    """Accepts txs starting with b"ok"; rejects others with code 7. Blocks come from commit()."""

    def __init__(self, events: EventBus) -> None:
        self.events = events
        self.blocks: list[BlockView] = []
        self.txs: dict[bytes, TxView] = {}
        self.pending: list[bytes] = []
        self.accounts = {VAL_ADDR: Record({"address": VAL_ADDR.hex(), "balance": 1000,
                                           "nonce": 0})}
        self.auto_commit = False
        self.broken = False
        self.dialed: list[tuple[list[str], bool]] = []

    # --- test controls --------------------------------------------------------

    def commit(self) -> BlockView:
        height = len(self.blocks) + 1
        txs = tuple(self.pending)
        self.pending.clear()
        prev = self.blocks[-1].hash if self.blocks else b""
        bhash = hashlib.sha256(prev + height.to_bytes(8, "big") + b"".join(txs)).digest()
        block = BlockView(hash=bhash, height=height, time_ms=GENESIS_MS + 1000 * height,
                          header={"height": height, "last_block_hash": prev.hex(),
                                  "app_hash": (b"\x01" * 32).hex()},
                          txs=txs, last_commit={"signatures": []},
                          size_bytes=100 + sum(len(t) for t in txs))
        self.blocks.append(block)
        views = []
        for i, tx in enumerate(txs):
            view = TxView(hash=txhash(tx), height=height, index=i, tx=tx,
                          result=TxResult(code=0, log="ok", events=({"type": "transfer"},)))
            self.txs[view.hash] = view
            views.append(view)
        self.events.publish(NewBlockEvent(block=block, txs=tuple(views)))
        return block

    # --- NodeBackend ------------------------------------------------------------

    def status(self) -> NodeStatus:
        if self.broken:
            raise RuntimeError("secret internal detail")
        last = self.blocks[-1] if self.blocks else None
        return NodeStatus(
            node_info=NodeInfo(id="12D3KooWtest", moniker="fake", network="test-chain",
                               listen_addr="/ip4/127.0.0.1/tcp/1", version="0.1.0"),
            sync_info=SyncInfo(latest_block_hash=last.hash if last else b"",
                               latest_app_hash=b"\x01" * 32,
                               latest_block_height=last.height if last else 0,
                               latest_block_time_ms=last.time_ms if last else GENESIS_MS,
                               earliest_block_height=1 if last else 0, catching_up=False),
            validator_info=ValidatorInfo(address=VAL_ADDR, pub_key=VAL_PUB, voting_power=10))

    def net_info(self) -> NetInfo:
        return NetInfo(listening=True, listeners=("/ip4/127.0.0.1/tcp/1",),
                       peers=(PeerView(node_id="12D3KooWpeer", remote_addr="/ip4/127.0.0.1/tcp/2",
                                       is_outbound=True),))

    def block(self, height: int | None) -> BlockView:
        if not self.blocks:
            raise NotFound("no blocks yet")
        if height is None:
            return self.blocks[-1]
        if height > len(self.blocks):
            raise BadArgument(f"height {height} is above the latest height {len(self.blocks)}")
        return self.blocks[height - 1]

    def tx(self, tx_hash: bytes) -> TxView:
        try:
            return self.txs[tx_hash]
        except KeyError:
            raise NotFound(f"tx {tx_hash.hex()} not found") from None

    def validators(self, height: int | None) -> ValidatorSetView:
        return ValidatorSetView(block_height=height or len(self.blocks),
                                validators=(ValidatorInfo(address=VAL_ADDR, pub_key=VAL_PUB,
                                                          voting_power=10),))

    async def broadcast_tx(self, tx: bytes) -> CheckResult:
        h = txhash(tx)
        if not tx.startswith(b"ok"):
            return CheckResult(code=7, hash=h, log="bad signature", codespace="ledger")
        if tx in self.pending or h in self.txs:
            return CheckResult(code=1, hash=h, log="tx already in mempool", codespace="mempool")
        self.pending.append(tx)
        if self.auto_commit:
            self.commit()
        return CheckResult(code=0, hash=h)

    def genesis(self) -> Record:
        return Record({"chain_id": "test-chain", "genesis_time_ms": GENESIS_MS})

    def unconfirmed_txs(self, limit: int) -> MempoolView:
        return MempoolView(total=len(self.pending), total_bytes=sum(map(len, self.pending)),
                           txs=tuple(self.pending[:limit]))

    def account(self, address: bytes) -> Record | None:
        return self.accounts.get(address)

    async def model(self, model_id: bytes) -> Record | None:  # async on purpose: both work
        if model_id == b"\xaa":
            return Record({"model_id": "aa", "price_per_query": 5})
        return None

    def host(self, model_id: bytes, host: bytes) -> Record | None:
        return Record({"model_id": model_id.hex(), "host": host.hex()}) if model_id == b"\xaa" \
            else None

    def claim(self, claim_id: int) -> Record | None:
        return Record({"claim_id": claim_id}) if claim_id == 3 else None

    def params(self) -> Record:
        return Record({"slash_fraction_bp": 5000})

    def supply(self) -> dict[str, int | bool]:
        parts = {"balances": 900, "collateral": 50, "escrow": 20, "role_bonds": 20,
                 "claim_bonds": 0, "burned": 10}
        return {"height": len(self.blocks), **parts, "total": 1000, "genesis_supply": 1000,
                "balanced": True}

    def roles(self, role: int | None = None) -> list[Record]:
        regs = [Record({"role": 1, "address": "22" * 20, "bond": 1000, "committed_hosts": 2}),
                Record({"role": 2, "address": "33" * 20, "bond": 700, "committed_hosts": 0})]
        return [r for r in regs if role is None or r.data["role"] == role]

    async def dial_peers(self, addrs: list[str], persistent: bool) -> dict[str, bool]:
        """Records the call; every well-formed peer "connects" (a real transport: net tests)."""
        from net import NetUsageError, parse_peer_addr

        try:
            peers = [parse_peer_addr(a)[1] for a in addrs]
        except NetUsageError as exc:
            raise BadArgument(f"peers: {exc}") from None
        self.dialed.append((list(addrs), persistent))
        return dict.fromkeys(peers, True)
