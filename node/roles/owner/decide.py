"""The owner's grant-or-refuse decision for one permission request: a pure function.

Everything the decision depends on is passed in (the request, the ledger's
model and host records as committed, the voucher this owner stored last for
the pair, the query hashes that claims waiting in the owner's mempool name),
so every rule can be tested exhaustively without a node, a disk or a clock.
Rate limiting depends on time and lives in :mod:`.ratelimit`; the service
applies it before this.

The rules, in the order they are checked (the first that fails answers):

1. ``NOT_OWNER``: the model is unknown, or not owned by this node's account.
2. ``HOST_NOT_ACTIVE``: no host record, or its status is not ACTIVE (the
   owner signs nothing for a host that is pending, unbonding or withdrawn).
3. ``BAD_VOUCHER``: the voucher is not signed by the host record's key.
   A request that repeats the owner's last granted batch exactly (same
   seqs, hashes and voucher) is a retry after a lost answer: it is answered
   with the same permissions again (:class:`Replay`), which promises nothing
   new (Ed25519 signatures are deterministic: the same bytes come back).
4. ``VOUCHER_STALE``: ``first_seq`` is not exactly the count of the
   owner's latest voucher (the *baseline*; the chain's redeemed totals when
   the owner holds none). The batch must continue the host's counter with no
   gap and no overlap: overlap would sign a second permission for a seq.
5. ``BAD_VOUCHER``: ``cumulative_amount`` is not the baseline amount plus
   ``price_per_query`` for each query of the batch.
6. ``ESCROW_EXHAUSTED``: the new voucher's unredeemed part
   (``cumulative_amount - redeemed_amount``) exceeds the escrow left on chain,
   so a redeem could not pay all of it.
7. ``CLAIM_PENDING``: a claim against this host waiting in the mempool names
   one of the query hashes (a permission issued now could not rebut it
   anyway, and must not be sold for a query already being claimed).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from node.ledger.records import HostRecord, HostStatus, Model
from node.ledger.vouchers import verify_voucher

from .protocol import PermissionRequest, Refusal, stale_message


@dataclass(frozen=True, slots=True, kw_only=True)
class Voucher:
    """A host's signed cumulative debt for one model: what the owner redeems."""

    cumulative_count: int
    cumulative_amount: int
    signature: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class LastBatch:
    """The owner's last granted batch for a pair: what a retry must match exactly."""

    first_seq: int
    query_hashes: tuple[bytes, ...]
    issued_height: int


@dataclass(frozen=True, slots=True)
class Grant:
    """Accept: sign the batch and store ``voucher`` as the pair's latest."""

    voucher: Voucher


@dataclass(frozen=True, slots=True)
class Replay:
    """A retry of the last batch: sign the same bodies again, dated ``issued_height``."""

    issued_height: int


@dataclass(frozen=True, slots=True)
class Refuse:
    """Refuse with ``code``; nothing is signed or stored."""

    code: Refusal
    message: str


Decision = Grant | Replay | Refuse


def baseline(stored: Voucher | None, host: HostRecord) -> tuple[int, int]:
    """(count, amount) the next batch must continue from.

    The owner's stored voucher, unless the chain has redeemed further (the
    owner's store was lost or is older than the chain): then the chain's totals.
    """
    if stored is not None and stored.cumulative_count >= host.redeemed_count:
        return stored.cumulative_count, stored.cumulative_amount
    return host.redeemed_count, host.redeemed_amount


def decide(request: PermissionRequest, *, chain_id: str, owner: bytes, model: Model | None,
           host: HostRecord | None, stored: Voucher | None,
           pending_claims: Collection[bytes] = (), last_batch: LastBatch | None = None
           ) -> Decision:
    """Grant or refuse ``request`` (see the module docstring for the rules).

    Args:
        owner: this node's account address.
        model, host: the committed ledger records for the request's model and host.
        stored: the latest voucher this owner holds for (model, host), if any.
        pending_claims: query hashes named by ``open_claim`` transactions
            against this host for this model waiting in the owner's mempool.
        last_batch: the batch ``stored`` was accepted with (for retries).
    """
    if model is None:
        return Refuse(Refusal.NOT_OWNER, f"model {request.model_id.hex()} is not registered")
    if model.owner != owner:
        return Refuse(Refusal.NOT_OWNER, f"this node's account {owner.hex()} does not own "
                                         f"model {request.model_id.hex()}")
    if host is None:
        return Refuse(Refusal.HOST_NOT_ACTIVE,
                      f"host {request.host.hex()} has no access to this model")
    if host.status != HostStatus.ACTIVE:
        return Refuse(Refusal.HOST_NOT_ACTIVE,
                      f"host {request.host.hex()} is {HostStatus(host.status).name.lower()}")
    if not verify_voucher(host.host_pubkey, chain_id, request.model_id, request.host,
                          request.cumulative_count, request.cumulative_amount,
                          request.voucher_signature):
        return Refuse(Refusal.BAD_VOUCHER, "voucher is not signed by the host's key")
    if stored is not None and last_batch is not None and _repeats(request, stored, last_batch):
        return Replay(last_batch.issued_height)
    count, amount = baseline(stored, host)
    n = len(request.query_hashes)
    if request.first_seq != count:
        return Refuse(Refusal.VOUCHER_STALE, stale_message(
            count, f"batch starts at seq {request.first_seq}"))
    want = amount + model.price_per_query * n
    if request.cumulative_amount != want:
        return Refuse(Refusal.BAD_VOUCHER,
                      f"cumulative_amount {request.cumulative_amount} != {want} "
                      f"({amount} + {n} x price {model.price_per_query})")
    owed = request.cumulative_amount - host.redeemed_amount
    if owed > host.escrow:
        return Refuse(Refusal.ESCROW_EXHAUSTED,
                      f"unredeemed {owed} would exceed the escrow left {host.escrow}")
    if pending_claims:
        named = [q for q in request.query_hashes if q in pending_claims]
        if named:
            return Refuse(Refusal.CLAIM_PENDING,
                          f"a pending claim names query hash {named[0].hex()}")
    return Grant(Voucher(cumulative_count=request.cumulative_count,
                         cumulative_amount=request.cumulative_amount,
                         signature=request.voucher_signature))


def _repeats(request: PermissionRequest, stored: Voucher, last: LastBatch) -> bool:
    return (request.first_seq == last.first_seq
            and request.cumulative_count == stored.cumulative_count
            and request.cumulative_amount == stored.cumulative_amount
            and request.voucher_signature == stored.signature
            and request.query_hashes == last.query_hashes)
