"""Node configuration: one frozen dataclass per subsystem, loaded from TOML.

Every field has a default and a one-line doc (``field(metadata={"doc": ...})``)
that is written as a comment into ``config.toml`` by ``init``, so the file a
user edits documents itself and ``docs/operator.md`` can be checked against
it. Unknown sections and keys are rejected with :class:`ConfigError` naming
them: a typo must not silently fall back to a default.
"""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w


class ConfigError(ValueError):
    """The configuration file is unreadable, has unknown keys or bad values."""


def _f(default: Any, doc: str) -> Any:
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata={"doc": doc})
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class NodeSection:
    """Identity and local paths of this node."""

    moniker: str = _f("node", "human-readable name of this node, shown in status and net_info")
    data_dir: str = _f(
        "data", "directory for the LMDB state, block store and WAL (relative to home)"
    )
    genesis_file: str = _f("config/genesis.json", "genesis document (relative to home)")
    node_key_file: str = _f("config/node_key.json", "libp2p node key (relative to home)")
    account_key_file: str = _f(
        "config/priv_validator_key.json",
        "Ed25519 account and validator key (relative to home)",
    )


@dataclass(frozen=True)
class P2PSection:
    """libp2p networking."""

    listen_addr: str = _f("/ip4/127.0.0.1/tcp/26656", "multiaddr the libp2p host listens on")
    persistent_peers: list[str] = _f(
        [], "peers to keep connected, as /ip4/HOST/tcp/PORT/p2p/PEER_ID multiaddrs"
    )
    redial_interval_ms: int = _f(2000, "how often to redial a disconnected persistent peer")
    stream_timeout_ms: int = _f(10000, "deadline for every stream read or write")
    max_msg_bytes: int = _f(4 * 1024 * 1024, "largest gossip or request/response message accepted")


@dataclass(frozen=True)
class RPCSection:
    """JSON-RPC 2.0 server."""

    laddr: str = _f("127.0.0.1:26657", "host:port the JSON-RPC server listens on")
    max_body_bytes: int = _f(1_000_000, "largest HTTP request body accepted")
    max_batch: int = _f(100, "largest JSON-RPC batch accepted")
    timeout_broadcast_tx_commit_ms: int = _f(
        10000, "how long broadcast_tx_commit waits for the transaction to be committed"
    )


@dataclass(frozen=True)
class MetricsSection:
    """Prometheus metrics endpoint."""

    enabled: bool = _f(True, "serve Prometheus metrics")
    laddr: str = _f("127.0.0.1:26660", "host:port of the metrics endpoint")


@dataclass(frozen=True)
class ConsensusSection:
    """Consensus timeouts (milliseconds); each grows by its delta per round."""

    timeout_propose_ms: int = _f(1000, "how long to wait for a proposal in round 0")
    timeout_propose_delta_ms: int = _f(500, "added to timeout_propose per round")
    timeout_prevote_ms: int = _f(500, "wait after +2/3 prevotes for anything")
    timeout_prevote_delta_ms: int = _f(500, "added to timeout_prevote per round")
    timeout_precommit_ms: int = _f(500, "wait after +2/3 precommits for anything")
    timeout_precommit_delta_ms: int = _f(500, "added to timeout_precommit per round")
    timeout_commit_ms: int = _f(200, "pause after a commit before the next height starts")
    max_block_bytes: int = _f(4 * 1024 * 1024, "largest block a proposer builds")
    create_empty_blocks: bool = _f(
        True, "false: round 0 waits for transactions before proposing (no empty blocks)"
    )
    create_empty_blocks_interval_ms: int = _f(
        0, "if > 0, make a block after this long without transactions (waits for txs up to it)"
    )


@dataclass(frozen=True)
class MempoolSection:
    """Transaction pool."""

    max_txs: int = _f(20000, "most transactions held")
    max_bytes: int = _f(64 * 1024 * 1024, "most bytes of transactions held")
    max_tx_bytes: int = _f(64 * 1024, "largest single transaction accepted")
    max_txs_per_sender: int = _f(2000, "most transactions one sender may have pending")
    max_future_txs_per_sender: int = _f(
        64, "most pending transactions of one sender whose nonce leaves a gap"
    )
    ttl_blocks: int = _f(1000, "blocks a transaction may wait before it is dropped (0: no limit)")
    future_ttl_blocks: int = _f(
        50, "blocks a transaction with a nonce gap may wait for it to fill (0: no limit)"
    )
    gossip_batch_ms: int = _f(50, "how long to gather transactions before gossiping a batch")
    gossip_batch_bytes: int = _f(256 * 1024, "largest gossiped batch")


