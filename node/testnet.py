"""A local multi-node testnet: write N+M homes, run each node as its own OS process.

``init_testnet`` writes one home per node under ``OUT/node<i>`` sharing one
genesis (the first N accounts are validators; every node's account is
funded), a full mesh of ``persistent_peers`` (peer ids computed from the node
keys without importing libp2p) and distinct ports: node ``i`` uses
``base_port + 10*i`` for libp2p, ``+1`` for JSON-RPC and ``+2`` for metrics.
A ``testnet.json`` manifest next to the homes lists every node.

``Testnet`` starts nodes with ``sys.executable -m node start --home ...`` so
a node is exactly what an operator runs, logs each to ``node<i>/node.log``,
waits on RPC ``health`` with a deadline, and stops them with SIGTERM (then
SIGKILL past a grace period). Tests and ``bench/testnet.py`` use it too.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Self

from .config import Config, with_changes
from .genesis import Genesis, GenesisValidator
from .home import DEFAULT_BALANCE, DEFAULT_POWER, HomeError, default_chain_id, write_home
from .keys import AccountKey, NodeKey
from .rpc_client import RpcClient

MANIFEST = "testnet.json"
PORTS_PER_NODE = 10
DEFAULT_BASE_PORT = 26600
#: [consensus] of a testnet's nodes unless the caller passes its own: an idle
#: testnet makes one empty block per 10 s (a block at once when a transaction
#: comes). Idle, that keeps the ledger's windows, counted in blocks, minutes
#: long (challenge_window 10 blocks ~ 1.7 min, reveal_window and
#: unbonding_delay 20 ~ 3.4 min) and each node under 1 % of a core. See
#: docs/operator.md ("Blocks only when there is work").
TESTNET_CONSENSUS: dict[str, Any] = {"create_empty_blocks": True,
                                     "create_empty_blocks_interval_ms": 10_000}


class TestnetError(RuntimeError):
    """The testnet cannot be written, or a node failed to start or stop."""

    __test__ = False  # not a pytest class


@dataclass(frozen=True)
class NodeSpec:
    """One node of a testnet as recorded in ``testnet.json``."""

    name: str
    home: Path
    validator: bool
    p2p_port: int
    rpc_port: int
    metrics_port: int
    peer_id: str
    address: str

    @property
    def rpc_url(self) -> str:
        return f"http://127.0.0.1:{self.rpc_port}"

    @property
    def p2p_addr(self) -> str:
        return f"/ip4/127.0.0.1/tcp/{self.p2p_port}/p2p/{self.peer_id}"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "home": str(self.home), "validator": self.validator,
                "p2p_port": self.p2p_port, "rpc_port": self.rpc_port,
                "metrics_port": self.metrics_port, "peer_id": self.peer_id,
                "address": self.address, "rpc_url": self.rpc_url}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NodeSpec:
        return cls(name=data["name"], home=Path(data["home"]), validator=bool(data["validator"]),
                   p2p_port=int(data["p2p_port"]), rpc_port=int(data["rpc_port"]),
                   metrics_port=int(data["metrics_port"]), peer_id=data["peer_id"],
                   address=data["address"])


def _ports_free(ports: list[int]) -> bool:
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def free_base_port(nodes: int, *, low: int = 20000, high: int = 60000) -> int:
    """A base port such that every port a testnet of ``nodes`` uses is free right now.

    For tests and benchmarks that run next to other testnets; a port can
    still be taken between this check and the node binding it.

    Raises:
        TestnetError: no free range found.
    """
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(low, high - PORTS_PER_NODE * nodes, PORTS_PER_NODE)
        if _ports_free([base + PORTS_PER_NODE * i + k for i in range(nodes) for k in range(3)]):
            return base
    raise TestnetError("no free port range found")


def init_testnet(out: Path, *, validators: int, non_validators: int = 0,
                 base_port: int = DEFAULT_BASE_PORT, chain_id: str | None = None,
                 balance: int = DEFAULT_BALANCE, force: bool = False,
                 consensus: dict[str, Any] | None = None,
                 genesis_time_ms: int | None = None,
                 fund: tuple[str, ...] = ()) -> list[NodeSpec]:
    """Write the homes of a local testnet under ``out`` and return their specs.

    ``fund`` lists extra account addresses (hex) that genesis credits with
    ``balance`` too (benchmark clients use them). ``consensus``: [consensus]
    keys for every node; None means :data:`TESTNET_CONSENSUS`, a dict replaces
    it (keys it leaves out keep the node defaults).

    Raises:
        TestnetError: bad counts or ports, or ``out`` already holds a testnet
            and ``force`` is not set.
    """
    if validators < 1:
        raise TestnetError("a testnet needs at least one validator")
    if non_validators < 0:
        raise TestnetError("--non-validators must not be negative")
    total = validators + non_validators
    if not 1024 <= base_port or base_port + PORTS_PER_NODE * total > 65535:
        raise TestnetError(f"ports {base_port}..{base_port + PORTS_PER_NODE * total} "
                           "do not fit in 1024..65535")
    if (out / MANIFEST).exists() and not force:
        raise TestnetError(f"{out} already holds a testnet; pass --force to overwrite it")
    out.mkdir(parents=True, exist_ok=True)
    chain_id = chain_id or default_chain_id()
    accounts = [AccountKey.generate() for _ in range(total)]
    node_keys = [NodeKey.generate() for _ in range(total)]
    specs = []
    for i in range(total):
        port = base_port + PORTS_PER_NODE * i
        specs.append(NodeSpec(
            name=f"node{i}", home=(out / f"node{i}").resolve(), validator=i < validators,
            p2p_port=port, rpc_port=port + 1, metrics_port=port + 2,
            peer_id=node_keys[i].peer_id, address=accounts[i].address.hex()))
    genesis = Genesis(
        chain_id=chain_id,
        genesis_time_ms=genesis_time_ms if genesis_time_ms is not None
        else int(time.time() * 1000),
        validators=tuple(GenesisValidator(name=s.name, pub_key=accounts[i].public_key,
                                          power=DEFAULT_POWER)
                         for i, s in enumerate(specs) if s.validator),
        app_state={"accounts": [{"address": a, "balance": balance}
                                for a in [s.address for s in specs] + list(fund)],
                   "params": {}},
    )
    for i, spec in enumerate(specs):
        peers = [other.p2p_addr for other in specs if other is not spec]
        config = with_changes(
            Config(),
            node={"moniker": spec.name},
            p2p={"listen_addr": f"/ip4/127.0.0.1/tcp/{spec.p2p_port}",
                 "persistent_peers": peers},
            rpc={"laddr": f"127.0.0.1:{spec.rpc_port}"},
            metrics={"laddr": f"127.0.0.1:{spec.metrics_port}"},
            roles={"validator": spec.validator},
            consensus=TESTNET_CONSENSUS if consensus is None else consensus,
        )
        try:
            home = write_home(spec.home, config, accounts[i], node_keys[i], force=force)
        except HomeError as exc:
            raise TestnetError(str(exc)) from None
        genesis.save(home.genesis_file(config))
    (out / MANIFEST).write_text(json.dumps(
        {"chain_id": chain_id, "nodes": [s.to_json() for s in specs]}, indent=2) + "\n")
    return specs


def load_testnet(out: Path) -> list[NodeSpec]:
    """Read ``testnet.json`` under ``out``."""
    try:
        data = json.loads((out / MANIFEST).read_text("utf-8"))
        return [NodeSpec.from_json(n) for n in data["nodes"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TestnetError(f"{out} is not a testnet directory ({exc})") from None


class NodeProcess:
    """One running ``oml-node start`` process with its log file."""

    def __init__(self, spec: NodeSpec, proc: subprocess.Popen[bytes], log: IO[bytes]) -> None:
        self.spec = spec
        self.proc = proc
        self._log = log

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive:
            self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def close_log(self) -> None:
        if not self._log.closed:
            self._log.close()

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = (self.spec.home / "node.log").read_text("utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class Testnet:
    """Start, watch and stop the node processes of a testnet directory.

    Use as a context manager so every process is stopped on the way out,
    whatever happened inside.
    """

    __test__ = False

    def __init__(self, out: Path, *, env: dict[str, str] | None = None) -> None:
        self.out = out
        self.specs = load_testnet(out)
        self.procs: dict[str, NodeProcess] = {}
        self.env = env

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop_all()

    def spec(self, name: str) -> NodeSpec:
        for s in self.specs:
            if s.name == name:
                return s
        raise TestnetError(f"no node named {name}")

    def start(self, name: str) -> NodeProcess:
        """Start one node (not waiting for it); its output goes to ``node.log``."""
        spec = self.spec(name)
        old = self.procs.get(name)
        if old is not None and old.alive:
            raise TestnetError(f"{name} is already running")
        log = open(spec.home / "node.log", "ab")  # noqa: SIM115 - closed in stop()
        env = dict(os.environ if self.env is None else self.env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        proc = subprocess.Popen(
            [sys.executable, "-m", "node", "start", "--home", str(spec.home)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            cwd=str(Path(__file__).resolve().parent.parent), start_new_session=True)
        np = NodeProcess(spec, proc, log)
        self.procs[name] = np
        return np

    def start_all(self, names: list[str] | None = None, *, timeout: float = 60.0) -> None:
        """Start the named nodes (default: all) and wait until each answers ``health``."""
        names = names or [s.name for s in self.specs]
        for name in names:
            self.start(name)
        self.wait_healthy(names, timeout=timeout)

    def wait_healthy(self, names: list[str], *, timeout: float) -> None:
        """Wait until every named node answers RPC ``health``.

        Raises:
            TestnetError: a node exited, or the deadline passed; with its log tail.
        """
        deadline = time.monotonic() + timeout
        pending = list(names)
        clients = {n: RpcClient(self.spec(n).rpc_url, timeout=2.0) for n in names}
        try:
            while pending:
                for name in list(pending):
                    np = self.procs[name]
                    if not np.alive:
                        raise TestnetError(f"{name} exited with code {np.proc.returncode} "
                                           f"during startup:\n{np.log_tail()}")
                    if clients[name].healthy():
                        pending.remove(name)
                if pending and time.monotonic() > deadline:
                    tails = "\n".join(f"--- {n}\n{self.procs[n].log_tail()}" for n in pending)
                    raise TestnetError(f"nodes not healthy after {timeout:.0f}s: {pending}\n"
                                       + tails)
                if pending:
                    time.sleep(0.2)
        finally:
            for c in clients.values():
                c.close()

    def kill(self, name: str) -> None:
        """SIGKILL a node (a crash, for tests) and reap it."""
        np = self.procs[name]
        np.signal(signal.SIGKILL)
        np.wait(10)
        np.close_log()

    def stop(self, name: str, *, grace: float = 10.0) -> int | None:
        """SIGTERM a node, SIGKILL it if it has not exited after ``grace`` seconds."""
        np = self.procs.get(name)
        if np is None:
            return None
        np.signal(signal.SIGTERM)
        code = np.wait(grace)
        if code is None:
            np.signal(signal.SIGKILL)
            code = np.wait(10)
        np.close_log()
        return code

    def stop_all(self, *, grace: float = 10.0) -> dict[str, int | None]:
        """Stop every running node (SIGTERM all first, so they shut down in parallel)."""
        for np in self.procs.values():
            np.signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        codes: dict[str, int | None] = {}
        for name, np in self.procs.items():
            code = np.wait(max(0.1, deadline - time.monotonic()))
            if code is None:
                np.signal(signal.SIGKILL)
                code = np.wait(10)
            np.close_log()
            codes[name] = code
        return codes

    def client(self, name: str) -> RpcClient:
        return RpcClient(self.spec(name).rpc_url)


__all__ = [
    "MANIFEST",
    "NodeProcess",
    "NodeSpec",
    "Testnet",
    "TestnetError",
    "free_base_port",
    "init_testnet",
    "load_testnet",
]
