"""Handlers: two-phase prover claims, OMLizer reveals and host rebuttals.

Claim lifecycle (``ClaimStatus``)::

    commit_claim -> COMMITTED --open_claim (later block, hash opens, >= m keys)--> OPEN
                        '-- not opened by committed + claim_open_window (end block) -> LAPSED
                                                                         (bond burned)
    OPEN --reveal of every item, >= m keys matched----------------------> MATCHED
      |  \\--reveals leave fewer than m keys able to match----------------> FALSE (bond burned)
      |-- rebut: owner's permission for a claimed key, from before the commitment
      |                                                     -> DISMISSED (bond back)
      '-- reveals missing by opened + reveal_window (end block):
              >= m revealed keys matched -> MATCHED; < m possible -> FALSE;
              otherwise -> EXPIRED (bond back, plus up to the bond from the OMLizer's bond)
    MATCHED --rebut--> DISMISSED;  MATCHED --decided + challenge_window (end block)--> SLASHED

``m`` is ``params.claim_min_matches``, counted in distinct keys (a key with
backup responses has several leaves but counts once). The soundness
argument (why m matching keys of one host are evidence that its copy was
served, and not a sibling copy or the base model) is in
docs/threat-model.md.

The commitment (:mod:`.claimhash`) hides the keys until it is in a block,
so a rebuttal counts only with a permission issued *before* the commitment's
height: a host cannot see the claim and then buy permission for exactly its
queries. Opening in the commitment's own block is refused (height must
exceed the committed height): such an opening would wait in the mempool
beside its commitment, showing the keys while an owner could still date a
permission below the commitment's height. A prover sends the opening only
once the commitment is committed.

Each reveal carries the leaf's salt, key and response text and a Merkle
path. A reveal that does not open the committed leaf *fails* (the OMLizer's
error, the item stays pending). An item matches iff the revealed key is the
claimed key (both normalised) and the observed output starts with the
revealed response.

Opening a claim burns its fingerprint indices: the keys are public on the
chain from then on, so a host could learn to refuse them. A claim naming a
burned index fails with ``INDEX_BURNED``.
"""

from __future__ import annotations

from collections.abc import Container, Iterable
from typing import Any

from oml.commitments import leaf_hash, normalize_text, verify_path

from .claimhash import claim_commitment
from .errors import Code, InvariantError, TxFailed
from .params import BP, Params
from .records import Claim, ClaimStatus, HostRecord, HostStatus, ItemState
from .state import Ctx
from .txs import CommitClaimBody, OpenClaimBody, RebutBody, RevealBody, Role
from .vouchers import query_hash, verify_permission


def _claim(ctx: Ctx, claim_id: int) -> Claim:
    claim = ctx.state.claim(claim_id)
    if claim is None:
        raise TxFailed(Code.NOT_FOUND, f"no claim {claim_id}")
    return claim


def _status_name(claim: Claim) -> str:
    return ClaimStatus(claim.status).name.lower()


def _host_of(ctx: Ctx, claim: Claim) -> HostRecord:
    rec = ctx.state.host(claim.model_id, claim.host)
    if rec is None or rec.generation != claim.generation:
        raise TxFailed(Code.WRONG_STATE, "the host's access this claim refers to is gone")
    return rec


def slash_split(params: Params, collateral: int) -> tuple[int, int, int, int]:
    """``(slashed, prover reward, owner share, burned)`` of one slash of ``collateral``."""
    slash = collateral * params.slash_fraction_bp // BP
    reward = slash * params.prover_reward_bp // BP
    owner_share = slash * params.owner_slash_share_bp // BP
    return slash, reward, owner_share, slash - reward - owner_share


