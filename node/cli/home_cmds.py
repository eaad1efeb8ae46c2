"""``oml-node init`` and ``oml-node keys``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..config import ConfigError
from ..genesis import CHAIN_ID_RE
from ..home import Home, HomeError, init_home
from ..keys import AccountKey, KeyFileError

HOME_OPTION = click.option(
    "--home", "home", required=True, type=click.Path(file_okay=False, path_type=Path),
    help="node home directory (holds config/ and data/)",
)


def _chain_id(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not CHAIN_ID_RE.match(value):
        raise click.BadParameter("1-50 characters: letters, digits, '.', '_' or '-'")
    return value


@click.command("init")
@HOME_OPTION
@click.option("--moniker", default="node", show_default=True, help="human-readable node name")
@click.option("--chain-id", callback=_chain_id, help="chain id (default: oml-local-<random>)")
@click.option("--force", is_flag=True,
              help="overwrite an existing home: its config, keys, genesis AND data are replaced")
def init_cmd(home: Path, moniker: str, chain_id: str | None, force: bool) -> None:
    """Create a node home: config.toml, keys and a single-validator genesis.

    The genesis funds this node's account and makes it the only validator,
    so `oml-node start --home DIR` runs a one-node chain straight away.
    """
    try:
        h = init_home(home, moniker=moniker, chain_id=chain_id, force=force)
        key = h.account_key()
    except (HomeError, KeyFileError, ConfigError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"initialised {home}")
    click.echo(f"  address: {key.address.hex()}")
    click.echo(f"  peer id: {h.node_key().peer_id}")


@click.group("keys")
def keys_group() -> None:
    """Show the node's account key or make new account keys."""


@keys_group.command("show")
@HOME_OPTION
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def keys_show(home: Path, as_json: bool) -> None:
    """Print the account address, public key and libp2p peer id of a home."""
    try:
        h = Home(home)
        config = h.config()
        key = h.account_key(config)
        peer_id = h.node_key(config).peer_id
    except (HomeError, KeyFileError, ConfigError) as exc:
        raise click.ClickException(str(exc)) from None
    info = {"address": key.address.hex(), "pub_key": key.public_key.hex(), "peer_id": peer_id}
    if as_json:
        click.echo(json.dumps(info))
    else:
        for name, value in info.items():
            click.echo(f"{name}: {value}")


@keys_group.command("new")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="file to write the new key to (created with mode 0600)")
@click.option("--force", is_flag=True, help="overwrite an existing file")
def keys_new(out: Path, force: bool) -> None:
    """Make a fresh Ed25519 account key and print its address."""
    key = AccountKey.generate()
    try:
        key.save(out, overwrite=force)
    except KeyFileError as exc:
        raise click.ClickException(f"{exc}; pass --force to overwrite") from None
    click.echo(f"address: {key.address.hex()}")
    click.echo(f"pub_key: {key.public_key.hex()}")
