"""The daemon's implementation of the RPC layer's ``NodeBackend``.

A thin read/write facade: queries go straight to the chain (block store,
tx index) and the ledger; ``broadcast_tx`` admits a transaction to the
mempool and queues it for batched gossip. Every error a client can cause
is one of ``node.rpc.errors``' typed backend errors.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from consensus.block import Block, Commit

from .chain import Chain
from .mempool import Mempool
from .rpc.backend import (
    BlockView,
    CheckResult,
    JSONRecord,
    NetInfo,
    NodeInfo,
    NodeStatus,
    PeerView,
    SyncInfo,
    TxResult,
    TxView,
    ValidatorInfo,
    ValidatorSetView,
)
from .rpc.errors import BadArgument, NodeUnavailable, NotFound
from .txgossip import TxGossip

VERSION = "0.1.0"


def header_json(block: Block) -> dict[str, Any]:
    h = block.header
    return {"chain_id": h.chain_id, "height": h.height, "time_ms": h.time_ms,
            "prev_block_id": h.prev_block_id.hex(), "txs_root": h.txs_root.hex(),
            "app_hash": h.app_hash.hex(), "proposer_address": h.proposer_address.hex(),
            "validators_hash": h.validators_hash.hex(),
            "last_commit_hash": h.last_commit_hash.hex()}


def commit_json(commit: Commit) -> dict[str, Any]:
    return {"height": commit.height, "round": commit.round, "block_id": commit.block_id.hex(),
            "signatures": [s.hex() for s in commit.signatures]}


def block_view(block: Block) -> BlockView:
    return BlockView(hash=block.id(), height=block.height, time_ms=block.header.time_ms,
                     header=header_json(block), txs=block.txs,
                     last_commit=commit_json(block.last_commit)
                     if block.last_commit is not None else None,
                     size_bytes=len(block.encode()))


class Backend:
    """``NodeBackend`` over a :class:`Chain`, the mempool and the transport.

    ``catching_up`` and ``peers`` are callbacks so the backend holds no
    reference to the syncer or libp2p types.
    """

    def __init__(self, *, chain: Chain, mempool: Mempool, gossip: TxGossip | None,
                 peer_id: str, moniker: str, listen_addr: str, pub_key: bytes,
                 catching_up: Callable[[], bool], peers: Callable[[], list[Any]],
                 listeners: Callable[[], list[str]], metrics: Any = None,
                 add_peers: Callable[..., Awaitable[dict[str, bool]]] | None = None) -> None:
        self.chain = chain
        self.ledger = chain.ledger
        self.mempool = mempool
        self.gossip = gossip
        self.peer_id = peer_id
        self.moniker = moniker
        self.listen_addr = listen_addr
        self.pub_key = pub_key
        self._catching_up = catching_up
        self._peers = peers
        self._listeners = listeners
        self.metrics = metrics
        self._add_peers = add_peers
        self.ready = True

    # --- status ----------------------------------------------------------------

    def _my_validator(self) -> ValidatorInfo:
        vs = self.chain.valset
        idx = vs.index_of(_address(self.pub_key))
        power = vs.power_at(idx) if idx is not None else 0
        return ValidatorInfo(address=_address(self.pub_key), pub_key=self.pub_key,
                             voting_power=power)

    def status(self) -> NodeStatus:
        latest = self.chain.latest_block()
        return NodeStatus(
            node_info=NodeInfo(id=self.peer_id, moniker=self.moniker,
                               network=self.chain.chain_id, listen_addr=self.listen_addr,
                               version=VERSION),
            sync_info=SyncInfo(
                latest_block_hash=latest.id() if latest else b"",
                latest_app_hash=self.chain.state.app_hash,
                latest_block_height=self.chain.height,
                latest_block_time_ms=latest.header.time_ms if latest
                else self.chain.genesis.genesis_time_ms,
                earliest_block_height=self.chain.blocks.base,
                catching_up=self._catching_up()),
            validator_info=self._my_validator())

    def net_info(self) -> NetInfo:
        peers = []
        for p in self._peers():
            addrs = getattr(p, "addrs", ())
            peers.append(PeerView(node_id=str(getattr(p, "peer_id", p)),
                                  remote_addr=addrs[0] if addrs else "",
                                  is_outbound=getattr(p, "direction", "") == "outbound"))
        return NetInfo(listening=True, listeners=tuple(self._listeners()), peers=tuple(peers))

    async def dial_peers(self, addrs: list[str], persistent: bool) -> dict[str, bool]:
        """RPC ``dial_peers``: the transport dials; peer id -> connected afterwards."""
        from net import NetUsageError

        if self._add_peers is None:
            raise NodeUnavailable("this node cannot dial peers")
        try:
            return await self._add_peers(addrs, persistent=persistent)
        except NetUsageError as exc:
            raise BadArgument(f"peers: {exc}") from None

    # --- blocks and txs --------------------------------------------------------------

    def block(self, height: int | None) -> BlockView:
        top = self.chain.height
        if height is None:
            height = top
        if height < 1 or top == 0:
            raise NotFound("no blocks yet" if top == 0 else f"no block at height {height}")
        if height > top:
            raise BadArgument(f"height {height} is above the latest height {top}")
        blk = self.chain.block(height)
        if blk is None:
            raise NotFound(f"block {height} is not stored here (pruned)")
        return block_view(blk)

    def tx(self, tx_hash: bytes) -> TxView:
        found = self.chain.indexed_tx(tx_hash)
        if found is None:
            raise NotFound(f"transaction {tx_hash.hex()} not found")
        blk = self.chain.block(found.height)
        if blk is None or found.index >= len(blk.txs):
            raise NotFound(f"transaction {tx_hash.hex()}: block {found.height} not stored")
        return TxView(hash=tx_hash, height=found.height, index=found.index,
                      tx=blk.txs[found.index],
                      result=TxResult(code=found.code, log=found.log, codespace=found.codespace,
                                      events=found.events))

    def validators(self, height: int | None) -> ValidatorSetView:
        top = self.chain.height
        if height is not None and (height < 1 or height > top + 1):
            raise BadArgument(f"height must be in 1..{top + 1}")
        vs = self.chain.valset
        return ValidatorSetView(
            block_height=height if height is not None else max(top, 1),
            validators=tuple(ValidatorInfo(address=v.address, pub_key=v.pub_key,
                                           voting_power=v.power)
                             for v in vs.validators))

    async def broadcast_tx(self, tx: bytes) -> CheckResult:
        if not self.ready:
            raise NodeUnavailable("node is shutting down")
        res = self.mempool.add(tx)
        if self.metrics is not None:
            self.metrics.observe_mempool_add(res.status.value)
        if res.accepted and self.gossip is not None:
            self.gossip.queue_local(tx)
        return CheckResult(code=res.code, hash=res.tx_hash, log=res.log,
                           codespace=res.codespace)

    def unconfirmed_txs(self, limit: int) -> Any:
        """Mempool totals and its ``limit`` oldest transactions (``unconfirmed_txs``)."""
        from .rpc.adapters import mempool_view

        return mempool_view(self.mempool, limit)

    def genesis(self) -> JSONRecord:
        return self.chain.genesis

    # --- ledger records ----------------------------------------------------------------

    def account(self, address: bytes) -> JSONRecord | None:
        return self.ledger.account(address)

    def model(self, model_id: bytes) -> JSONRecord | None:
        return self.ledger.model(model_id)

    def host(self, model_id: bytes, host: bytes) -> JSONRecord | None:
        return self.ledger.host(model_id, host)

    def claim(self, claim_id: int) -> JSONRecord | None:
        return self.ledger.claim(claim_id)

    def roles(self, role: int | None = None) -> list[Any]:
        """Role registrations (``RoleRecord``), of one role or all (RPC ``roles``)."""
        return self.ledger.roles(role)

    def params(self) -> JSONRecord:
        return self.ledger.params()

    def supply(self) -> dict[str, Any]:
        """The committed state's supply breakdown (RPC ``supply``): a full scan, so that an
        audit (the demo, e2e tests) can check the invariant on every node."""
        breakdown = self.ledger.supply_breakdown()
        return {"height": self.chain.height, **breakdown.to_json(),
                "balanced": breakdown.balanced}


def _address(pub_key: bytes) -> bytes:
    from consensus.crypto import address_of
    return address_of(pub_key)


__all__ = ["Backend", "block_view", "commit_json", "header_json"]
