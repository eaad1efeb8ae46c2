"""The mempool's check callback: ``check_tx`` plus what it cannot see, with a cache.

The mempool calls its check on admission *and* on every pending transaction
after every block (nonces move on). ``Ledger.check_tx`` verifies the Ed25519
signature each time (~70 us), so a pool of a few thousand transactions
would spend most of every block re-verifying signatures that cannot have
changed. :class:`CachedCheck` runs the full ``check_tx`` once per
transaction and remembers ``(sender, nonce, cost)`` for those that passed; a
recheck then only compares the nonce and the cost with the sender's
account, which is exactly the stateful half of the check (decoding, chain
id and signature are functions of the bytes alone, so their verdict cannot
change).

``check_tx`` accepts any correctly signed transaction with an unused nonce;
in a block, one that moves zero coins or that the sender cannot pay for
still *fails* there and consumes its nonce. This check refuses those at the
door (``INVALID_ARGUMENT`` for a zero amount, ``INSUFFICIENT_FUNDS`` for a
cost above the balance, ``BELOW_MINIMUM`` for a ``commit_claim`` bond under
what the ledger requires for the accused host's collateral), so they never
reach a block and the nonce stays unused. The outcome (:class:`CheckedTx`)
also reports the account's next nonce, its balance and the transaction's
cost, which the pool uses to tell executable from future transactions and
to stop one sender's pending transactions from spending more than it has.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .ledger import Code, TxCheck, TxDecodeError, decode_tx, required_claim_bond
from .ledger.txs import Kind, Tx
from .mempool import tx_hash

#: Kinds that debit the sender, and the body field holding the amount.
DEBIT_FIELD: dict[Kind, str] = {
    Kind.TRANSFER: "amount",
    Kind.FUND_CHANNEL: "amount",
    Kind.REGISTER_ROLE: "bond",
    Kind.REQUEST_ACCESS: "collateral",
    Kind.COMMIT_CLAIM: "bond",
}
#: Kinds whose handler fails on a zero amount (the others may legally be 0).
NONZERO: frozenset[Kind] = frozenset({Kind.TRANSFER, Kind.FUND_CHANNEL, Kind.REGISTER_ROLE})


@dataclass(frozen=True, slots=True)
class CheckedTx(TxCheck):
    """A :class:`TxCheck` with what the mempool's fairness rules need.

    ``account_nonce`` and ``balance``: the sender's account when checked
    (None/0 when it has none); ``cost``: what the transaction debits.
    """

    account_nonce: int | None = None
    balance: int = 0
    cost: int = 0


def tx_cost(tx: Tx) -> int:
    """What ``tx`` debits from its sender's balance if it succeeds."""
    name = DEBIT_FIELD.get(tx.kind)
    return 0 if name is None else int(getattr(tx.body, name))


def _verdict(code: Code, log: str, h: bytes, sender: bytes, nonce: int,
             account: tuple[int, int] | None, cost: int) -> CheckedTx:
    return CheckedTx(code, log, h, sender, nonce,
                     None if account is None else account[0],
                     0 if account is None else account[1], cost)


