"""Handlers: prover claims, OMLizer reveals and host rebuttals.

Claim lifecycle (``ClaimStatus``)::

    submit_claim -> OPEN --reveal opens leaf, same key, output starts with response-> MATCHED
                     |   \\--reveal opens leaf, other key or output differs--> FALSE (bond burned)
                     |-- rebut, owner's permission from before the claim -> DISMISSED (bond back)
                     '-- no reveal by filed + reveal_window (end block) --> EXPIRED (bond back,
                                                    plus up to the bond from the OMLizer's bond)
    MATCHED --rebut--> DISMISSED;  MATCHED --revealed + challenge_window (end block)--> SLASHED

The reveal carries the leaf's salt, key and response text and a Merkle
path. A reveal that does not open the committed leaf *fails* (the OMLizer's
error, the claim stays open); only a reveal that opens the leaf can decide
the claim. The claim matches iff the revealed key is the claimed key (both
normalised) and the observed output starts with the revealed response. This is
stronger than revealing only the response length (DESIGN.md's first
sketch), which cannot tell a false claim from a bad reveal.

A claim burns its fingerprint index when it is filed: the key is public on
the chain from then on, so a host could learn to refuse it. A second claim
on the same index fails with ``INDEX_BURNED``.
"""

from __future__ import annotations

from oml.commitments import leaf_hash, normalize_text, verify_path

from .errors import Code, InvariantError, TxFailed
from .params import BP
from .records import Claim, ClaimStatus, HostRecord, HostStatus
from .state import Ctx
from .txs import RebutBody, RevealBody, Role, SubmitClaimBody
from .vouchers import query_hash, verify_permission


def _claim(ctx: Ctx, claim_id: int) -> Claim:
    claim = ctx.state.claim(claim_id)
    if claim is None:
        raise TxFailed(Code.NOT_FOUND, f"no claim {claim_id}")
    return claim


def _host_of(ctx: Ctx, claim: Claim) -> HostRecord:
    rec = ctx.state.host(claim.model_id, claim.host)
    if rec is None or rec.generation != claim.generation:
        raise TxFailed(Code.WRONG_STATE, "the host's access this claim refers to is gone")
    return rec


def _deadline(ctx: Ctx, claim: Claim) -> int:
    """The height at whose end an open claim is decided by the end-block logic."""
    if claim.status == ClaimStatus.OPEN:
        return claim.filed_height + ctx.params.reveal_window
    return claim.revealed_height + ctx.params.challenge_window


def close_claim(ctx: Ctx, claim: Claim, status: ClaimStatus, **changes: object) -> Claim:
    """Move an open claim to a final status and release its hold on the host."""
    rec = _host_of(ctx, claim)
    ctx.state.put_host(rec.but(open_claims=rec.open_claims - 1))
    closed = claim.but(status=status, **changes)
    ctx.state.put_claim(closed)
    return closed


def submit_claim(ctx: Ctx, body: SubmitClaimBody) -> None:
    if ctx.state.role(Role.PROVER, ctx.sender) is None:
        raise TxFailed(Code.UNAUTHORIZED, "sender is not a registered prover")
    if body.bond < ctx.params.min_claim_bond:
        raise TxFailed(Code.BELOW_MINIMUM,
                       f"claim bond {body.bond} < minimum {ctx.params.min_claim_bond}")
    rec = ctx.state.host(body.model_id, body.host)
    if rec is None:
        raise TxFailed(Code.NOT_FOUND, f"no host {body.host.hex()} for model {body.model_id.hex()}")
    if rec.status not in (HostStatus.ACTIVE, HostStatus.UNBONDING) or not rec.fp_count:
        raise TxFailed(Code.WRONG_STATE, "host holds no committed fingerprinted copy")
    if body.fp_index >= rec.fp_count:
        raise TxFailed(Code.INVALID_ARGUMENT,
                       f"fp_index {body.fp_index} outside commitment of {rec.fp_count}")
    if ctx.state.is_burned(body.model_id, body.host, rec.generation, body.fp_index):
        raise TxFailed(Code.INDEX_BURNED, f"fingerprint index {body.fp_index} already used")
    ctx.state.debit(ctx.sender, body.bond)
    claim_id = ctx.state.next_claim_id()
    ctx.state.burn_index(body.model_id, body.host, rec.generation, body.fp_index, claim_id)
    claim = Claim(claim_id=claim_id, model_id=body.model_id, host=body.host,
                  generation=rec.generation, fp_index=body.fp_index, key=body.key,
                  output=body.output, prover=ctx.sender, bond=body.bond,
                  status=ClaimStatus.OPEN, filed_height=ctx.height)
    ctx.state.put_claim(claim)
    ctx.state.put_host(rec.but(open_claims=rec.open_claims + 1))
    ctx.state.add_due(_deadline(ctx, claim), claim_id)
    ctx.emit("submit_claim", claim_id=claim_id, model_id=body.model_id, host=body.host,
             fp_index=body.fp_index, prover=ctx.sender, bond=body.bond,
             reveal_by=_deadline(ctx, claim))


