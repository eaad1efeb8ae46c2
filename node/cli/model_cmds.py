"""``oml-node model publish|fetch``: the owner's and the host's ends of distribution.

``publish`` (owner): the model folder becomes one blob, encrypted to the
OMLizers the owner authorises (and to the owner, who may want it back),
pinned in the owner's store, and registered on chain with its weights hash
and blob id. Nothing is sent in the clear: storage peers hold ciphertext.

``fetch`` (host): waits until an OMLizer has committed this host's
fingerprinted package, has the node fetch the package blob, decrypts it with
the host's key and accepts it only if the package is what the chain
committed (package hash, fingerprint root and count) and is signed by one of
the model's authorised OMLizers; then writes a folder any
``from_pretrained`` loads.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import click

from ..rpc_client import RpcClientError, RpcError
from .blob_cmds import HOME_OPTION, _account_seed, _call, _fetch_with_progress, _open_store
from .tx_cmds import (
    _model_id,
    parse_address,
    parse_split,
    result_failed,
    send_body,
)

#: Host record statuses (node.ledger.records.HostStatus) as RPC may render them.
_STATUS = {1: "pending", 2: "active", 3: "unbonding", 4: "withdrawn"}
POLL_S = 1.0


@click.group("model")
def model_group() -> None:
    """Publish a model (owner) or fetch your fingerprinted copy (host)."""


@model_group.command("publish")
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@HOME_OPTION
@click.option("--model-id", required=True, callback=_model_id, help="model id (text, 1-64 bytes)")
@click.option("--price", "price", type=click.IntRange(0, 2**64 - 1), required=True,
              help="price per query, in the smallest unit")
@click.option("--min-collateral", type=click.IntRange(0, 2**64 - 1), required=True,
              help="collateral a host must lock")
@click.option("--omlizer", "omlizers", multiple=True, required=True,
              help="authorised OMLizer address (hex; repeatable); it must have sent a "
                   "transaction (e.g. tx register-role omlizer) so its public key is on chain")
@click.option("--split", "splits", multiple=True, help="ADDRESS:BASIS_POINTS payee share")
@click.option("--parent", default=None, callback=_model_id, help="parent model id (text)")
@click.option("--royalty-bp", type=click.IntRange(0, 10000), default=0,
              help="royalty that models derived from this one pay to it (basis points)")
@click.option("--metadata", default="", help="free text stored with the model")
@click.option("--rpc", default=None, help="node JSON-RPC URL (default: the home's laddr)")
def publish_cmd(model_dir: Path, home_dir: Path, model_id: bytes, price: int,
                min_collateral: int, omlizers: tuple[str, ...], splits: tuple[str, ...],
                parent: bytes | None, royalty_bp: int, metadata: str, rpc: str | None) -> None:
    """Store MODEL_DIR encrypted to the OMLizers and register it on chain.

    MODEL_DIR is a transformers model folder (config, tokenizer, safetensors
    weights). Prints the model id, weights hash, blob id and the transaction.
    """
    from oml.hashing import WeightsFileError, weights_hash

    from ..ledger import RegisterModelBody

    try:
        base_hash = weights_hash(model_dir)
    except WeightsFileError as exc:
        raise click.ClickException(f"{model_dir} is not a model folder: {exc}") from None
    addresses = [parse_address(a, "--omlizer") for a in omlizers]
    spl = tuple(parse_split(s) for s in splits)
    keys = [_account_pub_key(home_dir, rpc, a) for a in addresses]
    own = _home_pub_key(home_dir)
    with _open_store(home_dir) as store:
        manifest = store.put_file(model_dir, recipients=[*keys, own], pin=True)
    body = RegisterModelBody(model_id=model_id, weights_hash=base_hash,
                             metadata=metadata.encode("utf-8"), price_per_query=price,
                             min_collateral=min_collateral, omlizers=tuple(addresses),
                             splits=spl, parent=parent or b"", royalty_bp=royalty_bp,
                             blob_id=manifest.blob_id)
    result = send_body(home_dir, rpc, None, False, body)
    click.echo(json.dumps({"model_id": model_id.decode("utf-8"), "weights_hash": base_hash.hex(),
                           "blob_id": manifest.blob_id.hex(), "blob_size": manifest.size,
                           "tx": result}, indent=2, sort_keys=True))
    if result_failed(result):
        raise SystemExit(1)


def _account_pub_key(home_dir: Path, rpc: str | None, address: bytes) -> bytes:
    try:
        account = _call(home_dir, rpc, "account", {"address": address.hex()})
    except click.ClickException:
        account = {}
    pub = bytes.fromhex(str(account.get("pub_key") or ""))
    if len(pub) != 32:
        raise click.ClickException(
            f"--omlizer {address.hex()}: the chain knows no public key for this account; an "
            f"OMLizer registers first (oml-node tx register-role omlizer), which records it")
    return pub


def _home_pub_key(home_dir: Path) -> bytes:
    from nacl.signing import SigningKey

    return bytes(SigningKey(_account_seed(home_dir)).verify_key)


@model_group.command("fetch")
@HOME_OPTION
@click.option("--model-id", required=True, callback=_model_id, help="model id (text)")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path),
              help="folder to write the model to (must not exist)")
@click.option("--rpc", default=None, help="node JSON-RPC URL (default: the home's laddr)")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=1), default=3600,
              show_default=True, help="seconds to wait for the commitment and the fetch")
def fetch_cmd(home_dir: Path, model_id: bytes, out: Path, rpc: str | None,
              timeout_s: float) -> None:
    """Wait for this host's fingerprinted copy, fetch, decrypt and check it, write --out."""
    from oml.package import verify_package
    from oml.package_errors import PackageError

    if out.exists():
        raise click.ClickException(f"{out} exists; choose a new --out folder")
    deadline = time.monotonic() + timeout_s
    host_addr = _home_address(home_dir)
    record = _wait_active(home_dir, rpc, model_id, host_addr, deadline)
    model = _call(home_dir, rpc, "model", {"model_id": model_id.hex()})
    blob_id = bytes.fromhex(record["package_blob"])
    with _open_store(home_dir) as store:
        complete = store.has_manifest(blob_id) and store.is_complete(blob_id)
    if not complete:
        _fetch_with_progress(home_dir, rpc, blob_id, max(1.0, deadline - time.monotonic()),
                             pin=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as tmp:
        staged = Path(tmp) / "package"
        with _open_store(home_dir) as store:
            store.export(blob_id, staged, seed=_account_seed(home_dir))
        try:
            manifest = verify_package(staged)
        except PackageError as exc:
            raise click.ClickException(f"the package in blob {blob_id.hex()} is not valid: "
                                       f"{exc}") from None
        _check_against_chain(manifest, record, model)
        shutil.move(str(staged), out)
    click.echo(json.dumps({"model_id": model_id.decode("utf-8"), "out": str(out),
                           "package_hash": manifest.package_hash().hex(),
                           "fp_root": manifest.fp_root.hex(), "fp_count": manifest.fp_count,
                           "omlizer_pubkey": manifest.omlizer_pubkey.hex(),
                           "blob_id": blob_id.hex()}, indent=2, sort_keys=True))


def _home_address(home_dir: Path) -> bytes:
    import hashlib

    from nacl.signing import SigningKey

    pub = bytes(SigningKey(_account_seed(home_dir)).verify_key)
    return hashlib.sha256(pub).digest()[:20]


def _status(record: dict[str, Any]) -> str:
    status = record.get("status")
    return _STATUS.get(status, str(status)) if isinstance(status, int) else str(status)


def _wait_active(home_dir: Path, rpc: str | None, model_id: bytes, host: bytes,
                 deadline: float) -> dict[str, Any]:
    said = False
    while True:
        try:
            record = _call_raw(home_dir, rpc, "host", {"model_id": model_id.hex(),
                                                       "host": host.hex()})
        except RpcError as exc:
            if exc.code == -32001:
                raise click.ClickException(
                    f"account {host.hex()} has not requested access to model "
                    f"{model_id.decode('utf-8', 'replace')!r} (oml-node tx request-access)"
                ) from None
            raise click.ClickException(f"host: {exc}") from None
        status = _status(record)
        if status == "active" or (status == "unbonding" and record.get("package_blob")):
            return record
        if status != "pending":
            raise click.ClickException(f"account {host.hex()} is not an active host of this "
                                       f"model (status {status})")
        if time.monotonic() > deadline:
            raise click.ClickException("no OMLizer committed a package for this host in time; "
                                       "see `oml-node query omlizer-jobs` on the OMLizer's node")
        if not said:
            click.echo("waiting for an OMLizer to commit this host's package ...", err=True)
            said = True
        time.sleep(POLL_S)


def _call_raw(home_dir: Path, rpc: str | None, method: str, params: dict[str, Any]) -> Any:
    from ..home import Home
    from ..rpc_client import RpcClient
    from .tx_cmds import _rpc_url

    url = _rpc_url(Home(home_dir), rpc)
    try:
        with RpcClient(url, timeout=30.0) as client:
            return client.call(method, params)
    except RpcError:
        raise
    except RpcClientError as exc:
        raise click.ClickException(f"the node at {url} did not answer ({exc})") from None


def _check_against_chain(manifest: Any, record: dict[str, Any], model: dict[str, Any]) -> None:
    """The package must be the one the chain committed, signed by an authorised OMLizer."""
    import hashlib

    problems = []
    if manifest.package_hash().hex() != record.get("package_hash"):
        problems.append("its package hash is not the committed one")
    if manifest.fp_root.hex() != record.get("fp_root"):
        problems.append("its fingerprint root is not the committed one")
    if manifest.fp_count != int(record.get("fp_count", -1)):
        problems.append("its fingerprint count is not the committed one")
    signer = hashlib.sha256(manifest.omlizer_pubkey).digest()[:20].hex()
    if signer not in model.get("omlizers", []):
        problems.append(f"it is signed by {signer}, not an OMLizer of this model")
    if manifest.host.hex() != record.get("host"):
        problems.append("it was made for another host")
    if problems:
        raise click.ClickException("the fetched package does not match the chain: "
                                   + "; ".join(problems))
