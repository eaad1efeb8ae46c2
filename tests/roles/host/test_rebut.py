"""Automatic rebuttal on a real chain: a claim against the host is dismissed with its permission.

Blocks are real (signed commits, the real ledger); the host's follower reads
them through its durable cursor, and its rebuttal goes through the real
:class:`TxSender` into a mempool stand-in that the test puts in the next block.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trio

from consensus.crypto import Signer
from node.ledger import (
    CommitClaimBody,
    CommitOmlizationBody,
    OpenClaimBody,
    RegisterModelBody,
    RegisterRoleBody,
    RequestAccessBody,
    Role,
    build_tx,
    claim_commitment,
)
from node.ledger.records import ClaimStatus
from node.ledger.txs import tx_hash
from node.ledger.vouchers import query_hash, sign_permission
from node.roles.cursor import ChainFollower
from node.roles.host.rebut import DONE, NO_PERMIT, Rebutter
from node.roles.host.store import HostStore, Permit, VoucherState
from node.roles.txsender import TxSender
from tests.daemon._chainkit import Producer, close_chain, make_genesis, open_chain
from tests.ledger.ledger_helpers import PACKAGE, PACKAGE_BLOB, WEIGHTS, make_fingerprints

MODEL = b"rebut-model"
OWNER, HOST, OMLIZER, PROVER = range(4)


@dataclass
class Mempool:
    """Stands in for the node's mempool: takes any tx; the test commits them in a block."""

    producer: Producer
    pending: list[bytes] = field(default_factory=list)

    def account(self, address: bytes):
        return self.producer.chain.ledger.account(address)

    async def broadcast_tx(self, tx: bytes):
        self.pending.append(tx)

        @dataclass
        class Ok:
            code: int = 0
            log: str = ""

        return Ok()

    def commit(self) -> None:
        txs, self.pending = tuple(self.pending), []
        self.producer.produce(txs)


@pytest.fixture
def world(tmp_path: Path):
    genesis, signers, accounts = make_genesis(n_accounts=4, params={"claim_min_matches": 2})
    chain = open_chain(tmp_path / "chain", genesis)
    producer = Producer(chain, signers, accounts)
    yield producer, accounts
    close_chain(chain)


def send(producer: Producer, who: int, *bodies) -> None:
    txs = []
    for body in bodies:
        txs.append(build_tx(producer.accounts[who], producer.chain.chain_id,
                            producer.nonces[who], body))
        producer.nonces[who] += 1
    _block, _ = producer.produce(tuple(txs))
    for tx in txs:
        assert producer.chain.indexed_tx(tx_hash(tx)).code == 0


def setup_host(producer: Producer, accounts) -> object:
    host = accounts[HOST].address
    send(producer, OWNER, RegisterModelBody(model_id=MODEL, weights_hash=WEIGHTS,
                                            price_per_query=3, min_collateral=1_000,
                                            omlizers=(accounts[OMLIZER].address,), splits=(),
                                            parent=b""))
    send(producer, HOST, RequestAccessBody(model_id=MODEL, collateral=10_000,
                                           endpoint="http://127.0.0.1:1"))
    send(producer, OMLIZER, RegisterRoleBody(role=Role.OMLIZER, bond=1_000))
    send(producer, PROVER, RegisterRoleBody(role=Role.PROVER, bond=1_000))
    fps = make_fingerprints(MODEL, host, 6)
    send(producer, OMLIZER, CommitOmlizationBody(model_id=MODEL, host=host,
                                                 package_hash=PACKAGE, fp_root=fps.root,
                                                 fp_count=6, package_blob=PACKAGE_BLOB))
    return fps


