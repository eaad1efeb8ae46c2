"""A node's home directory: layout and ``init``.

Layout (like CometBFT's)::

    HOME/config/config.toml               settings (documented TOML)
    HOME/config/genesis.json              chain id, validators, initial state
    HOME/config/node_key.json             libp2p identity        (mode 0600)
    HOME/config/priv_validator_key.json   account/validator key  (mode 0600)
    HOME/data/                            LMDB state, blocks, WAL
"""

from __future__ import annotations

import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from .config import Config, load_config, render_config, with_changes
from .genesis import Genesis, GenesisValidator
from .keys import AccountKey, NodeKey

DEFAULT_BALANCE = 10**15
DEFAULT_POWER = 10


class HomeError(ValueError):
    """The home directory is missing, incomplete, or would be clobbered."""


@dataclass(frozen=True)
class Home:
    """Paths of one node home; the files themselves are read on demand."""

    root: Path

    @property
    def config_dir(self) -> Path:
        return self.root / "config"

    @property
    def config_file(self) -> Path:
        return self.config_dir / "config.toml"

    def config(self) -> Config:
        if not self.config_file.exists():
            raise HomeError(f"{self.root} is not an initialised home (run `oml-node init`)")
        return load_config(self.config_file)

    def path(self, relative: str) -> Path:
        """Resolve a config path relative to the home directory."""
        p = Path(relative)
        return p if p.is_absolute() else self.root / p

    def genesis_file(self, config: Config) -> Path:
        return self.path(config.node.genesis_file)

    def data_dir(self, config: Config) -> Path:
        return self.path(config.node.data_dir)

    def account_key(self, config: Config | None = None) -> AccountKey:
        config = config or self.config()
        return AccountKey.load(self.path(config.node.account_key_file))

    def node_key(self, config: Config | None = None) -> NodeKey:
        config = config or self.config()
        return NodeKey.load(self.path(config.node.node_key_file))


def default_chain_id() -> str:
    return f"oml-local-{secrets.token_hex(3)}"


def write_home(root: Path, config: Config, account: AccountKey, node_key: NodeKey,
               *, force: bool = False) -> Home:
    """Create a home with the given config and keys (genesis written separately).

    Refuses to touch an existing home unless ``force``; with ``force`` the old
    config, keys and data are removed first so nothing stale survives.
    """
    home = Home(root)
    if home.config_file.exists() or (root / "data").exists():
        if not force:
            raise HomeError(f"{root} already holds a node home; pass --force to overwrite it")
        shutil.rmtree(home.config_dir, ignore_errors=True)
        shutil.rmtree(home.data_dir(config), ignore_errors=True)
    home.config_dir.mkdir(parents=True, exist_ok=True)
    home.data_dir(config).mkdir(parents=True, exist_ok=True)
    home.config_file.write_text(render_config(config), "utf-8")
    account.save(home.path(config.node.account_key_file))
    node_key.save(home.path(config.node.node_key_file))
    return home


def init_home(root: Path, *, moniker: str = "node", chain_id: str | None = None,
              force: bool = False, balance: int = DEFAULT_BALANCE,
              genesis_time_ms: int | None = None) -> Home:
    """``oml-node init``: a single-validator home whose genesis funds its account."""
    config = with_changes(Config(), node={"moniker": moniker})
    account, node_key = AccountKey.generate(), NodeKey.generate()
    home = write_home(root, config, account, node_key, force=force)
    genesis = Genesis(
        chain_id=chain_id or default_chain_id(),
        genesis_time_ms=genesis_time_ms if genesis_time_ms is not None
        else int(time.time() * 1000),
        validators=(GenesisValidator(name=moniker, pub_key=account.public_key,
                                     power=DEFAULT_POWER),),
        app_state={"accounts": [{"address": account.address.hex(), "balance": balance}],
                   "params": {}},
    )
    genesis.save(home.genesis_file(config))
    return home
