"""The RPC over the REAL ledger and mempool: shows NodeBackend is easy to implement over them.

A minimal backend (no consensus, no network: the test commits blocks itself)
wires Ledger.check_tx into the Mempool, reaps into Ledger.apply_block and
publishes the block on the EventBus. A signed transfer sent with
broadcast_tx_commit is applied and visible through `account`.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import httpx
import pytest
import trio

from consensus.crypto import PrivateKey, Signer
from node.config import MempoolSection, RPCSection
from node.genesis import Genesis, GenesisValidator
from node.ledger import Ledger, RegisterModelBody, TransferBody, build_tx
from node.mempool import Mempool
from node.rpc import (
    BlockView,
    CheckResult,
    EventBus,
    MempoolView,
    NetInfo,
    NodeInfo,
    NodeStatus,
    NotFound,
    SyncInfo,
    TxView,
    ValidatorInfo,
    ValidatorSetView,
    check_result_from_add,
    mempool_view,
    new_block_event,
    serve_rpc,
)

CHAIN = "rpc-ledger-test"
ALICE = Signer(PrivateKey(hashlib.sha256(b"alice").digest()))
BOB = Signer(PrivateKey(hashlib.sha256(b"bob").digest()))


class LedgerBackend:
    def __init__(self, ledger: Ledger, mempool: Mempool, events: EventBus) -> None:
        self.ledger, self.mempool, self.events = ledger, mempool, events
        self.blocks: list[BlockView] = []
        self.txs: dict[bytes, TxView] = {}

    def commit(self) -> None:
        txs = self.mempool.reap(1 << 20, 1000)
        height = self.ledger.height + 1
        time_ms = self.ledger.last_block_time_ms + 1000
        result = self.ledger.apply_block(height, time_ms, ALICE.address, txs)
        bhash = hashlib.sha256(height.to_bytes(8, "big") + result.app_hash).digest()
        block = BlockView(hash=bhash, height=height, time_ms=time_ms,
                          header={"height": height, "app_hash": result.app_hash.hex()},
                          txs=tuple(txs))
        self.blocks.append(block)
        self.mempool.update(height, txs)
        event = new_block_event(block, result.tx_results)
        for t in event.txs:
            self.txs[t.hash] = t
        self.events.publish(event)

    def status(self) -> NodeStatus:
        last = self.blocks[-1] if self.blocks else None
        return NodeStatus(
            node_info=NodeInfo(id="p", moniker="m", network=CHAIN, listen_addr=""),
            sync_info=SyncInfo(latest_block_hash=last.hash if last else b"",
                               latest_app_hash=self.ledger.app_hash,
                               latest_block_height=self.ledger.height,
                               latest_block_time_ms=self.ledger.last_block_time_ms,
                               earliest_block_height=1, catching_up=False),
            validator_info=ValidatorInfo(address=ALICE.address, pub_key=ALICE.public_key,
                                         voting_power=1))

    def net_info(self) -> NetInfo:
        return NetInfo(listening=True, listeners=(), peers=())

    def block(self, height: int | None) -> BlockView:
        if not self.blocks or (height is not None and height > len(self.blocks)):
            raise NotFound("block not found")
        return self.blocks[(height or len(self.blocks)) - 1]

    def tx(self, tx_hash: bytes) -> TxView:
        if tx_hash not in self.txs:
            raise NotFound("tx not found")
        return self.txs[tx_hash]

    def validators(self, height: int | None) -> ValidatorSetView:
        return ValidatorSetView(block_height=self.ledger.height, validators=())

    async def broadcast_tx(self, tx: bytes) -> CheckResult:
        return check_result_from_add(self.mempool.add(tx))

    def unconfirmed_txs(self, limit: int) -> MempoolView:
        return mempool_view(self.mempool, limit)

    def account(self, address: bytes):
        return self.ledger.account(address)

    def model(self, model_id: bytes):
        return self.ledger.model(model_id)

    def host(self, model_id: bytes, host: bytes):
        return self.ledger.host(model_id, host)

    def claim(self, claim_id: int):
        return self.ledger.claim(claim_id)

    def params(self):
        return self.ledger.params()


@pytest.fixture
async def served(nursery: trio.Nursery, tmp_path: Path) -> AsyncIterator[
        tuple[LedgerBackend, httpx.AsyncClient]]:
    genesis = Genesis(chain_id=CHAIN, genesis_time_ms=1_000,
                      validators=(GenesisValidator("v0", ALICE.public_key, 1),),
                      app_state={"accounts": [{"address": ALICE.address.hex(),
                                               "balance": 1000}], "params": {}})
    ledger = Ledger.open(tmp_path / "state", genesis)
    events = EventBus()
    def next_nonce(address: bytes) -> int | None:
        acct = ledger.account(address)
        return acct.nonce if acct is not None else None

    mempool = Mempool(MempoolSection(), ledger.check_tx, next_nonce=next_nonce)
    backend = LedgerBackend(ledger, mempool, events)
    stop = trio.Event()
    config = RPCSection(laddr="127.0.0.1:0", timeout_broadcast_tx_commit_ms=5000)
    with trio.fail_after(10):
        urls = await nursery.start(partial(serve_rpc, backend, events, config,
                                           shutdown_trigger=stop.wait))
    try:
        async with httpx.AsyncClient(base_url=urls[0], timeout=10) as client:
            yield backend, client
    finally:
        stop.set()
        ledger.close()


async def call(client: httpx.AsyncClient, method: str, params: dict) -> dict:
    resp = await client.post("/", json={"jsonrpc": "2.0", "id": 1, "method": method,
                                        "params": params})
    return resp.json()


async def test_transfer_through_rpc(served: tuple[LedgerBackend, httpx.AsyncClient]) -> None:
    backend, client = served
    tx = build_tx(ALICE, CHAIN, 0, TransferBody(to=BOB.address, amount=250))
    out: dict = {}

    async def send() -> None:
        out.update(await call(client, "broadcast_tx_commit", {"tx": tx.hex()}))

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(send)
            while len(backend.mempool) == 0:
                await trio.sleep(0.01)
            pending = (await call(client, "unconfirmed_txs", {}))["result"]
            assert pending == {"n_txs": 1, "total": 1, "total_bytes": len(tx), "txs": [tx.hex()]}
            backend.commit()
    assert (await call(client, "num_unconfirmed_txs", {}))["result"]["total"] == 0
    res = out["result"]
    assert res["check_tx"]["code"] == 0 and res["tx_result"]["code"] == 0
    assert res["height"] == 1
    bob = (await call(client, "account", {"address": BOB.address.hex()}))["result"]
    assert bob["balance"] == 250
    tx_json = (await call(client, "tx", {"hash": res["hash"]}))["result"]
    assert tx_json["tx"] == tx.hex() and tx_json["tx_result"]["code"] == 0
    st = (await call(client, "status", {}))["result"]
    assert st["sync_info"]["latest_app_hash"] == backend.ledger.app_hash.hex()

    # the fast nonce recheck keeps a pending next-nonce tx and drops nothing else
    nxt = build_tx(ALICE, CHAIN, 1, TransferBody(to=BOB.address, amount=5))
    assert (await call(client, "broadcast_tx_sync", {"tx": nxt.hex()}))["result"]["code"] == 0
    backend.mempool.update(backend.ledger.height + 1, [])  # a block without it
    assert list(backend.mempool) == [nxt]

    # replaying the same tx: the committed cache refuses it; a reused nonce is rejected
    again = (await call(client, "broadcast_tx_sync", {"tx": tx.hex()}))["result"]
    assert again["code"] != 0 and again["codespace"] == "mempool"
    stale = build_tx(ALICE, CHAIN, 0, TransferBody(to=BOB.address, amount=1))
    res = (await call(client, "broadcast_tx_sync", {"tx": stale.hex()}))["result"]
    assert res["code"] != 0 and "nonce" in res["log"]
    junk = (await call(client, "broadcast_tx_sync", {"tx": "00ff"}))["result"]
    assert junk["code"] != 0
    params = (await call(client, "params", {}))["result"]
    assert isinstance(params, dict) and params
    missing = await call(client, "model", {"model_id": "ab"})
    assert missing["error"]["code"] == -32001


async def test_model_ids_are_text_with_hex_beside(
        served: tuple[LedgerBackend, httpx.AsyncClient]) -> None:
    """Records and tx events show model ids as UTF-8 text plus ``*_hex``; ids whose
    bytes are not UTF-8 show ``null`` text and only the hex."""
    backend, client = served
    text_id, raw_id = "llama-3/ft ü", b"\xff\x00model"
    txs = [build_tx(ALICE, CHAIN, 0, RegisterModelBody(model_id=text_id.encode(),
                                                       weights_hash=b"\1" * 32)),
           build_tx(ALICE, CHAIN, 1, RegisterModelBody(model_id=raw_id, weights_hash=b"\2" * 32,
                                                       parent=text_id.encode()))]
    for tx in txs:
        assert (await call(client, "broadcast_tx_sync", {"tx": tx.hex()}))["result"]["code"] == 0
    backend.commit()

    model = (await call(client, "model", {"model_id": text_id.encode().hex()}))["result"]
    assert model["model_id"] == text_id and model["model_id_hex"] == text_id.encode().hex()
    assert model["parent"] == "" and model["parent_hex"] == ""
    child = (await call(client, "model", {"model_id": raw_id.hex()}))["result"]
    assert child["model_id"] is None and child["model_id_hex"] == raw_id.hex()
    assert child["parent"] == text_id and child["parent_hex"] == text_id.encode().hex()
    assert child["owner"] == ALICE.address.hex()  # other bytes stay hex

    events = (await call(client, "tx", {"hash": hashlib.sha256(txs[0]).hexdigest()})
              )["result"]["tx_result"]["events"]
    attrs = next(e["attributes"] for e in events if e["type"] == "register_model")
    assert attrs["model_id"] == text_id and attrs["model_id_hex"] == text_id.encode().hex()

    missing = await call(client, "model", {"model_id": b"nope".hex()})
    assert missing["error"]["message"].startswith('model "nope" not found')
    missing = await call(client, "model", {"model_id": "ff"})
    assert missing["error"]["message"].startswith("model 0xff not found")