def reveal(ctx: Ctx, body: RevealBody) -> None:
    """The committing OMLizer opens the claimed leaf; the claim matches or is false."""
    claim = _claim(ctx, body.claim_id)
    if claim.status != ClaimStatus.OPEN:
        raise TxFailed(Code.WRONG_STATE,
                       f"claim is {ClaimStatus(claim.status).name.lower()}, not open")
    rec = _host_of(ctx, claim)
    if ctx.sender != rec.omlizer:
        raise TxFailed(Code.UNAUTHORIZED, "only the OMLizer that committed this host may reveal")
    deadline = _deadline(ctx, claim)
    if ctx.height > deadline:
        raise TxFailed(Code.WINDOW_CLOSED, f"reveal window closed at height {deadline}")
    response, key = normalize_text(body.response), normalize_text(body.key)
    leaf = leaf_hash(claim.model_id, claim.host, claim.fp_index, body.salt, key, response)
    if not verify_path(leaf, claim.fp_index, rec.fp_count, body.path, rec.fp_root):
        raise TxFailed(Code.REVEAL_MISMATCH, "reveal does not open the leaf")
    ctx.state.remove_due(deadline, claim.claim_id)
    if key == normalize_text(claim.key) and normalize_text(claim.output).startswith(response):
        matched = claim.but(status=ClaimStatus.MATCHED, revealed_height=ctx.height,
                            response=body.response)
        ctx.state.put_claim(matched)
        ctx.state.add_due(_deadline(ctx, matched), claim.claim_id)
        ctx.emit("reveal", claim_id=claim.claim_id, matched=1,
                 slash_at=_deadline(ctx, matched))
    else:
        close_claim(ctx, claim, ClaimStatus.FALSE, revealed_height=ctx.height,
                    response=body.response)
        ctx.state.burn(claim.bond)
        ctx.emit("reveal", claim_id=claim.claim_id, matched=0, bond_burned=claim.bond)


def rebut(ctx: Ctx, body: RebutBody) -> None:
    """The host shows the owner's permission string for the claimed query."""
    claim = _claim(ctx, body.claim_id)
    if not ClaimStatus(claim.status).open:
        raise TxFailed(Code.WRONG_STATE,
                       f"claim is {ClaimStatus(claim.status).name.lower()}, already decided")
    if ctx.sender != claim.host:
        raise TxFailed(Code.UNAUTHORIZED, "only the accused host may rebut")
    model = ctx.state.model(claim.model_id)
    if model is None:
        raise TxFailed(Code.NOT_FOUND, "the claim's model is gone")
    if not verify_permission(model.owner_pubkey, ctx.chain_id, claim.model_id, claim.host,
                             body.seq, query_hash(claim.key), body.signature,
                             issued_height=body.issued_height):
        raise TxFailed(Code.BAD_PERMISSION,
                       "permission string is not the owner's for this host, query and height")
    # The owner signed with issued_height = the last block it had seen. The
    # claim is in the state from block filed_height on, so a permission with
    # issued_height >= filed_height may have been bought after the claim.
    if body.issued_height >= claim.filed_height:
        raise TxFailed(Code.LATE_PERMISSION,
                       f"permission issued at height {body.issued_height}, not before the "
                       f"claim filed at height {claim.filed_height}")
    ctx.state.remove_due(_deadline(ctx, claim), claim.claim_id)
    close_claim(ctx, claim, ClaimStatus.DISMISSED)
    ctx.state.credit(claim.prover, claim.bond)
    ctx.emit("rebut", claim_id=claim.claim_id, host=claim.host, seq=body.seq,
             issued_height=body.issued_height)


def settle_due(ctx: Ctx) -> None:
    """End of block: expire unrevealed claims and slash for matched, unrebutted ones."""
    for claim_id in ctx.state.due(ctx.height):
        claim = ctx.state.claim(claim_id)
        if claim is None or not ClaimStatus(claim.status).open:
            continue  # defensive: due entries are removed when a claim closes
        if claim.status == ClaimStatus.OPEN:
            close_claim(ctx, claim, ClaimStatus.EXPIRED)
            omlizer = _host_of(ctx, claim).omlizer
            penalty = _penalise_silent_omlizer(ctx, omlizer, claim.bond)
            ctx.state.credit(claim.prover, claim.bond + penalty)
            ctx.emit("claim_expired", claim_id=claim_id, refund=claim.bond, omlizer=omlizer,
                     omlizer_penalty=penalty)
        else:
            _slash(ctx, claim)
    ctx.state.clear_due(ctx.height)


def _penalise_silent_omlizer(ctx: Ctx, omlizer: bytes, amount: int) -> int:
    """Take up to ``amount`` from the role bond of an OMLizer that did not reveal.

    Any committed leaf can be opened (against a made-up key it proves the
    claim false), so silence is never forced; without this an OMLizer could
    shield a cheating host by letting claims expire. Returns what was taken.
    """
    role = ctx.state.role(Role.OMLIZER, omlizer)
    if role is None:
        raise InvariantError("the OMLizer of an open claim has no role record")
    taken = min(amount, role.bond)
    if taken:
        ctx.state.put_role(role.but(bond=role.bond - taken))
    return taken


def _slash(ctx: Ctx, claim: Claim) -> None:
    p = ctx.params
    rec = _host_of(ctx, claim)
    slash = rec.collateral * p.slash_fraction_bp // BP
    reward = slash * p.prover_reward_bp // BP
    owner_share = slash * p.owner_slash_share_bp // BP
    burned = slash - reward - owner_share
    ctx.state.put_host(rec.but(collateral=rec.collateral - slash,
                               slashed_total=rec.slashed_total + slash))
    close_claim(ctx, claim, ClaimStatus.SLASHED)
    model = ctx.state.model(claim.model_id)
    ctx.state.credit(claim.prover, reward + claim.bond)
    if model is not None:
        ctx.state.credit(model.owner, owner_share)
    else:  # pragma: no cover - models are never deleted
        burned += owner_share
    ctx.state.burn(burned)
    ctx.emit("slash", claim_id=claim.claim_id, model_id=claim.model_id, host=claim.host,
             slashed=slash, prover_reward=reward, owner_share=owner_share, burned=burned)
