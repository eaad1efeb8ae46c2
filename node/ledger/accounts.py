"""Handlers: transfers and OMLizer/prover role bonds."""

from __future__ import annotations

from .errors import Code, TxFailed
from .records import RoleRecord
from .state import Ctx, checked_add
from .txs import RegisterRoleBody, Role, TransferBody, UnregisterRoleBody


def transfer(ctx: Ctx, body: TransferBody) -> None:
    if body.amount == 0:
        raise TxFailed(Code.INVALID_ARGUMENT, "amount must be positive")
    ctx.state.debit(ctx.sender, body.amount)
    ctx.state.credit(body.to, body.amount)
    ctx.emit("transfer", sender=ctx.sender, to=body.to, amount=body.amount)


def register_role(ctx: Ctx, body: RegisterRoleBody) -> None:
    """Register as OMLizer or prover, or top up an existing bond.

    The bond after this transaction must reach the role's minimum, so a
    first registration below it fails while a small top-up of an already
    sufficient bond succeeds.
    """
    if body.bond == 0:
        raise TxFailed(Code.INVALID_ARGUMENT, "bond must be positive")
    role = Role(body.role)
    minimum = (ctx.params.min_omlizer_bond if role is Role.OMLIZER
               else ctx.params.min_prover_bond)
    rec = ctx.state.role(role, ctx.sender) or RoleRecord(role=role, address=ctx.sender, bond=0)
    total = checked_add(rec.bond, body.bond)
    if total < minimum:
        raise TxFailed(Code.BELOW_MINIMUM, f"{role.name.lower()} bond {total} < minimum {minimum}")
    ctx.state.debit(ctx.sender, body.bond)
    ctx.state.put_role(rec.but(bond=total))
    ctx.emit("register_role", address=ctx.sender, role=role.name.lower(), bond=total)


def unregister_role(ctx: Ctx, body: UnregisterRoleBody) -> None:
    """Leave a role; the bond comes back at once.

    A prover may always leave (its stake in a claim is the claim's own
    bond). An OMLizer may leave only once every host it committed has
    withdrawn: until then it owes their reveals, and its bond answers for a
    missed one (see :func:`claims.settle_due`).
    """
    role = Role(body.role)
    rec = ctx.state.role(role, ctx.sender)
    if rec is None:
        raise TxFailed(Code.NOT_FOUND, f"sender is not a registered {role.name.lower()}")
    if rec.committed_hosts:
        raise TxFailed(Code.WRONG_STATE, f"{rec.committed_hosts} host(s) this OMLizer committed "
                                         "still hold access; it owes their reveals")
    ctx.state.delete_role(role, ctx.sender)
    ctx.state.credit(ctx.sender, rec.bond)
    ctx.emit("unregister_role", address=ctx.sender, role=role.name.lower(), refund=rec.bond)
