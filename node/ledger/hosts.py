"""Handlers: host access, OMLization commits, fee escrow and collateral withdrawal.

Host lifecycle (one record per model and host)::

    request_access        commit_omlization       begin_withdrawal
    ----------> PENDING ------------------> ACTIVE ---------------> UNBONDING
                   |                                                   |
                   +---------- begin_withdrawal ----------------------+
                                                                       | complete_withdrawal
       request_access (new generation) <------------ WITHDRAWN <------+  (delay over,
                                                                          no open claims)

Withdrawal has two steps like Cosmos SDK unbonding: the delay gives the
owner time to redeem the last vouchers and provers time to file claims,
which still count against the host while it unbonds.
"""

from __future__ import annotations

from .errors import Code, InvariantError, TxFailed
from .records import HostRecord, HostStatus
from .state import Ctx, checked_add
from .txs import (
    BeginWithdrawalBody,
    CommitOmlizationBody,
    CompleteWithdrawalBody,
    FundChannelBody,
    RequestAccessBody,
    Role,
)

# Transitions allowed by each host transaction: kind -> statuses it may start from.
ALLOWED_FROM = {
    "commit_omlization": (HostStatus.PENDING,),
    "fund_channel": (HostStatus.PENDING, HostStatus.ACTIVE),
    "begin_withdrawal": (HostStatus.PENDING, HostStatus.ACTIVE),
    "complete_withdrawal": (HostStatus.UNBONDING,),
}


def _host(ctx: Ctx, model_id: bytes, host: bytes, action: str) -> HostRecord:
    rec = ctx.state.host(model_id, host)
    if rec is None:
        raise TxFailed(Code.NOT_FOUND, f"no host {host.hex()} for model {model_id.hex()}")
    if HostStatus(rec.status) not in ALLOWED_FROM[action]:
        raise TxFailed(Code.WRONG_STATE,
                       f"{action} not allowed while host is {HostStatus(rec.status).name.lower()}")
    return rec


def request_access(ctx: Ctx, body: RequestAccessBody) -> None:
    model = ctx.state.model(body.model_id)
    if model is None:
        raise TxFailed(Code.NOT_FOUND, f"model {body.model_id.hex()} not registered")
    if body.collateral < model.min_collateral:
        raise TxFailed(Code.BELOW_MINIMUM,
                       f"collateral {body.collateral} < model minimum {model.min_collateral}")
    old = ctx.state.host(body.model_id, ctx.sender)
    if old is not None and old.status != HostStatus.WITHDRAWN:
        raise TxFailed(Code.ALREADY_EXISTS, "host already has access to this model")
    ctx.state.debit(ctx.sender, body.collateral)
    # Redeemed totals survive a re-grant: vouchers are cumulative per (model,
    # host), so resetting them would let an old voucher be cashed twice.
    rec = HostRecord(model_id=body.model_id, host=ctx.sender, host_pubkey=ctx.sender_pubkey,
                     status=HostStatus.PENDING, endpoint=body.endpoint,
                     collateral=body.collateral,
                     redeemed_amount=old.redeemed_amount if old else 0,
                     redeemed_count=old.redeemed_count if old else 0,
                     generation=old.generation + 1 if old else 0,
                     slashed_total=old.slashed_total if old else 0)
    ctx.state.put_host(rec)
    ctx.emit("request_access", model_id=body.model_id, host=ctx.sender,
             collateral=body.collateral, endpoint=body.endpoint, generation=rec.generation)


def commit_omlization(ctx: Ctx, body: CommitOmlizationBody) -> None:
    """Only an OMLizer the owner listed, with a role bond, may commit; host becomes ACTIVE."""
    model = ctx.state.model(body.model_id)
    if model is None:
        raise TxFailed(Code.NOT_FOUND, f"model {body.model_id.hex()} not registered")
    if ctx.sender not in model.omlizers:
        raise TxFailed(Code.UNAUTHORIZED, "sender is not an OMLizer authorised by the owner")
    role = ctx.state.role(Role.OMLIZER, ctx.sender)
    if role is None:
        raise TxFailed(Code.UNAUTHORIZED, "sender is not a registered OMLizer")
    if role.bond < ctx.params.min_omlizer_bond:
        raise TxFailed(Code.BELOW_MINIMUM, f"OMLizer bond {role.bond} fell below the minimum "
                                           f"{ctx.params.min_omlizer_bond}; top it up")
    if body.fp_count > ctx.params.max_fp_count:
        raise TxFailed(Code.INVALID_ARGUMENT,
                       f"fp_count {body.fp_count} exceeds max_fp_count {ctx.params.max_fp_count}")
    rec = _host(ctx, body.model_id, body.host, "commit_omlization")
    ctx.state.put_role(role.but(committed_hosts=role.committed_hosts + 1))
    ctx.state.put_host(rec.but(status=HostStatus.ACTIVE, omlizer=ctx.sender,
                               package_hash=body.package_hash, fp_root=body.fp_root,
                               fp_count=body.fp_count, package_blob=body.package_blob))
    ctx.emit("commit_omlization", model_id=body.model_id, host=body.host, omlizer=ctx.sender,
             fp_root=body.fp_root, fp_count=body.fp_count, package_hash=body.package_hash,
             package_blob=body.package_blob)


def fund_channel(ctx: Ctx, body: FundChannelBody) -> None:
    if body.amount == 0:
        raise TxFailed(Code.INVALID_ARGUMENT, "amount must be positive")
    rec = _host(ctx, body.model_id, ctx.sender, "fund_channel")
    ctx.state.debit(ctx.sender, body.amount)
    ctx.state.put_host(rec.but(escrow=checked_add(rec.escrow, body.amount)))
    ctx.emit("fund_channel", model_id=body.model_id, host=ctx.sender, amount=body.amount)


def begin_withdrawal(ctx: Ctx, body: BeginWithdrawalBody) -> None:
    rec = _host(ctx, body.model_id, ctx.sender, "begin_withdrawal")
    ctx.state.put_host(rec.but(status=HostStatus.UNBONDING, unbonding_height=ctx.height))
    ctx.emit("begin_withdrawal", model_id=body.model_id, host=ctx.sender,
             completes_at=ctx.height + ctx.params.unbonding_delay)


def complete_withdrawal(ctx: Ctx, body: CompleteWithdrawalBody) -> None:
    """Return collateral and unredeemed escrow once the delay is over and no claim is open."""
    rec = _host(ctx, body.model_id, ctx.sender, "complete_withdrawal")
    ready = rec.unbonding_height + ctx.params.unbonding_delay
    if ctx.height < ready:
        raise TxFailed(Code.TOO_EARLY, f"unbonding completes at height {ready}")
    if rec.open_claims:
        raise TxFailed(Code.OPEN_CLAIMS, f"{rec.open_claims} claim(s) still open against host")
    refund = checked_add(rec.collateral, rec.escrow)
    if rec.omlizer:  # the OMLizer owes this host's reveals no longer
        role = ctx.state.role(Role.OMLIZER, rec.omlizer)
        if role is None:
            raise InvariantError("a committing OMLizer's role record is gone")
        ctx.state.put_role(role.but(committed_hosts=role.committed_hosts - 1))
    ctx.state.credit(ctx.sender, refund)
    ctx.state.put_host(rec.but(status=HostStatus.WITHDRAWN, collateral=0, escrow=0))
    ctx.emit("complete_withdrawal", model_id=body.model_id, host=ctx.sender, refund=refund)
