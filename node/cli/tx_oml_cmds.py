"""``oml-node tx ...`` for the OML life cycle, plus offline signing helpers.

Commands that send (same options and exit status as :mod:`node.cli.tx_cmds`):
``update-model``, ``unregister-role``, ``commit-omlization``, ``redeem``,
``reveal``, ``rebut``. Helpers that only sign and print JSON, never touching
the chain: ``sign-voucher`` (a host's fee voucher, which the owner then
``redeem``s) and ``sign-permission`` (an owner's permission string, which a
host shows with ``rebut``). Their JSON files are what ``redeem --voucher``
and ``rebut --permission`` read, so artefacts pass between roles as files.

Every check on user input happens before anything is signed or sent: bad
input exits 2 (usage) or 1 (unreadable file, node error) and sends nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from .tx_cmds import (
    NodeRef,
    _command,
    _hex_bytes,
    _model_id,
    home_signer,
    model_id_bytes,
    parse_address,
    parse_split,
    tx_group,
)

U64 = click.IntRange(0, 2**64 - 1)
_FILE = click.Path(dir_okay=False, exists=True, path_type=Path)


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"{what} {path}: cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"{what} {path} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise click.BadParameter(f"{what} {path} must hold a JSON object")
    return data


def _field(data: dict[str, Any], name: str, what: str) -> Any:
    if name not in data:
        raise click.BadParameter(f"{what} has no {name!r}")
    return data[name]


def _u64(data: dict[str, Any], name: str, what: str) -> int:
    v = _field(data, name, what)
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 2**64:
        raise click.BadParameter(f"{what}: {name} must be an unsigned 64-bit integer")
    return v


def _hex_field(data: dict[str, Any], name: str, size: int, what: str) -> bytes:
    v = _field(data, name, what)
    try:
        raw = bytes.fromhex(str(v).lower().removeprefix("0x"))
    except ValueError:
        raise click.BadParameter(f"{what}: {name} must be hex") from None
    if len(raw) != size:
        raise click.BadParameter(f"{what}: {name} must be {size} bytes, got {len(raw)}")
    return raw


def _check_chain(data: dict[str, Any], node: NodeRef, what: str) -> None:
    """An artefact signed for another chain would only fail on chain: refuse it here."""
    _key, chain_id = home_signer(node.home)
    if data.get("chain_id", chain_id) != chain_id:
        raise click.BadParameter(f"{what} was signed for chain {data['chain_id']!r}, "
                                 f"this home is on {chain_id!r}")


def _emit(obj: dict[str, Any], out: Path | None) -> None:
    text = json.dumps(obj, indent=2, sort_keys=True)
    if out is not None:
        try:
            out.write_text(text + "\n", encoding="utf-8")
        except OSError as exc:
            raise click.ClickException(f"cannot write {out}: {exc}") from None
    click.echo(text)


# ---------------------------------------------------------------- model and roles


@click.option("--model-id", required=True, callback=_model_id, help="model id (text)")
@click.option("--metadata", default=None, help="new metadata (UTF-8); default: keep")
@click.option("--price-per-query", type=U64, default=None, help="default: keep")
@click.option("--min-collateral", type=U64, default=None, help="default: keep")
@click.option("--omlizer", "omlizers", multiple=True,
              help="authorised OMLizer address (repeatable; replaces the list)")
@click.option("--clear-omlizers", is_flag=True, help="authorise no OMLizer")
@click.option("--split", "splits", multiple=True,
              help="ADDRESS:BASIS_POINTS payee share (repeatable; replaces the list)")
@click.option("--clear-splits", is_flag=True, help="pay the owner only")
@click.option("--royalty-bp", type=click.IntRange(0, 10000), default=None,
              help="royalty derived models pay (basis points); default: keep")
@click.option("--blob-id", default=None, callback=_hex_bytes(32),
              help="storage blob of the weights (hex, 32 bytes), e.g. re-published to a new "
                   "OMLizer set; default: keep")
@click.option("--clear-blob-id", is_flag=True, help="name no weights blob")
@_command("update-model", "As the owner, change a model's terms. Terms you do not pass keep "
          "their current on-chain values (read over RPC); weights hash and parent are fixed.",
          needs_node=True)
def update_model(model_id: bytes, metadata: str | None, price_per_query: int | None,
                 min_collateral: int | None, omlizers: tuple[str, ...], clear_omlizers: bool,
                 splits: tuple[str, ...], clear_splits: bool, royalty_bp: int | None,
                 blob_id: bytes | None, clear_blob_id: bool, node: NodeRef) -> Any:
    from ..ledger import UpdateModelBody
    if omlizers and clear_omlizers:
        raise click.UsageError("--omlizer and --clear-omlizers exclude each other")
    if splits and clear_splits:
        raise click.UsageError("--split and --clear-splits exclude each other")
    if blob_id is not None and clear_blob_id:
        raise click.UsageError("--blob-id and --clear-blob-id exclude each other")
    new_oml = tuple(parse_address(a, "--omlizer") for a in omlizers)
    new_spl = tuple(parse_split(s) for s in splits)
    cur = node.call("model", {"model_id": model_id.hex()})
    return UpdateModelBody(
        model_id=model_id,
        metadata=metadata.encode("utf-8") if metadata is not None
        else bytes.fromhex(cur["metadata"]),
        price_per_query=price_per_query if price_per_query is not None
        else int(cur["price_per_query"]),
        min_collateral=min_collateral if min_collateral is not None
        else int(cur["min_collateral"]),
        omlizers=() if clear_omlizers else new_oml or tuple(
            bytes.fromhex(a) for a in cur["omlizers"]),
        splits=() if clear_splits else new_spl or tuple(
            (bytes.fromhex(a), int(bp)) for a, bp in cur["splits"]),
        royalty_bp=royalty_bp if royalty_bp is not None else int(cur["royalty_bp"]),
        blob_id=b"" if clear_blob_id else blob_id if blob_id is not None
        else bytes.fromhex(cur["blob_id"]))


@click.option("--role", required=True, type=click.Choice(["omlizer", "prover"]))
@_command("unregister-role", "Leave the OMLizer or prover role and take the bond back "
          "(the ledger refuses while the role still has duties, e.g. open claims).")
def unregister_role(role: str) -> Any:
    from ..ledger import Role, UnregisterRoleBody
    return UnregisterRoleBody(role=int(Role[role.upper()]))


# ---------------------------------------------------------------- OMLizer


@click.option("--package", "package_dir", default=None,
              type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="OML package directory: take model id, host, package hash, fp root and "
                   "count from its manifest.json (instead of the five flags)")
@click.option("--model-id", default=None, callback=_model_id, help="model id (text)")
@click.option("--host", default=None, callback=_hex_bytes(20), help="host address (hex)")
@click.option("--package-hash", default=None, callback=_hex_bytes(32),
              help="package hash (hex, 32 bytes)")
@click.option("--fp-root", default=None, callback=_hex_bytes(32),
              help="Merkle root of the fingerprint leaves (hex, 32 bytes)")
@click.option("--fp-count", default=None, type=click.IntRange(1, 2**32),
              help="number of fingerprints")
@click.option("--package-blob", required=True, callback=_hex_bytes(32),
              help="storage blob id of the package encrypted to the host (hex, 32 bytes; "
                   "also with --package: the blob is the ciphertext, not derivable from it)")
@_command("commit-omlization", "As an authorised OMLizer, commit the package made for a "
          "host that requested access (activates the host).")
def commit_omlization(package_dir: Path | None, model_id: bytes | None, host: bytes | None,
                      package_hash: bytes | None, fp_root: bytes | None,
                      fp_count: int | None, package_blob: bytes) -> Any:
    from ..ledger import CommitOmlizationBody
    flags = {"--model-id": model_id, "--host": host, "--package-hash": package_hash,
             "--fp-root": fp_root, "--fp-count": fp_count}
    if package_dir is not None:
        given = [k for k, v in flags.items() if v is not None]
        if given:
            raise click.UsageError(f"--package excludes {', '.join(given)}")
        from oml.package import read_manifest
        from oml.package_errors import PackageError
        try:
            m = read_manifest(package_dir)
            phash = m.package_hash()
        except PackageError as exc:
            raise click.ClickException(f"{package_dir}: {exc}") from None
        return CommitOmlizationBody(model_id=model_id_bytes(m.model_id), host=m.host,
                                    package_hash=phash, fp_root=m.fp_root,
                                    fp_count=m.fp_count, package_blob=package_blob)
    missing = [k for k, v in flags.items() if v is None]
    if missing:
        raise click.UsageError(f"give --package DIR, or all of: {', '.join(missing)}")
    assert model_id is not None and host is not None and package_hash is not None
    assert fp_root is not None and fp_count is not None
    return CommitOmlizationBody(model_id=model_id, host=host, package_hash=package_hash,
                                fp_root=fp_root, fp_count=fp_count, package_blob=package_blob)


def _sidecar_entry(node: NodeRef, claim_id: int, sidecar: Path, sidecar_key: Path | None,
                   fp_index: int) -> tuple[bytes, str, str, tuple[bytes, ...]]:
    """(salt, key, response, path) of claimed leaf ``fp_index`` from a sealed sidecar."""
    from oml.package import load_sidecar
    from oml.package_errors import PackageError

    from ..keys import AccountKey, KeyFileError
    try:
        seed = (AccountKey.load(sidecar_key) if sidecar_key is not None
                else home_signer(node.home)[0]).key.seed
    except KeyFileError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        secrets = load_sidecar(sidecar, seed)
    except PackageError as exc:
        raise click.ClickException(f"{sidecar}: {exc}") from None
    claim = node.call("claim", {"claim_id": claim_id})
    if bytes.fromhex(claim["model_id_hex"]) != secrets.model_id.encode("utf-8") \
            or bytes.fromhex(claim["host"]) != secrets.host:
        raise click.ClickException(
            f"claim {claim_id} is about another model or host than {sidecar}")
    claimed = [int(item["fp_index"]) for item in claim.get("items") or ()]
    if fp_index not in claimed:
        raise click.ClickException(f"claim {claim_id} names fp indices {claimed}, not {fp_index}"
                                   if claimed else f"claim {claim_id} is not opened yet")
    try:
        e = secrets.entry(fp_index)
    except PackageError as exc:
        raise click.ClickException(str(exc)) from None
    return e.salt, e.key, e.response, e.path


@click.option("--claim-id", required=True, type=U64)
@click.option("--fp-index", required=True, type=click.IntRange(0, 2**32 - 1),
              help="the claimed leaf to open (one reveal per claimed index)")
@click.option("--sidecar", type=_FILE, default=None,
              help="sealed secrets sidecar (the OMLizer's own copy); opened with the home's "
                   "account key unless --sidecar-key; checked against the claim over RPC")
@click.option("--sidecar-key", type=_FILE, default=None,
              help="account key file that opens --sidecar (default: the home's)")
@click.option("--salt", callback=_hex_bytes(max_size=64), default=None,
              help="leaf salt (hex); without --sidecar")
@click.option("--key", "key_text", default=None, help="committed key text; without --sidecar")
@click.option("--response", default=None, help="committed response text; without --sidecar")
@click.option("--path", "path_hex", multiple=True,
              help="Merkle path hash (hex, 32 bytes; repeat, leaf side first); without "
                   "--sidecar")
@_command("reveal", "As the OMLizer that committed the host, open one claimed fingerprint "
          "leaf (from the sealed sidecar, or given field by field).", needs_node=True)
def reveal(claim_id: int, fp_index: int, sidecar: Path | None, sidecar_key: Path | None,
           salt: bytes | None, key_text: str | None, response: str | None,
           path_hex: tuple[str, ...], node: NodeRef) -> Any:
    from ..ledger import RevealBody
    manual = {"--salt": salt, "--key": key_text, "--response": response}
    if sidecar is not None:
        given = [k for k, v in manual.items() if v is not None] + (["--path"] if path_hex else [])
        if given:
            raise click.UsageError(f"--sidecar excludes {', '.join(given)}")
        salt, key_text, response, path = _sidecar_entry(node, claim_id, sidecar, sidecar_key,
                                                        fp_index)
        return RevealBody(claim_id=claim_id, fp_index=fp_index, salt=salt, key=key_text,
                          response=response, path=path)
    if sidecar_key is not None:
        raise click.UsageError("--sidecar-key goes with --sidecar")
    missing = [k for k, v in manual.items() if v is None]
    if missing:
        raise click.UsageError(f"give --sidecar FILE, or all of: {', '.join(missing)} "
                               "(and --path per level)")
    parse = _hex_bytes(32)
    path = tuple(parse(None, click.Option(["--path"]), p) or b"" for p in path_hex)
    if len(path) > 64:
        raise click.BadParameter("at most 64 --path hashes")
    assert salt is not None and key_text is not None and response is not None
    return RevealBody(claim_id=claim_id, fp_index=fp_index, salt=salt, key=key_text,
                      response=response, path=path)


# ---------------------------------------------------------------- fees and rebuttals


@click.option("--voucher", type=_FILE, default=None,
              help="voucher JSON from `oml-node tx sign-voucher` (instead of the flags)")
@click.option("--model-id", default=None, callback=_model_id, help="model id (text)")
@click.option("--host", default=None, callback=_hex_bytes(20),
              help="host that signed the voucher (hex)")
@click.option("--cumulative-count", type=U64, default=None)
@click.option("--cumulative-amount", type=U64, default=None)
@click.option("--signature", default=None, callback=_hex_bytes(64),
              help="host's voucher signature (hex, 64 bytes)")
@_command("redeem", "As the model owner, cash a host's fee voucher (the ledger pays the "
          "difference to what was already redeemed).", needs_node=True)
def redeem(voucher: Path | None, model_id: bytes | None, host: bytes | None,
           cumulative_count: int | None, cumulative_amount: int | None,
           signature: bytes | None, node: NodeRef) -> Any:
    from ..ledger import RedeemBody
    flags = {"--model-id": model_id, "--host": host, "--cumulative-count": cumulative_count,
             "--cumulative-amount": cumulative_amount, "--signature": signature}
    if voucher is not None:
        given = [k for k, v in flags.items() if v is not None]
        if given:
            raise click.UsageError(f"--voucher excludes {', '.join(given)}")
        what = f"voucher {voucher}"
        data = _read_json(voucher, "voucher")
        _check_chain(data, node, what)
        mid = _field(data, "model_id", what)
        if not isinstance(mid, str):
            raise click.BadParameter(f"{what}: model_id must be text")
        return RedeemBody(model_id=model_id_bytes(mid),
                          host=_hex_field(data, "host", 20, what),
                          cumulative_count=_u64(data, "cumulative_count", what),
                          cumulative_amount=_u64(data, "cumulative_amount", what),
                          signature=_hex_field(data, "signature", 64, what))
    missing = [k for k, v in flags.items() if v is None]
    if missing:
        raise click.UsageError(f"give --voucher FILE, or all of: {', '.join(missing)}")
    assert model_id is not None and host is not None and signature is not None
    assert cumulative_count is not None and cumulative_amount is not None
    return RedeemBody(model_id=model_id, host=host, cumulative_count=cumulative_count,
                      cumulative_amount=cumulative_amount, signature=signature)


@click.option("--claim-id", required=True, type=U64)
@click.option("--fp-index", required=True, type=click.IntRange(0, 2**32 - 1),
              help="the claimed index whose key the permission covers")
@click.option("--permission", type=_FILE, default=None,
              help="permission JSON from `oml-node tx sign-permission` (instead of the flags)")
@click.option("--seq", type=U64, default=None, help="permission sequence number")
@click.option("--issued-height", type=U64, default=None, help="height the owner signed at")
@click.option("--signature", default=None, callback=_hex_bytes(64),
              help="owner's permission signature (hex, 64 bytes)")
@_command("rebut", "As the accused host, show the owner's permission string for one claimed "
          "query (issued before the claim's commitment).", needs_node=True)
def rebut(claim_id: int, fp_index: int, permission: Path | None, seq: int | None,
          issued_height: int | None, signature: bytes | None, node: NodeRef) -> Any:
    from ..ledger import RebutBody
    flags = {"--seq": seq, "--issued-height": issued_height, "--signature": signature}
    if permission is not None:
        given = [k for k, v in flags.items() if v is not None]
        if given:
            raise click.UsageError(f"--permission excludes {', '.join(given)}")
        what = f"permission {permission}"
        data = _read_json(permission, "permission")
        _check_chain(data, node, what)
        return RebutBody(claim_id=claim_id, fp_index=fp_index, seq=_u64(data, "seq", what),
                         issued_height=_u64(data, "issued_height", what),
                         signature=_hex_field(data, "signature", 64, what))
    missing = [k for k, v in flags.items() if v is None]
    if missing:
        raise click.UsageError(f"give --permission FILE, or all of: {', '.join(missing)}")
    assert seq is not None and issued_height is not None and signature is not None
    return RebutBody(claim_id=claim_id, fp_index=fp_index, seq=seq,
                     issued_height=issued_height, signature=signature)


# ---------------------------------------------------------------- offline signing


@tx_group.command("sign-voucher")
@click.option("--home", required=True,
              type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="the HOST's home (its account key signs)")
@click.option("--model-id", required=True, callback=_model_id, help="model id (text)")
@click.option("--cumulative-count", required=True, type=U64,
              help="queries served so far (all time, not since the last voucher)")
@click.option("--cumulative-amount", required=True, type=U64,
              help="fees owed so far (all time)")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="also write the JSON to this file")
def sign_voucher_cmd(home: Path, model_id: bytes, cumulative_count: int,
                     cumulative_amount: int, out: Path | None) -> None:
    """As a host, sign a cumulative fee voucher (offline; prints JSON for `tx redeem`)."""
    from ..ledger.vouchers import sign_voucher
    key, chain_id = home_signer(home)
    sig = sign_voucher(key.key, chain_id, model_id, cumulative_count, cumulative_amount)
    _emit({"kind": "voucher", "chain_id": chain_id, "model_id": model_id.decode("utf-8"),
           "host": key.address.hex(), "cumulative_count": cumulative_count,
           "cumulative_amount": cumulative_amount, "signature": sig.hex()}, out)


@tx_group.command("sign-permission")
@click.option("--home", required=True,
              type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="the model OWNER's home (its account key signs)")
@click.option("--model-id", required=True, callback=_model_id, help="model id (text)")
@click.option("--host", required=True, callback=_hex_bytes(20), help="host address (hex)")
@click.option("--seq", required=True, type=U64, help="permission sequence number")
@click.option("--query", "query_text", required=True, help="the query text being allowed")
@click.option("--issued-height", type=U64, default=None,
              help="latest committed height at signing (default: ask the node)")
@click.option("--rpc", default=None, envvar="OML_RPC",
              help="node JSON-RPC URL for the height (default: the home's [rpc] laddr)")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="also write the JSON to this file")
def sign_permission_cmd(home: Path, model_id: bytes, host: bytes, seq: int, query_text: str,
                        issued_height: int | None, rpc: str | None, out: Path | None) -> None:
    """As the owner, sign a permission string for HOST to answer QUERY (prints JSON for
    `tx rebut`)."""
    from ..ledger.vouchers import query_hash, sign_permission
    key, chain_id = home_signer(home)
    if issued_height is None:
        status = NodeRef(home, rpc).call("status", {})
        issued_height = int(status["sync_info"]["latest_block_height"])
    sig = sign_permission(key.key, chain_id, model_id, host, seq, query_text,
                          issued_height=issued_height)
    _emit({"kind": "permission", "chain_id": chain_id, "model_id": model_id.decode("utf-8"),
           "host": host.hex(), "seq": seq, "query_hash": query_hash(query_text).hex(),
           "issued_height": issued_height, "signature": sig.hex()}, out)


__all__ = ["commit_omlization", "rebut", "redeem", "reveal", "sign_permission_cmd",
           "sign_voucher_cmd", "unregister_role", "update_model"]
