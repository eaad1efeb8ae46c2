"""``oml-node blob ...``: put, get, list, pin and unpin content-addressed blobs.

``put``, ``ls``, ``unpin`` and the final export of ``get`` open the home's
blob store directly (the store is shared safely with a running node), so a
multi-GB model folder never travels through JSON-RPC and nothing but ``get``
of a missing blob and ``pin`` of an unknown one needs the node. Fetching from
the network is the node's job: ``get`` asks it over RPC (``blob_fetch``) and
shows progress from ``blob_status`` until every chunk is on disk and
verified; then the CLI checks, decrypts (when the home's key is a recipient)
and writes the result.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from ..config import ConfigError
from ..home import Home, HomeError
from ..keys import KeyFileError
from ..rpc_client import RpcClient, RpcClientError, RpcError
from .tx_cmds import _rpc_url

#: How often ``get`` polls the node for fetch progress.
POLL_S = 0.25
#: Blobs at least this large get a progress bar.
PROGRESS_MIN_BYTES = 8 << 20


def _blob_id(_ctx: click.Context, _param: click.Parameter, value: str | None) -> bytes | None:
    if value is None:
        return None
    try:
        raw = bytes.fromhex(value.lower().removeprefix("0x"))
    except ValueError:
        raise click.BadParameter("a blob id is 64 hex characters") from None
    if len(raw) != 32:
        raise click.BadParameter(f"a blob id is 32 bytes (64 hex characters), got {len(raw)}")
    return raw


def _recipient(home_dir: Path, rpc: str | None, value: str) -> bytes:
    """The Ed25519 public key to seal a blob's key to, from a key or an account address.

    An address (40 hex characters) is looked up on chain: the ledger records
    an account's public key with its first transaction, so an account that
    never sent one must be named by its public key (``keys show`` prints it).
    """
    try:
        raw = bytes.fromhex(value.lower().removeprefix("0x"))
    except ValueError:
        raise click.BadParameter(f"--to {value!r}: not hex") from None
    if len(raw) == 32:
        return raw
    if len(raw) != 20:
        raise click.BadParameter(
            f"--to {value!r}: expected an account address (40 hex characters) or an Ed25519 "
            f"public key (64 hex characters), got {len(raw)} bytes")
    try:
        account = _call(home_dir, rpc, "account", {"address": raw.hex()})
    except click.ClickException:
        account = {}
    pub = bytes.fromhex(str(account.get("pub_key") or ""))
    if len(pub) != 32:
        raise click.ClickException(
            f"--to {value}: the chain knows no public key for this account (it has sent no "
            f"transaction yet); give its pub_key from `oml-node keys show` instead")
    return pub


HOME_OPTION = click.option("--home", "home_dir", required=True,
                           type=click.Path(file_okay=False, path_type=Path),
                           help="node home directory")
JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="print JSON")


@contextmanager
def _open_store(home_dir: Path) -> Iterator[Any]:
    from ..roles.storage.errors import StorageError
    from ..roles.storage.layout import store_root
    from ..roles.storage.store import BlobStore

    home = Home(home_dir)
    try:
        config = home.config()
        data_dir = home.data_dir(config)
    except (HomeError, ConfigError) as exc:
        raise click.ClickException(str(exc)) from None
    try:
        store = BlobStore.open(store_root(data_dir),
                               quota_bytes=config.roles.storage.quota_mb << 20)
    except StorageError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        yield store
    except StorageError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        store.close()


def _account_seed(home_dir: Path) -> bytes:
    home = Home(home_dir)
    try:
        return home.account_key(home.config()).key.seed
    except (HomeError, ConfigError, KeyFileError) as exc:
        raise click.ClickException(str(exc)) from None


def _call(home_dir: Path, rpc: str | None, method: str, params: dict[str, Any]) -> Any:
    url = _rpc_url(Home(home_dir), rpc)
    try:
        with RpcClient(url, timeout=30.0) as client:
            return client.call(method, params)
    except RpcError as exc:
        raise click.ClickException(f"{method}: {exc}") from None
    except RpcClientError as exc:
        raise click.ClickException(f"the node at {url} is needed for this and did not answer "
                                   f"({exc}); start it with `oml-node start --home {home_dir}`"
                                   ) from None


def _bar(total: int, desc: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc,
                disable=total < PROGRESS_MIN_BYTES, leave=False)


@click.group("blob")
def blob_group() -> None:
    """Content-addressed blobs (model folders, OML packages) in the home's store."""


@blob_group.command("put")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@HOME_OPTION
@click.option("--to", "recipients", multiple=True,
              help="encrypt to this account (address, looked up on chain, or Ed25519 public "
                   "key; hex); repeat for several")
@click.option("--rpc", default=None, help="node JSON-RPC URL for address look-ups")
@click.option("--no-pin", is_flag=True, help="store without pinning (collectable)")
@JSON_OPTION
def put_cmd(path: Path, home_dir: Path, recipients: tuple[str, ...], rpc: str | None,
            no_pin: bool, as_json: bool) -> None:
    """Store PATH (a file, or a directory as one deterministic archive); print the blob id.

    With --to, the blob is encrypted before it is chunked, with a random key
    sealed to each recipient: storage peers then hold and serve ciphertext only.
    """
    keys = [_recipient(home_dir, rpc, r) for r in recipients]
    size = _input_size(path)
    with _open_store(home_dir) as store, _bar(size, "put") as bar:
        manifest = store.put_file(path, recipients=keys, pin=not no_pin, progress=bar.update)
    out = {"blob_id": manifest.blob_id.hex(), "size": manifest.size,
           "chunks": len(manifest.chunk_hashes), "encrypted": manifest.encrypted,
           "kind": "dir" if manifest.kind == 1 else "file", "pinned": not no_pin}
    click.echo(json.dumps(out, indent=2) if as_json else manifest.blob_id.hex())


