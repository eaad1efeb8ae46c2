"""Node configuration: one frozen dataclass per subsystem, loaded from TOML.

Every field has a default and a one-line doc (``field(metadata={"doc": ...})``)
that is written as a comment into ``config.toml`` by ``init``, so the file a
user edits documents itself and ``docs/operator.md`` can be checked against
it. Unknown sections and keys are rejected with :class:`ConfigError` naming
them: a typo must not silently fall back to a default.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import multiaddr
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
    msg_id: str = _f(
        "content",
        "gossip message id: content (SHA-256 of topic and data) or peer_seqno (the libp2p "
        "standard; every node must use it when go or js libp2p nodes join)",
    )


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
class StorageRole:
    """Storage peer: keep and serve content-addressed blobs over /oml/blob/1."""

    enabled: bool = _f(False, "store, serve and replicate content-addressed model blobs")
    quota_mb: int = _f(10240, "most MiB of blob chunks kept on disk (pinned and cached)")
    replication: int = _f(
        3, "providers wanted for each blob the chain references; below that, fetch and pin it"
    )
    max_providers: int = _f(4, "providers one fetch pulls chunks from in parallel")
    range_chunks: int = _f(8, "chunks asked of a provider in one range request")


@dataclass(frozen=True)
class OmlizerRole:
    """OMLizer: fingerprint models for hosts that request access."""

    enabled: bool = _f(False, "fingerprint models for hosts that request access "
                              "(needs [roles.storage] enabled)")
    fingerprints: int = _f(
        64, "fingerprint keys per host; with backups each key carries 1 + backups committed "
            "fingerprints (fp_count = fingerprints * (1 + backups))")
    min_accuracy: float = _f(
        0.95, "share of its keys the model must answer exactly (plain greedy decoding) "
              "before it is committed; below it the job is retried with twice the epochs")
    min_backup_accuracy: float = _f(
        0.5, "share of backup fingerprints that must answer when the tokens above them are "
             "banned (top-1 suppression); below it the job is retried likewise")
    max_attempts: int = _f(3, "fingerprinting attempts per job before it fails for good")
    device: str = _f("auto", "auto (CUDA when present), cpu or cuda")
    key_strategy: str = _f("random_words", "fingerprint keys: random_words or english")
    key_length: int = _f(8, "words (random_words) or tokens (english) per key")
    response_strategy: str = _f("perinucleus", "responses: perinucleus or random_words")
    response_length: int = _f(1, "tokens (perinucleus) or words (random_words) per response")
    backups: int = _f(
        1, "backup responses per key against top-1 suppression (perinucleus only; "
           "0 switches the defence off)")
    epochs: int = _f(30, "insertion epochs of the first attempt (doubled on each retry)")
    steps: int = _f(0, "exact optimizer steps of the first attempt, doubled on each retry "
                       "(0: use epochs)")
    lr: float = _f(1e-3, "insertion learning rate")
    batch_size: int = _f(32, "insertion batch size")
    prompt_augmentation: bool = _f(True, "also train keys wrapped in system prompts")
    freeze_embeddings: bool = _f(
        True, "train only the transformer blocks (false for models whose output head is tied "
              "to the input embeddings and too small to learn otherwise)")
    job_timeout_s: int = _f(3600, "wall-clock limit of one fingerprinting attempt (seconds)")
    torch_threads: int = _f(0, "CPU threads torch may use in the worker (0: torch's default)")


@dataclass(frozen=True)
class ProverRole:
    """Prover: probe deployments with assigned fingerprint keys and file claims."""

    enabled: bool = _f(False, "query deployments with assigned keys and file claims")
    endpoints: list[str] = _f(
        [], "OpenAI-compatible base URLs (e.g. http://10.0.0.5:8000/v1) to probe besides the "
            "endpoints hosts registered on chain")
    reference_endpoints: list[str] = _f(
        [], "OpenAI-compatible base URLs serving the base model (or a copy of known "
            "provenance): a key's output counts as evidence only where it differs from theirs")
    require_reference: bool = _f(
        True, "claim only on outputs that differ from a reference (a configured one or another "
              "host's registered endpoint); false: claim on any consistent outputs and let the "
              "OMLizer's reveal decide (the bond is burned on a mismatch)")
    audit_registered: bool = _f(
        True, "send a host's own registered endpoint its audit keys (the last "
              "claim_min_matches of its set, kept apart from the hunting keys) and claim on "
              "their consistent outputs even without a reference (the reveal matches its copy; "
              "its rebuttal shows whether it paid)")
    reclaim_after_ms: int = _f(
        86_400_000, "after a claim against a host, wait this long before claiming against it "
                    "again (limits how fast audits burn an honest host's keys)")
    api_key: str = _f("", "bearer token sent to endpoints that need one (secret)")
    api: str = _f("completions", "completions (the key is the prompt) or chat (the key is "
                                 "the one user message)")
    probe_interval_ms: int = _f(10000, "mean pause between two probes")
    jitter_pct: int = _f(50, "each pause is drawn uniformly within +-this percent of the mean")
    request_timeout_ms: int = _f(60000, "deadline of one OpenAI API request")
    max_concurrent: int = _f(2, "most probes in flight at once")
    max_tokens: int = _f(32, "max_tokens asked per probe (enough for a fingerprint response)")
    samples_per_key: int = _f(
        3, "probes of one key on one deployment before its output counts; the claimed output "
           "is the longest prefix a strict majority of them share (survives sampling)")
    min_output_chars: int = _f(1, "shortest majority prefix that counts as an output")
    claim_bond: int = _f(100, "bond posted with each claim (at least the chain's min_claim_bond)")
    claim_min_matches: int = _f(
        0, "distinct keys a claim names at least (0: the chain's claim_min_matches; never "
           "fewer than it)")
    max_claim_keys: int = _f(
        16, "most distinct keys one claim names (each with its backup indices; at most 64 "
            "indices in all)")
    key_refresh_ms: int = _f(60000, "how often to ask OMLizer peers for newly dealt key sets")


@dataclass(frozen=True)
class HostRole:
    """Host gateway: serve a fetched model behind permission strings (docs/gateway.md)."""

    enabled: bool = _f(False, "serve a model behind permission strings")
    model_id: str = _f("", "the served model's on-chain id (text, 1-64 bytes)")
    model_dir: str = _f(
        "", "the fetched package folder (oml-node model fetch) run in-process with "
            "transformers; absolute or relative to the data directory"
    )
    upstream_url: str = _f(
        "", "proxy mode instead of model_dir: base URL of an OpenAI-compatible server "
            "(vLLM, TGI, llama.cpp, oml-node host engine), e.g. http://127.0.0.1:8000/v1"
    )
    upstream_model: str = _f("", "model name sent upstream (default: the name clients use)")
    upstream_api_key: str = _f("", "bearer key for the upstream server, if it wants one")
    served_model_name: str = _f("", "name in /v1/models and requests (default: model_id)")
    device: str = _f("auto", "torch device for model_dir: auto (CUDA when present), cpu, cuda")
    laddr: str = _f("127.0.0.1:26670", "host:port of the gateway's HTTP server (port 0: any)")
    api_keys: list[str] = _f([], "end users' API keys (named config-1, config-2, ...)")
    api_keys_file: str = _f(
        "", "JSON file of named keys with their own limits (relative to the data directory)"
    )
    require_api_key: bool = _f(True, "refuse requests without a known API key (401)")
    rate_limit_rpm: int = _f(60, "default requests per minute per key (0: unlimited)")
    budget_tokens: int = _f(0, "default lifetime prompt+completion tokens per key (0: unlimited)")
    max_body_bytes: int = _f(1_000_000, "largest request body accepted")
    max_prompt_tokens: int = _f(2048, "longest prompt accepted, in tokens")
    max_new_tokens: int = _f(256, "cap on max_tokens (and the default for chat)")
    batch_window_ms: int = _f(
        0, "extra wait to gather queries into one permission request (queries that arrive "
           "while one is in flight are batched anyway)"
    )
    permit_sync_ms: int = _f(
        0, "0: an answer waits for the fsync of its permission (it runs while the model "
           "generates); N: answers do not wait, fsync every N ms (a power loss may lose "
           "the last N ms of permission strings)"
    )
    permission_timeout_ms: int = _f(10000, "deadline for one permission request to the owner")
    owner_peer: str = _f(
        "", "the owner's peer id or /ip4/.../p2p/ID multiaddr; empty: ask connected peers"
    )
    fund_budget: int = _f(0, "most this gateway puts into fee escrow in total (0: never)")
    fund_threshold: int = _f(
        0, "top up (fund_channel) when escrow minus unredeemed vouchers falls below this"
    )
    fund_amount: int = _f(0, "amount of one top-up")


@dataclass(frozen=True)
class OwnerRole:
    """Owner permission service: answer hosts' permission requests for owned models."""

    enabled: bool = _f(False, "answer hosts' permission requests for owned models")
    redeem_threshold: int = _f(
        1_000_000, "redeem a host's latest voucher on chain once its unredeemed amount "
        "reaches this (also redeemed at shutdown and when the host begins withdrawing)")
    max_batch: int = _f(256, "most query hashes accepted in one permission request (1-256)")
    rate_per_s: int = _f(200, "permission requests per second allowed from one host peer")
    rate_burst: int = _f(400, "requests a host peer may send at once above the steady rate")
    retry_interval_ms: int = _f(5000, "how often an uncommitted redeem is re-submitted")
    shutdown_redeem_ms: int = _f(
        2000, "at shutdown, how long to wait for the final redeems to commit (they are "
        "stored and re-submitted at the next start in any case)")


