"""Handlers: model registration and update (terms, OMLizers, splits, royalties)."""

from __future__ import annotations

from .errors import Code, TxFailed
from .params import BP, Params
from .records import Model
from .state import Ctx
from .txs import RegisterModelBody, UpdateModelBody


def check_terms(params: Params, omlizers: tuple[bytes, ...],
                splits: tuple[tuple[bytes, int], ...]) -> None:
    """Checks shared by register and update: list sizes, duplicates, split sum."""
    if len(omlizers) > params.max_omlizers:
        raise TxFailed(Code.INVALID_ARGUMENT,
                       f"{len(omlizers)} omlizers exceed max_omlizers {params.max_omlizers}")
    if len(set(omlizers)) != len(omlizers):
        raise TxFailed(Code.INVALID_ARGUMENT, "omlizers listed twice")
    if len(splits) > params.max_splits:
        raise TxFailed(Code.INVALID_ARGUMENT,
                       f"{len(splits)} splits exceed max_splits {params.max_splits}")
    addresses = [a for a, _ in splits]
    if len(set(addresses)) != len(addresses):
        raise TxFailed(Code.INVALID_ARGUMENT, "split address listed twice")
    if any(bp == 0 for _, bp in splits):
        raise TxFailed(Code.INVALID_ARGUMENT, "a split of 0 basis points is meaningless")
    if sum(bp for _, bp in splits) > BP:
        raise TxFailed(Code.INVALID_ARGUMENT, "splits exceed 10000 basis points")


def register_model(ctx: Ctx, body: RegisterModelBody) -> None:
    if ctx.state.model(body.model_id) is not None:
        raise TxFailed(Code.ALREADY_EXISTS, f"model {body.model_id.hex()} already registered")
    check_terms(ctx.params, body.omlizers, body.splits)
    depth = 0
    if body.parent:
        parent = ctx.state.model(body.parent)
        if parent is None:
            raise TxFailed(Code.NOT_FOUND, f"parent model {body.parent.hex()} not registered")
        depth = parent.depth + 1
        if depth > ctx.params.max_parent_depth:
            raise TxFailed(Code.INVALID_ARGUMENT,
                           f"parent chain of {depth} exceeds max_parent_depth")
    ctx.state.put_model(Model(
        model_id=body.model_id, owner=ctx.sender, owner_pubkey=ctx.sender_pubkey,
        weights_hash=body.weights_hash, metadata=body.metadata,
        price_per_query=body.price_per_query, min_collateral=body.min_collateral,
        omlizers=body.omlizers, splits=body.splits, parent=body.parent,
        royalty_bp=body.royalty_bp, depth=depth, registered_height=ctx.height,
        blob_id=body.blob_id))
    ctx.emit("register_model", model_id=body.model_id, owner=ctx.sender, parent=body.parent,
             blob_id=body.blob_id)


def update_model(ctx: Ctx, body: UpdateModelBody) -> None:
    """The owner replaces the model's terms; already granted host access is unaffected.

    The blob id is a term: re-publishing the same weights to a new OMLizer set
    makes a new blob, while the weights hash (what the weights are) stays fixed.
    """
    model = ctx.state.model(body.model_id)
    if model is None:
        raise TxFailed(Code.NOT_FOUND, f"model {body.model_id.hex()} not registered")
    if model.owner != ctx.sender:
        raise TxFailed(Code.UNAUTHORIZED, "only the model owner may update it")
    check_terms(ctx.params, body.omlizers, body.splits)
    ctx.state.put_model(model.but(
        metadata=body.metadata, price_per_query=body.price_per_query,
        min_collateral=body.min_collateral, omlizers=body.omlizers, splits=body.splits,
        royalty_bp=body.royalty_bp, blob_id=body.blob_id))
    ctx.emit("update_model", model_id=body.model_id, blob_id=body.blob_id)