class CachedCheck:
    """``check(tx) -> CheckedTx``: ``ledger.check_tx`` plus cost checks, cheaper on recheck."""

    def __init__(self, ledger: Any, *, capacity: int = 100_000) -> None:
        self.ledger = ledger
        self.capacity = capacity
        self._ok: OrderedDict[bytes, tuple[bytes, int, int]] = OrderedDict()
        self.hits = 0
        self.misses = 0
        # sender -> (next nonce, balance), valid while the ledger stays at
        # _memo_height (state changes only in apply_block, which moves the height)
        self._accounts: dict[bytes, tuple[int, int] | None] = {}
        self._memo_height = -1

    def _account(self, sender: bytes) -> tuple[int, int] | None:
        if self._memo_height != self.ledger.height:
            self._accounts.clear()
            self._memo_height = self.ledger.height
        if sender not in self._accounts:
            acct = self.ledger.account(sender)
            self._accounts[sender] = None if acct is None else (acct.nonce, acct.balance)
        return self._accounts[sender]

    def __call__(self, tx: bytes) -> TxCheck:
        h = tx_hash(tx)
        cached = self._ok.get(h)
        if cached is None:
            self.misses += 1
            return self._full_check(tx, h)
        self.hits += 1
        sender, nonce, cost = cached
        account = self._account(sender)
        if account is None:
            return _verdict(Code.UNKNOWN_SENDER, "sender has no account", h, sender, nonce,
                            None, cost)
        if nonce < account[0]:
            self._ok.pop(h, None)  # can never pass again
            return _verdict(Code.BAD_NONCE, f"nonce {nonce} already used (next is {account[0]})",
                            h, sender, nonce, account, cost)
        if cost > account[1]:
            return _verdict(Code.INSUFFICIENT_FUNDS,
                            f"balance {account[1]} is short of the {cost} this tx needs",
                            h, sender, nonce, account, cost)
        return _verdict(Code.OK, "", h, sender, nonce, account, cost)

    def _full_check(self, tx: bytes, h: bytes) -> TxCheck:
        """``check_tx``, then the amount rules; caches what passes."""
        res = self.ledger.check_tx(tx)
        if not res.ok:
            return res
        parsed = decode_tx(tx)  # cannot fail: check_tx just decoded it
        cost = tx_cost(parsed)
        account = self._account(res.sender)
        refusal = self._amount_refusal(parsed, cost, account)
        if refusal is not None:
            return _verdict(refusal[0], refusal[1], h, res.sender, res.nonce, account, cost)
        self._ok[h] = (res.sender, res.nonce, cost)
        if len(self._ok) > self.capacity:
            self._ok.popitem(last=False)
        return _verdict(Code.OK, "", h, res.sender, res.nonce, account, cost)

    def _amount_refusal(self, parsed: Tx, cost: int,
                        account: tuple[int, int] | None) -> tuple[Code, str] | None:
        """Why ``parsed`` would fail in a block for its amounts alone, or None."""
        name = DEBIT_FIELD.get(parsed.kind)
        if parsed.kind in NONZERO and cost == 0:
            return Code.INVALID_ARGUMENT, f"{name} must be positive"
        if parsed.kind is Kind.COMMIT_CLAIM:
            need = self._claim_bond(parsed)
            if cost < need:
                return Code.BELOW_MINIMUM, f"claim bond {cost} < minimum {need}"
        balance = 0 if account is None else account[1]
        if cost > balance:
            return (Code.INSUFFICIENT_FUNDS,
                    f"balance {balance} is short of the {cost} this {parsed.kind.name.lower()} "
                    f"needs ({name})")
        return None

    def _claim_bond(self, parsed: Tx) -> int:
        """The least bond the ledger would accept for this ``commit_claim`` now."""
        params = self.ledger.params()
        rec = self.ledger.host(parsed.body.model_id, parsed.body.host)
        return params.min_claim_bond if rec is None else required_claim_bond(params, rec)

    def sender_nonce(self, tx: bytes) -> tuple[bytes, int] | None:
        """(sender address, nonce) of ``tx``, from the cache or by decoding; None if junk."""
        cached = self._ok.get(tx_hash(tx))
        if cached is not None:
            return cached[0], cached[1]
        try:
            parsed = decode_tx(tx)
        except TxDecodeError:
            return None
        return parsed.sender, parsed.nonce


def order_for_block(txs: Sequence[bytes],
                    sender_nonce: Callable[[bytes], tuple[bytes, int] | None],
                    next_nonce: Callable[[bytes], int]) -> list[bytes]:
    """The transactions a proposer should put in a block, in an order that can succeed.

    The mempool is FIFO by arrival, but one sender's transactions may arrive
    out of nonce order (concurrent RPC calls, gossip from several peers); in
    arrival order the later nonce would fail and, being committed, could
    never be resent with the same bytes. So, per sender (senders in order of
    first appearance), transactions are sorted by nonce and only the
    contiguous run starting at the account's next nonce is taken; the rest
    stay in the mempool until the gap is filled. Undecodable bytes are left
    out (they would only fail).
    """
    by_sender: dict[bytes, dict[int, bytes]] = {}
    for tx in txs:
        info = sender_nonce(tx)
        if info is None:
            continue
        sender, nonce = info
        by_sender.setdefault(sender, {}).setdefault(nonce, tx)
    out: list[bytes] = []
    for sender, txs_by_nonce in by_sender.items():
        n = next_nonce(sender)
        while n in txs_by_nonce:
            out.append(txs_by_nonce[n])
            n += 1
    return out


__all__ = ["CachedCheck", "CheckedTx", "order_for_block", "tx_cost"]