@dataclass(frozen=True)
class RolesSection:
    """Optional roles; a node with none of them still relays and follows the chain."""

    validator: bool = _f(True, "take part in consensus if this key is in the validator set")
    storage: StorageRole = _f(StorageRole(), "storage peer")
    omlizer: OmlizerRole = _f(OmlizerRole(), "OMLizer")
    prover: ProverRole = _f(ProverRole(), "prover")
    host: HostRole = _f(HostRole(), "host gateway")
    owner: OwnerRole = _f(OwnerRole(), "owner permission service")


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
            ("log", "format"): {"plain", "json"},
            ("p2p", "msg_id"): {"content", "peer_seqno"},
            ("roles.omlizer", "device"): {"auto", "cpu", "cuda"},
            ("roles.omlizer", "key_strategy"): {"random_words", "english"},
            ("roles.omlizer", "response_strategy"): {"perinucleus", "random_words"},
            ("roles.prover", "api"): {"completions", "chat"}}
#: Inclusive bounds for integers where 0 (or a huge value) would break the node.
_RANGES = {("roles.storage", "max_providers"): (1, 64),
           ("roles.storage", "range_chunks"): (1, 64),
           ("roles.host", "max_new_tokens"): (1, 1 << 20),
           ("roles.host", "max_prompt_tokens"): (1, 1 << 24),
           ("roles.host", "max_body_bytes"): (1024, 1 << 30),
           ("roles.host", "batch_window_ms"): (0, 1000),
           ("roles.host", "permit_sync_ms"): (0, 60_000),
           ("roles.host", "permission_timeout_ms"): (100, 600_000),
           ("roles.owner", "max_batch"): (1, 256),
           ("roles.owner", "rate_per_s"): (1, 1_000_000),
           ("roles.owner", "rate_burst"): (1, 1_000_000),
           ("roles.owner", "retry_interval_ms"): (100, 3_600_000),
           ("roles.owner", "shutdown_redeem_ms"): (0, 60_000),
           ("roles.omlizer", "fingerprints"): (1, 1 << 20),
           ("roles.omlizer", "min_accuracy"): (0.0, 1.0),
           ("roles.omlizer", "min_backup_accuracy"): (0.0, 1.0),
           ("roles.omlizer", "max_attempts"): (1, 20),
           ("roles.omlizer", "key_length"): (1, 256),
           ("roles.omlizer", "response_length"): (1, 64),
           ("roles.omlizer", "backups"): (0, 8),
           ("roles.omlizer", "epochs"): (1, 100_000),
           ("roles.omlizer", "batch_size"): (1, 65536),
           ("roles.omlizer", "job_timeout_s"): (1, 7 * 86400),
           ("roles.omlizer", "torch_threads"): (0, 1024),
           ("roles.prover", "probe_interval_ms"): (1, 86_400_000),
           ("roles.prover", "jitter_pct"): (0, 100),
           ("roles.prover", "request_timeout_ms"): (100, 3_600_000),
           ("roles.prover", "max_concurrent"): (1, 64),
           ("roles.prover", "max_tokens"): (1, 4096),
           ("roles.prover", "samples_per_key"): (1, 16),
           ("roles.prover", "claim_min_matches"): (0, 256),
           ("roles.prover", "max_claim_keys"): (1, 256),
           ("roles.prover", "key_refresh_ms"): (1000, 86_400_000)}


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
    elif hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        value = float(value)
        if not value >= 0:  # also rejects NaN
            raise ConfigError(f"{where}: must be a non-negative number")
    elif hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
    elif origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list) or not all(isinstance(v, item) for v in value):
            raise ConfigError(f"{where}: expected a list of {item.__name__}")
        value = list(value)
    bounds = _RANGES.get((section, key))
    if bounds is not None and not bounds[0] <= value <= bounds[1]:
        raise ConfigError(f"{where}: must be between {bounds[0]} and {bounds[1]}, got {value}")
    choices = _CHOICES.get((section, key))
    if choices is not None and value not in choices:
        raise ConfigError(f"{where}: must be one of {sorted(choices)}, got {value!r}")
    return value


