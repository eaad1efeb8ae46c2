"""An owner node in one process: a real Chain (ledger + block store) fed by a Producer,
a real mempool, a real TxSender, the OwnerService on a real libp2p transport.

Accounts (``_chainkit`` genesis): 0 owner, 1 host, 2 OMLizer, 3 a stranger.
``setup_model`` registers a model and takes the host to ACTIVE with some
escrow, one block per transaction, as the ledger requires.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from consensus.crypto import PrivateKey, Signer
from node.config import MempoolSection, OwnerRole
from node.ledger import build_tx
from node.ledger.txs import (
    CommitOmlizationBody,
    FundChannelBody,
    RegisterModelBody,
    RegisterRoleBody,
    RequestAccessBody,
    Role,
)
from node.ledger.vouchers import sign_voucher
from node.mempool import Mempool
from node.roles.cursor import ChainFollower
from node.roles.owner.protocol import PermissionRequest
from node.roles.owner.service import OwnerService
from node.roles.owner.store import OwnerStore
from node.roles.txsender import TxSender
from node.rpc.backend import CheckResult
from node.txcheck import CachedCheck
from tests.daemon._chainkit import Producer, close_chain, make_genesis, open_chain

MODEL_ID = b"owned-model"
PRICE = 5
OWNER, HOST, OMLIZER, STRANGER = 0, 1, 2, 3


@dataclass
class NodeSide:
    """What the service asks of its node: ledger records and the mempool (the Backend's API)."""

    chain: Any
    mempool: Mempool

    def model(self, model_id: bytes) -> Any:
        return self.chain.ledger.model(model_id)

    def host(self, model_id: bytes, host: bytes) -> Any:
        return self.chain.ledger.host(model_id, host)

    def account(self, address: bytes) -> Any:
        return self.chain.ledger.account(address)

    def claim(self, claim_id: int) -> Any:
        return self.chain.ledger.claim(claim_id)

    async def broadcast_tx(self, tx: bytes) -> CheckResult:
        res = self.mempool.add(tx)
        return CheckResult(code=res.code, hash=res.tx_hash, log=res.log,
                           codespace=res.codespace)


@dataclass
class OwnerNode:
    path: Path
    chain: Any = None
    producer: Producer | None = None
    mempool: Mempool | None = None
    keys: list[PrivateKey] = field(default_factory=list)

    @classmethod
    def create(cls, path: Path) -> OwnerNode:
        genesis, signers, accounts = make_genesis(n_validators=1, n_accounts=4)
        node = cls(path=path, keys=accounts)
        node.chain = open_chain(path / "chain", genesis)
        node.producer = Producer(node.chain, signers, accounts)
        node.mempool = Mempool(MempoolSection(), CachedCheck(node.chain.ledger))
        node.chain.on_committed.append(
            lambda block, _c, _r: node.mempool.update(block.height, block.txs))
        return node

    def close(self) -> None:
        close_chain(self.chain)

    @property
    def ledger(self) -> Any:
        return self.chain.ledger

    def address(self, who: int) -> bytes:
        return self.keys[who].address

    def signed(self, who: int, body: Any) -> bytes:
        key = self.keys[who]
        nonce = self.ledger.account(key.address).nonce
        nonce += sum(1 for raw in self.mempool if _sender(raw) == key.address)
        return build_tx(key, self.chain.chain_id, nonce, body)

    def commit(self, *txs: bytes) -> Any:
        """One block with ``txs``; returns its ledger results (each must be checked)."""
        block, _ = self.producer.produce(tuple(txs))
        return [self.chain.indexed_tx(h) for h in _hashes(block.txs)]

    def ok(self, who: int, body: Any) -> None:
        (result,) = self.commit(self.signed(who, body))
        assert result.code == 0, (result.code, result.log)

    def commit_mempool(self) -> list[Any]:
        return self.commit(*self.mempool.reap(1 << 24, 10_000))

    def setup_model(self, *, escrow: int = 1_000, price: int = PRICE) -> None:
        omlizer = self.address(OMLIZER)
        self.ok(OWNER, RegisterModelBody(model_id=MODEL_ID, weights_hash=b"\x11" * 32,
                                         price_per_query=price, omlizers=(omlizer,)))
        self.ok(OMLIZER, RegisterRoleBody(role=int(Role.OMLIZER), bond=10_000))
        self.ok(HOST, RequestAccessBody(model_id=MODEL_ID, collateral=100))
        self.ok(OMLIZER, CommitOmlizationBody(
            model_id=MODEL_ID, host=self.address(HOST), package_hash=b"\x22" * 32,
            fp_root=b"\x33" * 32, fp_count=8, package_blob=b"\x44" * 32))
        if escrow:
            self.ok(HOST, FundChannelBody(model_id=MODEL_ID, amount=escrow))

    def service(self, transport: Any, config: OwnerRole | None = None,
                clock: Any = None) -> OwnerService:
        store = OwnerStore.open(self.path / "owner")
        follower = ChainFollower(store.db, self.chain, start_height=self.chain.height + 1)
        self.chain.on_committed.append(lambda *_: follower.notify())
        side = NodeSide(self.chain, self.mempool)
        signer = Signer(self.keys[OWNER])
        txs = TxSender(signer=signer, address=signer.address, chain_id=self.chain.chain_id,
                       backend=side, index=self.chain, mempool_txs=lambda: iter(self.mempool))
        kw: dict[str, Any] = {} if clock is None else {"clock": clock}
        return OwnerService(store=store, follower=follower, transport=transport, backend=side,
                            chain=self.chain, account_seed=self.keys[OWNER].seed,
                            chain_id=self.chain.chain_id,
                            config=config or OwnerRole(enabled=True), txs=txs,
                            mempool_txs=lambda: iter(self.mempool), **kw)


def _sender(raw: bytes) -> bytes:
    from node.ledger.txs import decode_tx

    return decode_tx(raw).sender


def _hashes(txs: tuple[bytes, ...]) -> list[bytes]:
    from node.ledger.txs import tx_hash

    return [tx_hash(t) for t in txs]


@dataclass
class HostClient:
    """The host's side of the protocol: a running seq counter and cumulative voucher."""

    key: PrivateKey
    chain_id: str
    model_id: bytes = MODEL_ID
    price: int = PRICE
    count: int = 0
    amount: int = 0

    def batch(self, hashes: list[bytes], *, first_seq: int | None = None,
              amount: int | None = None, key: PrivateKey | None = None) -> PermissionRequest:
        """The next request (not yet counted: call :meth:`accepted` once granted)."""
        first = self.count if first_seq is None else first_seq
        total = first + len(hashes)
        cumulative = self.amount + self.price * len(hashes) if amount is None else amount
        sig = sign_voucher(key or self.key, self.chain_id, self.model_id, total, cumulative)
        return PermissionRequest(model_id=self.model_id, host=self.key.address,
                                 first_seq=first, query_hashes=tuple(hashes),
                                 cumulative_count=total, cumulative_amount=cumulative,
                                 voucher_signature=sig)

    def accepted(self, request: PermissionRequest) -> None:
        self.count = request.cumulative_count
        self.amount = request.cumulative_amount


async def wait_for(pred: Any, timeout: float = 10.0, what: str = "condition") -> None:
    with trio.move_on_after(timeout):
        while not pred():
            await trio.sleep(0.01)
        return
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
