"""Handler: voucher redemption and how one redemption is split.

A redemption of ``paid`` (the voucher's new cumulative amount minus what was
already redeemed, capped by the escrow) is divided with integer floor
arithmetic in this order:

1. ``fee = paid * protocol_fee_bp / 10000`` to the block proposer (the
   validator share);
2. ``net = paid - fee``; each contributor split gets ``net * bp / 10000``;
3. ``rest = net - splits``; if the model has a parent, the parent chain
   gets ``royalty = rest * parent.royalty_bp / 10000``. Royalty income is
   treated like the parent's own revenue: the grandparent takes its
   ``royalty_bp`` of it, and so on up the chain (bounded by
   ``max_parent_depth``, which registration enforces);
4. the owner gets everything left, so all rounding dust goes to the owner
   and the parts always sum to ``paid`` exactly.
"""

from __future__ import annotations

from .errors import Code, TxFailed
from .params import BP
from .records import Model
from .state import Ctx
from .txs import RedeemBody
from .vouchers import verify_voucher


def distribute(ctx: Ctx, model: Model, paid: int) -> dict[str, int]:
    """Credit ``paid`` to proposer, splits, parent chain and owner; returns the parts."""
    state = ctx.state
    fee = paid * ctx.params.protocol_fee_bp // BP
    state.credit(ctx.proposer, fee)
    net = paid - fee
    split_total = 0
    for address, bp in model.splits:
        share = net * bp // BP
        state.credit(address, share)
        split_total += share
    rest = net - split_total
    royalty_total = 0
    if model.parent:
        node = state.model(model.parent)
        amount = rest * node.royalty_bp // BP if node else 0
        royalty_total = amount
        depth = 1
        while node is not None and amount:
            up_model = (state.model(node.parent)
                        if node.parent and depth < ctx.params.max_parent_depth else None)
            up = amount * up_model.royalty_bp // BP if up_model else 0
            state.credit(node.owner, amount - up)
            amount, node, depth = up, up_model, depth + 1
    owner_part = rest - royalty_total
    state.credit(model.owner, owner_part)
    return {"fee": fee, "splits": split_total, "royalty": royalty_total, "owner": owner_part}


def redeem(ctx: Ctx, body: RedeemBody) -> None:
    """The owner cashes the host's latest voucher.

    Vouchers are monotonic: the count and the amount may never go below
    what was already redeemed. If the escrow cannot cover the whole
    difference, the escrow is paid out and only that much is marked
    redeemed, so the same voucher can be cashed for the rest after the host
    tops the channel up; the ledger never pays more than the escrow.
    """
    model = ctx.state.model(body.model_id)
    if model is None:
        raise TxFailed(Code.NOT_FOUND, f"model {body.model_id.hex()} not registered")
    if model.owner != ctx.sender:
        raise TxFailed(Code.UNAUTHORIZED, "only the model owner may redeem vouchers")
    rec = ctx.state.host(body.model_id, body.host)
    if rec is None:
        raise TxFailed(Code.NOT_FOUND, f"no host {body.host.hex()} for this model")
    if not verify_voucher(rec.host_pubkey, ctx.chain_id, body.model_id, body.host,
                          body.cumulative_count, body.cumulative_amount, body.signature):
        raise TxFailed(Code.BAD_VOUCHER, "voucher is not signed by the host")
    if body.cumulative_count < rec.redeemed_count:
        raise TxFailed(Code.BAD_VOUCHER, f"voucher count {body.cumulative_count} goes back "
                                         f"from {rec.redeemed_count}")
    if body.cumulative_amount < rec.redeemed_amount:
        raise TxFailed(Code.BAD_VOUCHER, f"voucher amount {body.cumulative_amount} goes back "
                                         f"from {rec.redeemed_amount}")
    delta = body.cumulative_amount - rec.redeemed_amount
    paid = min(delta, rec.escrow)
    if paid == 0:
        raise TxFailed(Code.NOTHING_TO_REDEEM,
                       "voucher adds nothing" if delta == 0 else "escrow is empty")
    ctx.state.put_host(rec.but(escrow=rec.escrow - paid,
                               redeemed_amount=rec.redeemed_amount + paid,
                               redeemed_count=body.cumulative_count))
    parts = distribute(ctx, model, paid)
    ctx.emit("redeem", model_id=body.model_id, host=body.host, paid=paid,
             unpaid=delta - paid, **parts)