def _from_table(cls: type, body: Any, where: str) -> Any:
    """One section (or nested table such as ``[roles.storage]``) of ``cls`` from TOML."""
    if not isinstance(body, dict):
        raise ConfigError(f"[{where}] must be a table")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in body.items():
        if key not in hints:
            raise ConfigError(f"unknown config key [{where}] {key}")
        if dataclasses.is_dataclass(hints[key]):
            if not isinstance(value, dict):
                raise ConfigError(f"[{where}] {key}: expected a table [{where}.{key}], "
                                  f"got {value!r}")
            kwargs[key] = _from_table(hints[key], value, f"{where}.{key}")
        else:
            kwargs[key] = _check_type(where, key, value, hints[key])
    return cls(**kwargs)


def config_from_dict(data: dict[str, Any]) -> Config:
    """Build a :class:`Config` from parsed TOML, rejecting unknown keys and bad types."""
    sections: dict[str, Any] = {}
    known = {f.name: f for f in dataclasses.fields(Config)}
    for name, body in data.items():
        if name not in known:
            raise ConfigError(f"unknown config section [{name}]")
        cls = type(known[name].default_factory())  # type: ignore[misc]
        sections[name] = _from_table(cls, body, name)
    config = Config(**sections)
    check_addresses(config)
    check_omlizer(config.roles.omlizer)
    if config.roles.omlizer.enabled and not config.roles.storage.enabled:
        raise ConfigError("[roles.omlizer] enabled = true needs [roles.storage] enabled = true "
                          "(the OMLizer fetches base models and delivers packages as blobs)")
    return config