def file_claims(producer: Producer, fps, *claims: tuple[int, ...]) -> None:
    """The prover commits to ``claims`` (index tuples) in one block, opens them in the next."""
    prover = producer.accounts[PROVER].address
    first = producer.chain.ledger.claims(limit=1_000)
    ids = range(len(first), len(first) + len(claims))
    drafts = [tuple((i, fps.keys[i], fps.responses[i]) for i in c) for c in claims]
    send(producer, PROVER, *(CommitClaimBody(
        model_id=MODEL, host=fps.host, bond=100,
        commitment=claim_commitment(producer.chain.chain_id, prover, MODEL, fps.host, items,
                                    bytes(32))) for items in drafts))
    send(producer, PROVER, *(OpenClaimBody(claim_id=cid, items=items, salt=bytes(32))
                             for cid, items in zip(ids, drafts, strict=True)))


async def test_claims_against_the_host_are_rebutted_once(world, tmp_path: Path):
    producer, accounts = world
    chain = producer.chain
    fps = setup_host(producer, accounts)
    host_key = Signer(accounts[HOST])
    store = HostStore.open(tmp_path / "host")
    # the gateway bought a permission for key 0 (as the permitter stores it)
    issued = chain.height
    sig = sign_permission(Signer(accounts[OWNER]), chain.chain_id, MODEL, host_key.address, 7,
                          fps.keys[0], issued_height=issued)
    store.record_grant(MODEL, VoucherState(8, 24, b""),
                       [(query_hash(fps.keys[0]), Permit(7, issued, sig))])
    mempool = Mempool(producer)
    txs = TxSender(signer=host_key, address=host_key.address, chain_id=chain.chain_id,
                   backend=mempool, index=chain)
    rebutter = Rebutter(store=store, chain=chain, txs=txs, host=host_key.address)
    follower = ChainFollower(store.db, chain)

    # claim 0 names keys 3 and 0 (0 permitted); claim 1 keys 1 and 2, never permitted
    file_claims(producer, fps, (3, 0), (1, 2))
    follower.handle_available(rebutter.on_block)
    states = {r.claim_id: r for r in rebutter.rebuttals()}
    assert states[1].state == NO_PERMIT and states[0].seq == 7 and states[0].fp_index == 0
    assert states[0].committed_height == chain.height - 1  # the commitment's block

    async with trio.open_nursery() as nursery:
        nursery.start_soon(rebutter.run)
        with trio.fail_after(10):
            while not mempool.pending:
                await trio.sleep(0.01)
        assert len(mempool.pending) == 1
        mempool.commit()
        rebutter.notify()
        with trio.fail_after(10):
            while rebutter.rebuttals()[0].state != DONE:
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert chain.ledger.claim(0).status == ClaimStatus.DISMISSED
    assert chain.ledger.claim(1).status == ClaimStatus.OPEN
    assert mempool.pending == []  # posted exactly once
    # a restart re-reads the same records and posts nothing again
    follower.handle_available(rebutter.on_block)
    assert [r.state for r in rebutter.rebuttals()] == [DONE, NO_PERMIT]
    store.close()


async def test_a_permission_bought_after_the_commitment_is_not_used(world, tmp_path: Path):
    """A cheater that sees a commitment against it and buys permissions before the
    claim is opened gets them dated at or after the commitment's block: useless."""
    producer, accounts = world
    chain = producer.chain
    fps = setup_host(producer, accounts)
    host_key = Signer(accounts[HOST])
    store = HostStore.open(tmp_path / "host")
    late = chain.height + 1  # the commitment's own block
    sig = sign_permission(Signer(accounts[OWNER]), chain.chain_id, MODEL, host_key.address, 0,
                          fps.keys[2], issued_height=late)
    store.record_grant(MODEL, VoucherState(1, 3, b""),
                       [(query_hash(fps.keys[2]), Permit(0, late, sig))])
    rebutter = Rebutter(store=store, chain=chain, txs=None, host=host_key.address)
    file_claims(producer, fps, (2, 4))
    ChainFollower(store.db, chain).handle_available(rebutter.on_block)
    assert [r.state for r in rebutter.rebuttals()] == [NO_PERMIT]
    store.close()