def required_claim_bond(params: Params, rec: HostRecord) -> int:
    """The least bond a claim against ``rec`` may carry.

    At least ``claim_bond_bp`` of everything a prover and the owner together
    would be paid by the slash (rounded up), so that a prover, or an owner
    with a sock-puppet prover, who accuses an innocent host on the chance of
    a false match loses more in bonds than it can expect to win (see
    docs/threat-model.md); never below ``min_claim_bond``.
    """
    _slash, reward, owner_share, _burned = slash_split(params, rec.collateral)
    scaled = -(-(reward + owner_share) * params.claim_bond_bp // BP)
    return max(params.min_claim_bond, scaled)


def _deadline(ctx: Ctx, claim: Claim) -> int:
    """The height at whose end an undecided claim is handled by the end-block logic."""
    if claim.status == ClaimStatus.COMMITTED:
        return claim.committed_height + ctx.params.claim_open_window
    if claim.status == ClaimStatus.OPEN:
        return claim.opened_height + ctx.params.reveal_window
    return claim.decided_height + ctx.params.challenge_window


def close_claim(ctx: Ctx, claim: Claim, status: ClaimStatus, **changes: object) -> Claim:
    """Move an undecided claim to a final status and release its hold on the host."""
    rec = _host_of(ctx, claim)
    ctx.state.put_host(rec.but(open_claims=rec.open_claims - 1))
    closed = claim.but(status=status, decided_height=ctx.height, **changes)
    ctx.state.put_claim(closed)
    return closed


def commit_claim(ctx: Ctx, body: CommitClaimBody) -> None:
    """Phase one: a registered prover locks its bond behind a hiding commitment."""
    if ctx.state.role(Role.PROVER, ctx.sender) is None:
        raise TxFailed(Code.UNAUTHORIZED, "sender is not a registered prover")
    rec = ctx.state.host(body.model_id, body.host)
    if rec is None:
        raise TxFailed(Code.NOT_FOUND, f"no host {body.host.hex()} for model {body.model_id.hex()}")
    if rec.status not in (HostStatus.ACTIVE, HostStatus.UNBONDING) or not rec.fp_count:
        raise TxFailed(Code.WRONG_STATE, "host holds no committed fingerprinted copy")
    if rec.fp_count < ctx.params.claim_min_matches:
        raise TxFailed(Code.WRONG_STATE, f"host's commitment holds {rec.fp_count} fingerprints, "
                                         f"fewer than claim_min_matches")
    need = required_claim_bond(ctx.params, rec)
    if body.bond < need:
        raise TxFailed(Code.BELOW_MINIMUM, f"claim bond {body.bond} < minimum {need} "
                                           f"for this host's collateral")
    ctx.state.debit(ctx.sender, body.bond)
    claim = Claim(claim_id=ctx.state.next_claim_id(), model_id=body.model_id, host=body.host,
                  generation=rec.generation, prover=ctx.sender, bond=body.bond,
                  status=ClaimStatus.COMMITTED, commitment=body.commitment,
                  committed_height=ctx.height)
    ctx.state.put_claim(claim)
    ctx.state.put_host(rec.but(open_claims=rec.open_claims + 1))
    ctx.state.add_due(_deadline(ctx, claim), claim.claim_id)
    ctx.emit("claim_committed", claim_id=claim.claim_id, model_id=body.model_id, host=body.host,
             prover=ctx.sender, bond=body.bond, open_by=_deadline(ctx, claim))


def _keys(items: Iterable[tuple[Any, ...]], states: Container[int] | None = None) -> set[bytes]:
    """Distinct normalised keys of ``items`` (those in ``states`` if given).

    Matches are counted per key, not per index: with backup responses one key
    has several committed leaves, and naming it twice must not count twice.
    """
    return {normalize_text(it[1]) for it in items if states is None or it[3] in states}


def _check_items(ctx: Ctx, claim: Claim, rec: HostRecord, body: OpenClaimBody) -> None:
    m = ctx.params.claim_min_matches
    keys = len(_keys(body.items))
    if keys < m:
        raise TxFailed(Code.INVALID_ARGUMENT,
                       f"a claim needs at least claim_min_matches={m} distinct keys, got {keys}")
    seen: set[int] = set()
    for index, _key, _output in body.items:
        if index in seen:
            raise TxFailed(Code.INVALID_ARGUMENT, f"fp_index {index} named twice")
        seen.add(index)
        if index >= rec.fp_count:
            raise TxFailed(Code.INVALID_ARGUMENT,
                           f"fp_index {index} outside commitment of {rec.fp_count}")
        if ctx.state.is_burned(claim.model_id, claim.host, claim.generation, index):
            raise TxFailed(Code.INDEX_BURNED, f"fingerprint index {index} already used")


def open_claim(ctx: Ctx, body: OpenClaimBody) -> None:
    """Phase two: the prover shows what it committed to; the indices are burned."""
    claim = _claim(ctx, body.claim_id)
    if ctx.sender != claim.prover:
        raise TxFailed(Code.UNAUTHORIZED, "only the prover that committed may open the claim")
    if claim.status != ClaimStatus.COMMITTED:
        raise TxFailed(Code.WRONG_STATE, f"claim is {_status_name(claim)}, not committed")
    if ctx.height <= claim.committed_height:
        raise TxFailed(Code.TOO_EARLY, "a claim opens only in a block after its commitment's")
    deadline = _deadline(ctx, claim)
    if ctx.height > deadline:  # pragma: no cover - the end block lapses it first
        raise TxFailed(Code.WINDOW_CLOSED, f"open window closed at height {deadline}")
    expect = claim_commitment(ctx.chain_id, claim.prover, claim.model_id, claim.host,
                              body.items, body.salt)
    if expect != claim.commitment:
        raise TxFailed(Code.BAD_OPENING, "items and salt do not hash to the commitment")
    rec = _host_of(ctx, claim)
    _check_items(ctx, claim, rec, body)
    for index, _key, _output in body.items:
        ctx.state.burn_index(claim.model_id, claim.host, claim.generation, index, claim.claim_id)
    ctx.state.remove_due(deadline, claim.claim_id)
    opened = claim.but(status=ClaimStatus.OPEN, opened_height=ctx.height,
                       items=tuple((i, k, o, ItemState.PENDING, "") for i, k, o in body.items))
    ctx.state.put_claim(opened)
    ctx.state.add_due(_deadline(ctx, opened), claim.claim_id)
    ctx.emit("claim_opened", claim_id=claim.claim_id, model_id=claim.model_id, host=claim.host,
             prover=claim.prover, indices=",".join(str(i) for i, _k, _o in body.items),
             committed_height=claim.committed_height, reveal_by=_deadline(ctx, opened))


def _item_matches(item: tuple[int, str, str, int, str], key: bytes, response: bytes) -> bool:
    return key == normalize_text(item[1]) and normalize_text(item[2]).startswith(response)


def reveal(ctx: Ctx, body: RevealBody) -> None:
    """The committing OMLizer opens one claimed leaf; the item matches or not."""
    claim = _claim(ctx, body.claim_id)
    if claim.status != ClaimStatus.OPEN:
        raise TxFailed(Code.WRONG_STATE, f"claim is {_status_name(claim)}, not open")
    rec = _host_of(ctx, claim)
    if ctx.sender != rec.omlizer:
        raise TxFailed(Code.UNAUTHORIZED, "only the OMLizer that committed this host may reveal")
    item = claim.item(body.fp_index)
    if item is None:
        raise TxFailed(Code.INVALID_ARGUMENT, f"claim names no fp_index {body.fp_index}")
    if item[3] != ItemState.PENDING:
        raise TxFailed(Code.WRONG_STATE, f"fp_index {body.fp_index} is already revealed")
    deadline = _deadline(ctx, claim)
    if ctx.height > deadline:  # pragma: no cover - the end block decides it first
        raise TxFailed(Code.WINDOW_CLOSED, f"reveal window closed at height {deadline}")
    response, key = normalize_text(body.response), normalize_text(body.key)
    leaf = leaf_hash(claim.model_id, claim.host, body.fp_index, body.salt, key, response)
    if not verify_path(leaf, body.fp_index, rec.fp_count, body.path, rec.fp_root):
        raise TxFailed(Code.REVEAL_MISMATCH, "reveal does not open the leaf")
    matched = _item_matches(item, key, response)
    state = ItemState.MATCHED if matched else ItemState.MISMATCHED
    claim = claim.but(items=tuple((i, k, o, state, body.response) if i == body.fp_index
                                  else (i, k, o, st, r) for i, k, o, st, r in claim.items))
    ctx.state.put_claim(claim)
    ctx.emit("reveal", claim_id=claim.claim_id, fp_index=body.fp_index, matched=int(matched))
    _decide(ctx, claim, deadline, final=False)


def _decide(ctx: Ctx, claim: Claim, deadline: int, *, final: bool) -> None:
    """Decide an OPEN claim if its reveals allow (``final``: its reveal window is over).

    Counted in distinct keys: FALSE as soon as fewer than m keys can still
    match; MATCHED once every item is revealed (or the window is over) with
    at least m keys matched; at the window's end with neither, EXPIRED (the
    OMLizer withheld reveals).
    """
    m = ctx.params.claim_min_matches
    matched = len(_keys(claim.items, (ItemState.MATCHED,)))
    possible = len(_keys(claim.items, (ItemState.MATCHED, ItemState.PENDING)))
    pending = claim.count(ItemState.PENDING)
    if possible < m:
        ctx.state.remove_due(deadline, claim.claim_id)
        close_claim(ctx, claim, ClaimStatus.FALSE)
        ctx.state.burn(claim.bond)
        ctx.emit("claim_false", claim_id=claim.claim_id, matches=matched, bond_burned=claim.bond)
    elif matched >= m and (pending == 0 or final):
        ctx.state.remove_due(deadline, claim.claim_id)
        decided = claim.but(status=ClaimStatus.MATCHED, decided_height=ctx.height)
        ctx.state.put_claim(decided)
        ctx.state.add_due(_deadline(ctx, decided), claim.claim_id)
        ctx.emit("claim_matched", claim_id=claim.claim_id, matches=matched,
                 slash_at=_deadline(ctx, decided))
    elif final:
        close_claim(ctx, claim, ClaimStatus.EXPIRED)
        omlizer = _host_of(ctx, claim).omlizer
        penalty = _penalise_silent_omlizer(ctx, omlizer, claim.bond)
        ctx.state.credit(claim.prover, claim.bond + penalty)
        ctx.emit("claim_expired", claim_id=claim.claim_id, refund=claim.bond, omlizer=omlizer,
                 omlizer_penalty=penalty, unrevealed=pending)


def rebut(ctx: Ctx, body: RebutBody) -> None:
    """The host shows the owner's permission string for one claimed query."""
    claim = _claim(ctx, body.claim_id)
    if claim.status not in (ClaimStatus.OPEN, ClaimStatus.MATCHED):
        raise TxFailed(Code.WRONG_STATE,
                       f"claim is {_status_name(claim)}; only an opened, undecided claim "
                       f"can be rebutted")
    if ctx.sender != claim.host:
        raise TxFailed(Code.UNAUTHORIZED, "only the accused host may rebut")
    item = claim.item(body.fp_index)
    if item is None:
        raise TxFailed(Code.INVALID_ARGUMENT, f"claim names no fp_index {body.fp_index}")
    model = ctx.state.model(claim.model_id)
    if model is None:
        raise TxFailed(Code.NOT_FOUND, "the claim's model is gone")
    if not verify_permission(model.owner_pubkey, ctx.chain_id, claim.model_id, claim.host,
                             body.seq, query_hash(item[1]), body.signature,
                             issued_height=body.issued_height):
        raise TxFailed(Code.BAD_PERMISSION,
                       "permission string is not the owner's for this host, query and height")
    # The owner signed with issued_height = the last block it had seen. The
    # commitment is in the state from block committed_height on and the keys
    # are public only after that, so a permission with issued_height >=
    # committed_height may have been bought after the host saw the claim.
    if body.issued_height >= claim.committed_height:
        raise TxFailed(Code.LATE_PERMISSION,
                       f"permission issued at height {body.issued_height}, not before the "
                       f"claim committed at height {claim.committed_height}")
    ctx.state.remove_due(_deadline(ctx, claim), claim.claim_id)
    close_claim(ctx, claim, ClaimStatus.DISMISSED)
    ctx.state.credit(claim.prover, claim.bond)
    ctx.emit("rebut", claim_id=claim.claim_id, fp_index=body.fp_index, host=claim.host,
             seq=body.seq, issued_height=body.issued_height)


def settle_due(ctx: Ctx) -> None:
    """End of block: lapse unopened claims, decide unrevealed ones, slash matched ones."""
    for claim_id in ctx.state.due(ctx.height):
        claim = ctx.state.claim(claim_id)
        if claim is None or not ClaimStatus(claim.status).open:
            continue  # defensive: due entries are removed when a claim closes
        if claim.status == ClaimStatus.COMMITTED:
            close_claim(ctx, claim, ClaimStatus.LAPSED)
            ctx.state.burn(claim.bond)
            ctx.emit("claim_lapsed", claim_id=claim_id, bond_burned=claim.bond)
        elif claim.status == ClaimStatus.OPEN:
            _decide(ctx, claim, ctx.height, final=True)
        else:
            _slash(ctx, claim)
    ctx.state.clear_due(ctx.height)


def _penalise_silent_omlizer(ctx: Ctx, omlizer: bytes, amount: int) -> int:
    """Take up to ``amount`` from the role bond of an OMLizer that did not reveal.

    Any committed leaf can be opened (against a made-up key it proves the
    item false), so silence is never forced; without this an OMLizer could
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
    rec = _host_of(ctx, claim)
    slash, reward, owner_share, burned = slash_split(ctx.params, rec.collateral)
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