def check_omlizer(cfg: OmlizerRole) -> None:
    """Cross-field checks of ``[roles.omlizer]``, so a bad recipe fails at load, not per job.

    Raises:
        ConfigError: naming the key.
    """
    if not cfg.lr > 0:
        raise ConfigError("[roles.omlizer] lr: must be > 0")
    if cfg.backups and cfg.response_strategy != "perinucleus":
        raise ConfigError("[roles.omlizer] backups: backup responses need "
                          "response_strategy = \"perinucleus\"; set backups = 0")
    if cfg.backups > 2:
        raise ConfigError("[roles.omlizer] backups: at most 2 (each key's responses are "
                          "distinct tokens among the top 3)")


def check_addresses(config: Config) -> None:
    """Check every listen and peer address, so a typo fails at load, naming the key.

    Without this a bad multiaddr surfaced as a 60-line libp2p traceback, and
    a bad ``rpc.laddr`` only once libp2p was already up, naming nothing.

    Raises:
        ConfigError: ``[section] key: what is wrong`` on one line.
    """
    problem = _tcp_multiaddr_problem(config.p2p.listen_addr, need_peer=False)
    if problem:
        raise ConfigError(f"[p2p] listen_addr: {problem}")
    for i, addr in enumerate(config.p2p.persistent_peers):
        problem = _tcp_multiaddr_problem(addr, need_peer=True)
        if problem:
            raise ConfigError(f"[p2p] persistent_peers[{i}]: {problem}")
    for section, laddr in (("rpc", config.rpc.laddr), ("metrics", config.metrics.laddr),
                           ("roles.host", config.roles.host.laddr)):
        problem = _host_port_problem(laddr)
        if problem:
            raise ConfigError(f"[{section}] laddr: {problem}")
    check_host_role(config.roles.host)