def _input_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


@blob_group.command("get")
@click.argument("blob_id", callback=_blob_id)
@HOME_OPTION
@click.option("--out", "out", required=True, type=click.Path(path_type=Path),
              help="file (or, for a directory blob, folder) to write; must not exist")
@click.option("--rpc", default=None, help="the home node's JSON-RPC URL (default: its laddr)")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=1), default=3600,
              show_default=True, help="seconds to wait for the fetch")
@click.option("--no-pin", is_flag=True, help="do not pin what is fetched")
def get_cmd(blob_id: bytes, home_dir: Path, out: Path, rpc: str | None, timeout_s: float,
            no_pin: bool) -> None:
    """Fetch BLOB_ID from the network (unless it is here), verify it and write it to --out.

    An encrypted blob is decrypted when this home's account is a recipient;
    otherwise the verified ciphertext stays in the store and the command
    says whom it is sealed to.
    """
    if out.exists():
        raise click.ClickException(f"{out} exists; choose a new --out path")
    with _open_store(home_dir) as store:
        complete = store.has_manifest(blob_id) and store.is_complete(blob_id)
    if not complete:
        _fetch_with_progress(home_dir, rpc, blob_id, timeout_s, pin=not no_pin)
    with _open_store(home_dir) as store:
        manifest = store.manifest(blob_id)
        with _bar(manifest.size, "verify") as bar:
            store.export(blob_id, out, seed=_account_seed(home_dir), progress=bar.update)
    click.echo(str(out))


def _fetch_with_progress(home_dir: Path, rpc: str | None, blob_id: bytes, timeout_s: float,
                         *, pin: bool) -> None:
    _call(home_dir, rpc, "blob_fetch", {"blob_id": blob_id.hex(), "pin": pin})
    deadline = time.monotonic() + timeout_s
    bar = None
    try:
        while True:
            status = _call(home_dir, rpc, "blob_status", {"blob_id": blob_id.hex()})
            fetch = status.get("fetch") or {}
            if bar is None and status.get("size") is not None:
                bar = _bar(int(status["size"]), "fetch")
            if bar is not None:
                bar.n = int(status.get("bytes_present", 0))
                bar.refresh()
            if status.get("complete"):
                return
            if fetch.get("state") == "failed":
                raise click.ClickException(f"fetch of {blob_id.hex()} failed: "
                                           f"{fetch.get('error', 'unknown error')}")
            if time.monotonic() > deadline:
                raise click.ClickException(
                    f"fetch of {blob_id.hex()} not done after {timeout_s:.0f} s "
                    f"({status.get('chunks_present', 0)} of {status.get('chunks', '?')} "
                    f"chunks); the node keeps fetching, run `blob get` again to resume")
            time.sleep(POLL_S)
    finally:
        if bar is not None:
            bar.close()


@blob_group.command("ls")
@HOME_OPTION
@JSON_OPTION
def ls_cmd(home_dir: Path, as_json: bool) -> None:
    """Every blob in the home's store: id, size, chunks present, pinned, encrypted."""
    with _open_store(home_dir) as store:
        infos = store.list()
        used = store.used_bytes()
    rows = [info.to_json() for info in infos]
    if as_json:
        click.echo(json.dumps({"blobs": rows, "used_bytes": used}, indent=2))
        return
    for r in rows:
        click.echo(f"{r['blob_id']}  {r['size']:>14,d} B  {r['chunks_present']}/{r['chunks']} "
                   f"chunks  {'pinned' if r['pinned'] else 'cached'}"
                   f"{'  encrypted' if r['encrypted'] else ''}  {r['kind']}")
    click.echo(f"{len(rows)} blobs, {used:,d} bytes of chunks")


@blob_group.command("pin")
@click.argument("blob_id", callback=_blob_id)
@HOME_OPTION
@click.option("--rpc", default=None, help="the home node's JSON-RPC URL (default: its laddr)")
def pin_cmd(blob_id: bytes, home_dir: Path, rpc: str | None) -> None:
    """Keep BLOB_ID; a blob not fully here is fetched by the node (which must be running)."""
    with _open_store(home_dir) as store:
        known = store.has_manifest(blob_id)
        if known:
            store.pin(blob_id)
            complete = store.is_complete(blob_id)
    if not known or not complete:
        _call(home_dir, rpc, "blob_fetch", {"blob_id": blob_id.hex(), "pin": True})
        click.echo(f"pinned {blob_id.hex()}; the node is fetching it (see `blob ls`)")
    else:
        click.echo(f"pinned {blob_id.hex()}")


@blob_group.command("unpin")
@click.argument("blob_id", callback=_blob_id)
@HOME_OPTION
def unpin_cmd(blob_id: bytes, home_dir: Path) -> None:
    """Let BLOB_ID be collected when space is needed (or by `blob gc`)."""
    with _open_store(home_dir) as store:
        store.unpin(blob_id)
    click.echo(f"unpinned {blob_id.hex()}")


@blob_group.command("gc")
@HOME_OPTION
def gc_cmd(home_dir: Path) -> None:
    """Delete every unpinned blob now; print the bytes freed."""
    with _open_store(home_dir) as store:
        freed = store.collect()
    click.echo(f"freed {freed:,d} bytes")
