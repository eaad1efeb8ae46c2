"""``oml-node tx commit-claim`` and ``tx open-claim``: a prover's two-phase claim.

``commit-claim`` draws a 32-byte salt, computes the hiding commitment
(:func:`node.ledger.claim_commitment`) of the observed items
``(fp_index, key, output)`` and writes everything needed to open it to a
*draft* file (mode 0600) *before* it sends anything: losing the salt would
forfeit the bond (an unopened commitment lapses and its bond is burned).
``open-claim`` reads the draft back once the commitment is in a block.
Without ``--bond`` the least bond the ledger accepts for this host is asked
from the node (``params`` and ``host`` over RPC).
"""

from __future__ import annotations

import json
import os
import secrets as pysecrets
from pathlib import Path
from typing import Any

import click

from .tx_cmds import NodeRef, _command, _hex_bytes, _model_id, home_signer, model_id_bytes
from .tx_oml_cmds import _FILE, U64, _check_chain, _field, _hex_field, _read_json

DRAFT_KIND = "claim-draft"
ITEM = (click.IntRange(0, 2**32 - 1), str, str)


def _items_file(path: Path) -> list[tuple[int, str, str]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise click.BadParameter(f"--items {path}: {exc}") from None
    return _parse_items(data, f"--items {path}")


def _parse_items(data: Any, what: str) -> list[tuple[int, str, str]]:
    ok = isinstance(data, list) and all(
        isinstance(it, list) and len(it) == 3 and isinstance(it[0], int)
        and not isinstance(it[0], bool) and isinstance(it[1], str) and isinstance(it[2], str)
        for it in data)
    if not ok:
        raise click.BadParameter(f"{what} must be a JSON array of [fp_index, key, output]")
    return [(int(i), k, o) for i, k, o in data]


def _least_bond(node: NodeRef, model_id: bytes, host: bytes) -> int:
    """What the ledger requires now (RPC ``params`` and ``host``)."""
    from ..ledger import Params, required_claim_bond
    from ..ledger.records import HostRecord

    params = Params.from_json(node.call("params", {}))
    rec = node.call("host", {"model_id": model_id.hex(), "host": host.hex()})
    return required_claim_bond(params, HostRecord(model_id=model_id, host=host,
                                                  host_pubkey=bytes(32), status=2,
                                                  collateral=int(rec["collateral"])))


def _write_draft(path: Path, draft: dict[str, Any]) -> None:
    """Create ``path`` (never overwrite: it may hold another claim's salt), mode 0600."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise click.BadParameter(f"--draft {path} exists; it may hold another claim's "
                                 f"salt") from None
    except OSError as exc:
        raise click.ClickException(f"cannot write {path}: {exc}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(json.dumps(draft, indent=2, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


@click.option("--model-id", required=True, callback=_model_id, help="model id (text)")
@click.option("--host", required=True, callback=_hex_bytes(20), help="accused host (hex)")
@click.option("--item", "items", multiple=True, type=ITEM,
              help="FP_INDEX KEY OUTPUT: a key sent and the answer observed (repeat; at least "
                   "claim_min_matches)")
@click.option("--items", "items_file", type=_FILE, default=None,
              help="JSON array of [fp_index, key, output] (instead of --item)")
@click.option("--bond", type=U64, default=None,
              help="claim bond (default: the least the ledger accepts for this host)")
@click.option("--salt", callback=_hex_bytes(32), default=None,
              help="32-byte salt (hex; default: random). Keep it secret until opening")
@click.option("--draft", "draft_path", required=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="file to create with the items and salt, for `tx open-claim`")
@_command("commit-claim", "As a prover, commit to a claim that HOST served its fingerprinted "
          "copy (a hash hiding the keys and outputs; open it in a later block).",
          needs_node=True)
def commit_claim(model_id: bytes, host: bytes, items: tuple[tuple[int, str, str], ...],
                 items_file: Path | None, bond: int | None, salt: bytes | None,
                 draft_path: Path, node: NodeRef) -> Any:
    from ..ledger import CommitClaimBody, OpenClaimBody, claim_commitment
    from ..ledger.errors import LedgerUsageError
    if bool(items) == (items_file is not None):
        raise click.UsageError("give --item (repeatable) or --items FILE")
    chosen = list(items) if items else _items_file(items_file)  # type: ignore[arg-type]
    salt = salt if salt is not None else pysecrets.token_bytes(32)
    try:  # the body's own checks (sizes, count): refused before anything is written
        OpenClaimBody(claim_id=0, items=tuple(chosen), salt=salt)
    except LedgerUsageError as exc:
        raise click.BadParameter(str(exc)) from None
    key, chain_id = home_signer(node.home)
    commitment = claim_commitment(chain_id, key.address, model_id, host, chosen, salt)
    if bond is None:
        bond = _least_bond(node, model_id, host)
    _write_draft(draft_path, {
        "kind": DRAFT_KIND, "chain_id": chain_id, "prover": key.address.hex(),
        "model_id": model_id.decode("utf-8"), "host": host.hex(),
        "items": [list(it) for it in chosen], "salt": salt.hex(),
        "commitment": commitment.hex(), "bond": bond})
    return CommitClaimBody(model_id=model_id, host=host, commitment=commitment, bond=bond)


@click.option("--claim-id", required=True, type=U64,
              help="id from the commit's claim_committed event")
@click.option("--draft", "draft_path", required=True, type=_FILE,
              help="the file `tx commit-claim --draft` wrote")
@_command("open-claim", "As the prover, open a committed claim (in a block after the "
          "commitment's, within claim_open_window).", needs_node=True)
def open_claim(claim_id: int, draft_path: Path, node: NodeRef) -> Any:
    from ..ledger import OpenClaimBody
    from ..ledger.errors import LedgerUsageError
    what = f"draft {draft_path}"
    data = _read_json(draft_path, "draft")
    if data.get("kind") != DRAFT_KIND:
        raise click.BadParameter(f"{what} is not a claim draft")
    _check_chain(data, node, what)
    key, _chain = home_signer(node.home)
    if _hex_field(data, "prover", 20, what) != key.address:
        raise click.BadParameter(f"{what} was committed by another account than this home's")
    model_id = model_id_bytes(str(_field(data, "model_id", what)))
    items = _parse_items(_field(data, "items", what), what)
    salt = _hex_field(data, "salt", 32, what)
    claim = node.call("claim", {"claim_id": claim_id})
    if claim.get("commitment") != _field(data, "commitment", what) \
            or bytes.fromhex(claim.get("model_id_hex", "")) != model_id:
        raise click.BadParameter(f"claim {claim_id} is not the commitment in {what}")
    try:
        return OpenClaimBody(claim_id=claim_id, items=tuple(items), salt=salt)
    except LedgerUsageError as exc:
        raise click.BadParameter(f"{what}: {exc}") from None


__all__ = ["commit_claim", "open_claim"]
