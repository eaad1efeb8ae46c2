"""Running one transaction: the stateless preflight and the stateful execution.

Two classes of failure, as in CometBFT:

* **rejected** (``Code.rejected``): malformed bytes, wrong chain, bad
  signature, unknown sender, wrong nonce. Such a transaction should never
  have left the mempool; if a proposer includes it anyway it gets its code
  and changes *nothing*, not even the nonce (nobody authorised it, so
  nobody's nonce may move).
* **failed**: a correctly signed transaction with the right nonce whose
  handler raised :class:`TxFailed`. Its nonce is consumed (the sender did
  sign it), the sender's public key is recorded, and every other write is
  discarded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from consensus.encoding import U64_MAX

from . import accounts, channels, claims, hosts, models
from .errors import Code, TxDecodeError, TxFailed
from .results import TxCheck, TxResult
from .state import Ctx, Overlay, State
from .txs import Kind, Tx, decode_tx, tx_hash

HANDLERS: dict[Kind, Callable[[Ctx, Any], None]] = {
    Kind.TRANSFER: accounts.transfer,
    Kind.REGISTER_MODEL: models.register_model,
    Kind.UPDATE_MODEL: models.update_model,
    Kind.REGISTER_ROLE: accounts.register_role,
    Kind.REQUEST_ACCESS: hosts.request_access,
    Kind.COMMIT_OMLIZATION: hosts.commit_omlization,
    Kind.FUND_CHANNEL: hosts.fund_channel,
    Kind.REDEEM: channels.redeem,
    Kind.COMMIT_CLAIM: claims.commit_claim,
    Kind.OPEN_CLAIM: claims.open_claim,
    Kind.REVEAL: claims.reveal,
    Kind.REBUT: claims.rebut,
    Kind.BEGIN_WITHDRAWAL: hosts.begin_withdrawal,
    Kind.COMPLETE_WITHDRAWAL: hosts.complete_withdrawal,
    Kind.UNREGISTER_ROLE: accounts.unregister_role,
}


def decode_and_check_chain(raw: bytes, chain_id: str) -> tuple[Tx | None, TxCheck]:
    """Size, decoding and chain id: everything stateless except the signature."""
    try:
        tx = decode_tx(raw)
    except TxDecodeError as exc:
        h = tx_hash(bytes(raw)) if isinstance(raw, (bytes, bytearray, memoryview)) else b""
        return None, TxCheck(exc.code, str(exc), h)
    if tx.chain_id != chain_id:
        return tx, TxCheck(Code.WRONG_CHAIN, f"tx is for chain {tx.chain_id!r}, not {chain_id!r}",
                           tx.hash, tx.sender, tx.nonce)
    return tx, TxCheck(Code.OK, "", tx.hash, tx.sender, tx.nonce)


def signature_check(tx: Tx, check: TxCheck) -> TxCheck:
    """``check`` unless the signature fails. Releases the GIL while verifying."""
    if check.ok and not tx.verify_signature():
        return TxCheck(Code.BAD_SIGNATURE, "signature does not verify", tx.hash, tx.sender,
                       tx.nonce)
    return check


def preflight(raw: bytes, chain_id: str, verify: bool = True) -> tuple[Tx | None, TxCheck]:
    """Stateless checks: size, decoding, chain id and (if ``verify``) signature."""
    tx, check = decode_and_check_chain(raw, chain_id)
    if verify and tx is not None:
        check = signature_check(tx, check)
    return tx, check


def execute(block_kv: Overlay, ctx_base: Ctx, tx: Tx) -> TxResult:
    """Apply one preflighted transaction to the block's overlay."""
    kind = tx.kind.name.lower()
    state = State(block_kv)
    sender = tx.sender
    acct = state.account(sender)
    if acct is None:
        return TxResult(Code.UNKNOWN_SENDER, "sender has no account", tx.hash, kind=kind)
    if tx.nonce != acct.nonce or acct.nonce == U64_MAX:
        return TxResult(Code.BAD_NONCE, f"nonce {tx.nonce}, expected {acct.nonce}", tx.hash,
                        kind=kind)
    # The sender signed with the key its address derives from, so recording
    # the key here (failed transactions included) makes it public and authentic.
    state.put_account(sender, acct.but(nonce=acct.nonce + 1, pub_key=tx.sender_pubkey))
    child = Overlay(block_kv)
    ctx = Ctx(state=State(child), params=ctx_base.params, chain_id=ctx_base.chain_id,
              height=ctx_base.height, time_ms=ctx_base.time_ms, proposer=ctx_base.proposer,
              sender=sender, sender_pubkey=tx.sender_pubkey)
    try:
        HANDLERS[tx.kind](ctx, tx.body)
    except TxFailed as exc:
        return TxResult(exc.code, exc.message, tx.hash, kind=kind)
    child.merge_into_parent()
    return TxResult(Code.OK, "", tx.hash, tuple(ctx.events), kind=kind)
