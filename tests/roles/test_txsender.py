"""The node's TxSender: one nonce sequence for every role, re-submission of stored bytes."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from consensus.crypto import PrivateKey, Signer
from node.ledger import TransferBody
from node.ledger.errors import Code
from node.ledger.txs import decode_tx, tx_hash
from node.roles.txsender import TxSender, TxSendError

KEY = PrivateKey(b"\x05" * 32)
OTHER = PrivateKey(b"\x06" * 32).address


@dataclass
class Check:
    code: int = 0
    log: str = ""
    codespace: str = ""


@dataclass
class Account:
    nonce: int


@dataclass
class FakeNode:
    """A mempool that insists on sequential nonces, and a ledger nonce tests can move."""

    ledger_nonce: int = 0
    pending: list[bytes] = field(default_factory=list)
    committed: dict[bytes, object] = field(default_factory=dict)

    def account(self, address: bytes) -> Account:
        return Account(self.ledger_nonce)

    async def broadcast_tx(self, tx: bytes) -> Check:
        if tx in self.pending:
            return Check(1, "tx already in mempool", "mempool")
        want = self.ledger_nonce + len(self.pending)
        nonce = decode_tx(tx).nonce
        if nonce != want:
            return Check(int(Code.BAD_NONCE), f"nonce {nonce}, want {want}", "bad_nonce")
        self.pending.append(tx)
        return Check()

    def indexed_tx(self, h: bytes) -> object | None:
        return self.committed.get(h)

    def commit_all(self) -> None:
        for tx in self.pending:
            self.committed[tx_hash(tx)] = object()
        self.ledger_nonce += len(self.pending)
        self.pending.clear()


def sender(node: FakeNode) -> TxSender:
    return TxSender(signer=Signer(KEY), address=KEY.address, chain_id="c", backend=node,
                    index=node, mempool_txs=lambda: iter(node.pending))


def body(amount: int) -> TransferBody:
    return TransferBody(to=OTHER, amount=amount)


async def test_nonces_follow_the_mempool_not_just_the_ledger():
    node = FakeNode(ledger_nonce=3)
    s = sender(node)
    for amount in (1, 2, 3):
        await s.send(body(amount))
    assert [decode_tx(t).nonce for t in node.pending] == [3, 4, 5]
    node.commit_all()
    await s.send(body(4))
    assert decode_tx(node.pending[0]).nonce == 6


async def test_a_nonce_taken_elsewhere_is_re_read_and_the_body_re_signed():
    node = FakeNode()
    s = sender(node)
    await s.send(body(1))
    node.commit_all()
    node.ledger_nonce += 2  # another tool used the account twice meanwhile
    await s.send(body(2))
    assert decode_tx(node.pending[-1]).nonce == 3


async def test_stored_bytes_are_submitted_once_and_again_harmlessly():
    node = FakeNode()
    s = sender(node)
    tx = await s.sign(body(7))
    h = await s.submit(tx)
    assert await s.submit(tx) == h and node.pending == [tx]  # already pending: fine
    node.commit_all()
    assert await s.submit(tx) == h and s.result(h) is not None  # committed: not re-sent
    assert node.pending == []


async def test_a_refused_tx_raises_with_the_code():
    node = FakeNode()

    async def refuse(tx: bytes) -> Check:
        return Check(int(Code.INSUFFICIENT_FUNDS), "balance short")
    node.broadcast_tx = refuse  # type: ignore[method-assign]
    with pytest.raises(TxSendError) as err:
        await sender(node).send(body(1))
    assert err.value.code == Code.INSUFFICIENT_FUNDS and "balance short" in str(err.value)


async def test_the_mempools_own_code_5_is_not_a_stale_nonce():
    node = FakeNode()
    calls = []

    async def overspent(tx: bytes) -> Check:
        calls.append(tx)
        return Check(5, "pending txs would cost more than the balance", "mempool")
    node.broadcast_tx = overspent  # type: ignore[method-assign]
    with pytest.raises(TxSendError) as err:
        await sender(node).send(body(1))
    assert not err.value.stale_nonce and len(calls) == 1  # not re-signed and re-sent