@dataclass(frozen=True)
class LogSection:
    """Logging."""

    level: str = _f("info", "debug, info, warning or error")
    format: str = _f("plain", "plain or json")


@dataclass(frozen=True)
class RolesSection:
    """Optional roles; a node with none of them still relays and follows the chain."""

    validator: bool = _f(True, "take part in consensus if this key is in the validator set")
    storage: bool = _f(False, "store and serve content-addressed model blobs")
    omlizer: bool = _f(False, "fingerprint models for hosts that request access")
    prover: bool = _f(False, "query deployments with assigned keys and file claims")
    host_gateway: bool = _f(False, "serve a model behind permission strings")
    owner_permission: bool = _f(False, "answer hosts' permission requests for owned models")


@dataclass(frozen=True)
class Config:
    """The whole node configuration, as read from ``config.toml``."""

    node: NodeSection = field(default_factory=NodeSection)
    p2p: P2PSection = field(default_factory=P2PSection)
    rpc: RPCSection = field(default_factory=RPCSection)
    metrics: MetricsSection = field(default_factory=MetricsSection)
    consensus: ConsensusSection = field(default_factory=ConsensusSection)
    mempool: MempoolSection = field(default_factory=MempoolSection)
    log: LogSection = field(default_factory=LogSection)
    roles: RolesSection = field(default_factory=RolesSection)


_CHOICES = {("log", "level"): {"debug", "info", "warning", "error"},
            ("log", "format"): {"plain", "json"}}


def _check_type(section: str, key: str, value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    where = f"[{section}] {key}"
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
    elif hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        if value < 0:
            raise ConfigError(f"{where}: must not be negative")
    elif hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
    elif origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list) or not all(isinstance(v, item) for v in value):
            raise ConfigError(f"{where}: expected a list of {item.__name__}")
        value = list(value)
    choices = _CHOICES.get((section, key))
    if choices is not None and value not in choices:
        raise ConfigError(f"{where}: must be one of {sorted(choices)}, got {value!r}")
    return value


def config_from_dict(data: dict[str, Any]) -> Config:
    """Build a :class:`Config` from parsed TOML, rejecting unknown keys and bad types."""
    sections: dict[str, Any] = {}
    known = {f.name: f for f in dataclasses.fields(Config)}
    for name, body in data.items():
        if name not in known:
            raise ConfigError(f"unknown config section [{name}]")
        if not isinstance(body, dict):
            raise ConfigError(f"[{name}] must be a table")
        cls = type(known[name].default_factory())  # type: ignore[misc]
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for key, value in body.items():
            if key not in hints:
                raise ConfigError(f"unknown config key [{name}] {key}")
            kwargs[key] = _check_type(name, key, value, hints[key])
        sections[name] = cls(**kwargs)
    return Config(**sections)


def load_config(path: Path) -> Config:
    """Read and validate ``config.toml``; a missing file is an error, not defaults."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    return config_from_dict(data)


def render_config(config: Config) -> str:
    """TOML text for ``config`` with every field documented by a comment."""
    out = ["# oml-node configuration. Every key is optional; shown values are defaults",
           "# unless changed for this node. Unknown keys are rejected.", ""]
    for section in dataclasses.fields(Config):
        value = getattr(config, section.name)
        doc = (type(value).__doc__ or "").strip().splitlines()[0]
        out.append(f"# {doc}")
        out.append(f"[{section.name}]")
        for f in dataclasses.fields(value):
            out.append(f"# {f.metadata['doc']}")
            out.append(tomli_w.dumps({f.name: getattr(value, f.name)}).rstrip())
        out.append("")
    return "\n".join(out)


def with_changes(config: Config, **sections: dict[str, Any]) -> Config:
    """A copy of ``config`` with fields of named sections replaced (for init/testnet)."""
    updated = {}
    for name, changes in sections.items():
        updated[name] = dataclasses.replace(getattr(config, name), **changes)
    return dataclasses.replace(config, **updated)


__all__ = ["Config", "ConfigError", "config_from_dict", "load_config", "render_config",
           "with_changes"]