def check_host_role(host: HostRole) -> None:
    """An enabled gateway names its model and exactly one engine.

    Raises:
        ConfigError: ``[roles.host] key: what is wrong``.
    """
    if not host.enabled:
        return
    if not 1 <= len(host.model_id.encode("utf-8")) <= 64:
        raise ConfigError("[roles.host] model_id: the served model's id is required "
                          "(1-64 bytes of text)")
    if bool(host.model_dir) == bool(host.upstream_url):
        raise ConfigError("[roles.host] set exactly one of model_dir (in-process model) and "
                          "upstream_url (proxy mode)")
    if host.upstream_url and not host.upstream_url.startswith(("http://", "https://")):
        raise ConfigError(f"[roles.host] upstream_url: expected http(s)://HOST:PORT[/v1], "
                          f"got {host.upstream_url!r}")
    if host.fund_budget and not host.fund_amount:
        raise ConfigError("[roles.host] fund_amount: must be positive when fund_budget is set")


def _tcp_multiaddr_problem(addr: str, *, need_peer: bool) -> str | None:
    """What is wrong with ``addr`` as ``/ip4|ip6|dns*/HOST/tcp/PORT[/p2p/ID]``, or None."""
    shape = "/ip4/HOST/tcp/PORT/p2p/PEER_ID" if need_peer else "/ip4/HOST/tcp/PORT"
    try:
        ma = multiaddr.Multiaddr(addr)
        names = [p.name for p in ma.protocols()]
    except Exception as exc:  # the multiaddr package raises several unrelated types
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return f"not a multiaddr: {addr!r} ({reason})"
    if len(names) < 2 or names[0] not in ("ip4", "ip6", "dns", "dns4", "dns6") \
            or names[1] != "tcp":
        return f"expected {shape}, got {addr!r}"
    if need_peer and (names[-1] != "p2p" or names.count("p2p") != 1):
        return f"must end in /p2p/PEER_ID: {addr!r}"
    if not need_peer and len(names) != 2:
        return f"expected {shape} and nothing after it, got {addr!r}"
    return None


_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$")


def _host_port_problem(laddr: str) -> str | None:
    """What is wrong with ``laddr`` as ``HOST:PORT`` (``[v6]:PORT`` for IPv6), or None."""
    host, sep, port = laddr.rpartition(":")
    if not sep or not host:
        return f"expected HOST:PORT, got {laddr!r}"
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        return f"port must be a number from 0 to 65535, got {laddr!r}"
    if host.startswith("["):
        try:
            ok = host.endswith("]") and ipaddress.ip_address(host[1:-1]).version == 6
        except ValueError:
            ok = False
        if not ok:
            return f"expected [IPv6]:PORT, got {laddr!r}"
    elif not _HOSTNAME.match(host):
        return f"host must be an IPv4 address or a host name (IPv6 in brackets), got {laddr!r}"
    return None


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


def _render_table(out: list[str], name: str, value: Any) -> None:
    doc = (type(value).__doc__ or "").strip().splitlines()[0]
    out.append(f"# {doc}")
    out.append(f"[{name}]")
    nested = []
    for f in dataclasses.fields(value):
        item = getattr(value, f.name)
        if dataclasses.is_dataclass(item):
            nested.append((f"{name}.{f.name}", item))
            continue
        out.append(f"# {f.metadata['doc']}")
        out.append(tomli_w.dumps({f.name: item}).rstrip())
    out.append("")
    for sub_name, sub in nested:  # TOML: a table's own keys come before its sub-tables
        _render_table(out, sub_name, sub)


def render_config(config: Config) -> str:
    """TOML text for ``config`` with every field documented by a comment."""
    out = ["# oml-node configuration. Every key is optional; shown values are defaults",
           "# unless changed for this node. Unknown keys are rejected.", ""]
    for section in dataclasses.fields(Config):
        _render_table(out, section.name, getattr(config, section.name))
    return "\n".join(out)


def with_changes(config: Config, **sections: dict[str, Any]) -> Config:
    """A copy of ``config`` with fields of named sections replaced (for init/testnet).

    A nested table is changed with a dict: ``roles={"storage": {"enabled": True}}``.
    """
    return _replace(config, sections)


def _replace(value: Any, changes: dict[str, Any]) -> Any:
    updated = {}
    for name, change in changes.items():
        current = getattr(value, name)
        if dataclasses.is_dataclass(current) and isinstance(change, dict):
            updated[name] = _replace(current, change)
        else:
            updated[name] = change
    return dataclasses.replace(value, **updated)


__all__ = ["Config", "ConfigError", "check_addresses", "config_from_dict", "load_config",
           "render_config", "with_changes"]
