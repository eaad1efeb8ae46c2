"""Gateway and owner on two real libp2p transports, the owner on a real chain.

The owner's node is the owner tests' ``OwnerNode`` (real Chain fed by a
Producer, real mempool, the real OwnerService on ``/oml/permission/1``). The
gateway asks it through :class:`OwnerClient` (finding the owner among its
connected peers), serves the tiny model to the official openai client, and
tops its escrow up with ``fund_channel`` when the owner says it is exhausted.
"""

from __future__ import annotations

from pathlib import Path

import openai
import pytest
import trio

from consensus.crypto import Signer
from node.config import OwnerRole
from node.ledger.vouchers import query_hash, verify_permission
from node.roles.host.funding import ChannelFunder
from node.roles.host.owner_client import OwnerClient
from node.roles.host.permits import Permitter
from node.roles.host.store import HostStore
from node.roles.txsender import TxSender
from tests.net.net_helpers import bounded, config, hosts, link
from tests.roles.owner.owner_kit import HOST, MODEL_ID, OWNER, PRICE, NodeSide, OwnerNode

from .gwkit import make_gateway, serving
from .test_gateway_http import client, in_thread

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]
NAME = MODEL_ID.decode()


async def wait_for(pred, timeout: float = 20.0, what: str = "condition") -> None:
    with trio.move_on_after(timeout):
        while not pred():
            await trio.sleep(0.01)
        return
    raise AssertionError(f"timed out waiting for {what}")


@bounded(150)
async def test_paid_permitted_answers_and_escrow_top_up(tmp_path: Path, engine) -> None:
    node = OwnerNode.create(tmp_path / "owner-node")
    store = HostStore.open(tmp_path / "host")
    try:
        node.setup_model(escrow=2 * PRICE)  # two queries' worth
        side = NodeSide(node.chain, node.mempool)
        host_key = Signer(node.keys[HOST])
        chain_id = node.chain.chain_id
        async with hosts(config("owner"), config("stranger"), config("host")) as (
                owner_net, stranger_net, host_net):
            await link(host_net, stranger_net)  # a peer that is not the owner, asked first
            await link(host_net, owner_net)
            service = node.service(owner_net, OwnerRole(enabled=True))
            host_txs = TxSender(signer=host_key, address=host_key.address, chain_id=chain_id,
                                backend=side, index=node.chain,
                                mempool_txs=lambda: iter(node.mempool))
            funder = ChannelFunder(store=store, ledger=side, txs=host_txs, model_id=MODEL_ID,
                                   host=host_key.address, budget=100 * PRICE,
                                   threshold=PRICE, amount=10 * PRICE)
            permitter = Permitter(store=store, source=OwnerClient(host_net), ledger=side,
                                  signer=host_key, chain_id=chain_id, model_id=MODEL_ID,
                                  on_refused=lambda exc: funder.wake())
            gateway = make_gateway(engine, permitter, store)
            gateway.model_name = NAME
            async with trio.open_nursery() as nursery:
                await nursery.start(service.run)
                async with serving(gateway, permitter) as base:
                    def two_then_refused():
                        c = client(base)
                        texts = [c.completions.create(model=NAME, prompt=f"query {i}",
                                                      max_tokens=3, temperature=0)
                                 for i in range(2)]
                        with pytest.raises(openai.APIStatusError) as info:
                            c.completions.create(model=NAME, prompt="query 2", max_tokens=3)
                        return texts, info.value

                    texts, refused = await in_thread(two_then_refused)
                    assert len(texts) == 2
                    assert refused.status_code == 402
                    assert refused.body["code"] == "escrow_exhausted"
                    assert engine.runs == 2
                    # the gateway tops up by itself; once committed, it serves again
                    nursery.start_soon(funder.run)
                    await wait_for(lambda: len(node.mempool) > 0, what="fund_channel")
                    node.commit_mempool()
                    await wait_for(lambda: node.ledger.host(MODEL_ID, host_key.address)
                                   .escrow == 12 * PRICE, what="escrow topped up")

                    def again():
                        return client(base).chat.completions.create(
                            model=NAME, max_tokens=3, temperature=0,
                            messages=[{"role": "user", "content": "query 2"}])

                    await in_thread(again)
                held = service.store.held(MODEL_ID, host_key.address)
                nursery.cancel_scope.cancel()
        assert engine.runs == 3 and store.funded() == 10 * PRICE
        owner_pub = node.keys[OWNER].public_key
        for i in range(3):
            (p,) = store.permits_for(MODEL_ID, query_hash(f"query {i}"))
            assert verify_permission(owner_pub, chain_id, MODEL_ID, host_key.address, p.seq,
                                     query_hash(f"query {i}"), p.signature,
                                     issued_height=p.issued_height)
        assert held.voucher.cumulative_count == store.voucher(MODEL_ID).count == 3
        assert held.voucher.cumulative_amount == 3 * PRICE
    finally:
        store.close()
        node.close()
