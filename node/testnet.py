"""A local multi-node testnet: write N+M homes, run each node as its own OS process.

``init_testnet`` writes one home per node under ``OUT/node<i>`` sharing one
genesis (the first N accounts are validators; every node's account is
funded) and a ``testnet.json`` manifest listing every node. Ports come in
two kinds:

* fixed (``base_port`` > 0, for people: ``make testnet``): node ``i`` uses
  ``base_port + 10*i`` for libp2p, ``+1`` for JSON-RPC and ``+2`` for
  metrics, and its config lists every other node in ``persistent_peers``
  (peer ids computed from the node keys without importing libp2p);
* automatic (``base_port=0``, for tests and benchmarks): every server binds
  port 0, so no port is ever probed free and bound later (another process
  can take it in between). A node reports what it got in
  ``DATA_DIR/listen.json`` (:mod:`node.listenfile`); :class:`Testnet` reads
  it and wires the nodes together through RPC ``dial_peers`` (persistent),
  again after every restart, since a restarted node gets new ports.

``Testnet`` starts nodes with ``sys.executable -m node start --home ...`` so
a node is exactly what an operator runs, logs each to ``node<i>/node.log``,
waits on RPC ``health`` with a deadline, and stops them with SIGTERM (then
SIGKILL past a grace period). Tests and ``bench/testnet.py`` use it too;
``node.testnet_supervisor`` keeps one running for ``oml-node testnet start``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Self

from .config import Config, with_changes
from .genesis import Genesis, GenesisValidator
from .home import (
    DEFAULT_BALANCE,
    DEFAULT_POWER,
    Home,
    HomeError,
    default_chain_id,
    write_home,
)
from .keys import AccountKey, NodeKey
from .listenfile import ListenInfo, read_listen_file
from .rpc_client import RpcClient, RpcClientError

MANIFEST = "testnet.json"
PORTS_PER_NODE = 10
DEFAULT_BASE_PORT = 26600
#: ``base_port`` value for "every server binds port 0 and reports it in listen.json".
AUTO_PORTS = 0
#: RPC timeout of ``dial_peers``: above the node's 5 s dial deadline.
DIAL_RPC_TIMEOUT_S = 15.0
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
    def auto_ports(self) -> bool:
        """Whether this node binds port 0 (its real ports are in its listen.json)."""
        return self.p2p_port == AUTO_PORTS

    @property
    def rpc_url(self) -> str:
        return f"http://127.0.0.1:{self.rpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}"

    def bound(self, info: ListenInfo) -> NodeSpec:
        """This spec with the ports a running node reported in its listen file."""
        p2p = next((a for a in info.p2p if "/ip4/127.0.0.1/tcp/" in a), info.p2p[0])
        return dataclasses.replace(
            self, p2p_port=int(p2p.split("/tcp/")[1].split("/")[0]),
            rpc_port=_url_port(info.rpc[0]),
            metrics_port=_url_port(info.metrics[0]) if info.metrics else self.metrics_port)

    @property
    def p2p_addr(self) -> str:
        return f"/ip4/127.0.0.1/tcp/{self.p2p_port}/p2p/{self.peer_id}"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "home": str(self.home), "validator": self.validator,
                "p2p_port": self.p2p_port, "rpc_port": self.rpc_port,
                "metrics_port": self.metrics_port, "peer_id": self.peer_id,
                "address": self.address,
                "rpc_url": None if self.auto_ports else self.rpc_url}  # see listen.json

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NodeSpec:
        return cls(name=data["name"], home=Path(data["home"]), validator=bool(data["validator"]),
                   p2p_port=int(data["p2p_port"]), rpc_port=int(data["rpc_port"]),
                   metrics_port=int(data["metrics_port"]), peer_id=data["peer_id"],
                   address=data["address"])


def _url_port(url: str) -> int:
    return int(url.rstrip("/").rsplit(":", 1)[1])


def init_testnet(out: Path, *, validators: int, non_validators: int = 0,
                 base_port: int = DEFAULT_BASE_PORT, chain_id: str | None = None,
                 balance: int = DEFAULT_BALANCE, force: bool = False,
                 consensus: dict[str, Any] | None = None,
                 genesis_time_ms: int | None = None,
                 fund: tuple[str, ...] = (),
                 params: dict[str, int] | None = None) -> list[NodeSpec]:
    """Write the homes of a local testnet under ``out`` and return their specs.

    ``base_port`` 0 (:data:`AUTO_PORTS`) makes every server bind port 0 and
    leaves ``persistent_peers`` empty: only :class:`Testnet` (which wires
    the nodes once they report their ports) can run such a testnet.
    ``fund`` lists extra account addresses (hex) that genesis credits with
    ``balance`` too (benchmark clients use them). ``consensus``: [consensus]
    keys for every node; None means :data:`TESTNET_CONSENSUS`, a dict replaces
    it (keys it leaves out keep the node defaults). ``params``: genesis
    ``app_state.params`` (ledger parameters; None: every default).

    Raises:
        TestnetError: bad counts or ports, or ``out`` already holds a testnet
            and ``force`` is not set.
    """
    if validators < 1:
        raise TestnetError("a testnet needs at least one validator")
    if non_validators < 0:
        raise TestnetError("--non-validators must not be negative")
    total = validators + non_validators
    if base_port != AUTO_PORTS and (base_port < 1024
                                    or base_port + PORTS_PER_NODE * total > 65535):
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
        port = base_port + PORTS_PER_NODE * i if base_port != AUTO_PORTS else 0
        specs.append(NodeSpec(
            name=f"node{i}", home=(out / f"node{i}").resolve(), validator=i < validators,
            p2p_port=port, rpc_port=port and port + 1, metrics_port=port and port + 2,
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
                   "params": dict(params or {})},
    )
    for i, spec in enumerate(specs):
        peers = [] if spec.auto_ports else [o.p2p_addr for o in specs if o is not spec]
        config = with_changes(
            Config(),
            node={"moniker": spec.name},
            p2p={"listen_addr": f"/ip4/127.0.0.1/tcp/{spec.p2p_port}",
                 "persistent_peers": peers},
            rpc={"laddr": f"127.0.0.1:{spec.rpc_port}"},
            metrics={"laddr": f"127.0.0.1:{spec.metrics_port}"},
            roles={"validator": spec.validator, "storage": {"enabled": True}},
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
    """Start, watch, wire and stop the node processes of a testnet directory.

    Use as a context manager so every process is stopped on the way out,
    whatever happened inside. :meth:`spec` gives a node's live addresses:
    for an auto-port testnet they are known once the node is ready (see
    :meth:`wait_healthy`) and change when it restarts.
    """

    __test__ = False

    def __init__(self, out: Path, *, env: dict[str, str] | None = None) -> None:
        self.out = out
        self.specs = load_testnet(out)
        self.procs: dict[str, NodeProcess] = {}
        self.env = env
        self._live: dict[str, NodeSpec] = {}
        self._data_dirs: dict[str, Path] = {}

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop_all()

    def spec(self, name: str) -> NodeSpec:
        """The node's spec, with the ports it reported if it binds port 0 and is ready."""
        if name in self._live:
            return self._live[name]
        for s in self.specs:
            if s.name == name:
                return s
        raise TestnetError(f"no node named {name}")

    def data_dir(self, name: str) -> Path:
        """The node's data directory (where its stores and ``listen.json`` are)."""
        if name not in self._data_dirs:
            home = Home(self.spec(name).home)
            try:
                self._data_dirs[name] = home.data_dir(home.config())
            except (HomeError, ValueError, OSError) as exc:
                raise TestnetError(f"{name}: cannot read its config: {exc}") from None
        return self._data_dirs[name]

    def start(self, name: str) -> NodeProcess:
        """Start one node (not waiting for it); its output goes to ``node.log``."""
        old = self.procs.get(name)
        if old is not None and old.alive:
            raise TestnetError(f"{name} is already running")
        self._live.pop(name, None)  # a node that binds port 0 gets new ports
        spec = self.spec(name)
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
        """Start the named nodes (default: all), wait until each answers ``health``, wire them."""
        names = names or [s.name for s in self.specs]
        for name in names:
            self.start(name)
        self.wait_healthy(names, timeout=timeout)

    def poll_ready(self, name: str) -> bool:
        """One look: is the node running, its listen file written (port-0 nodes) and its
        RPC answering ``health``? Records its live addresses when it is."""
        np = self.procs.get(name)
        if np is None or not np.alive:
            return False
        if np.spec.auto_ports and name not in self._live:
            info = read_listen_file(self.data_dir(name), pid=np.proc.pid)
            if info is None:
                return False
            self._live[name] = np.spec.bound(info)
        with RpcClient(self.spec(name).rpc_url, timeout=2.0) as client:
            return client.healthy()

    def wait_healthy(self, names: list[str], *, timeout: float) -> None:
        """Wait until every named node is ready (:meth:`poll_ready`), then :meth:`wire` them.

        Raises:
            TestnetError: a node exited, the deadline passed (with its log
                tail), or wiring failed.
        """
        deadline = time.monotonic() + timeout
        pending = list(names)
        while pending:
            for name in list(pending):
                np = self.procs[name]
                if not np.alive:
                    raise TestnetError(f"{name} exited with code {np.proc.returncode} "
                                       f"during startup:\n{np.log_tail()}")
                if self.poll_ready(name):
                    pending.remove(name)
            if pending and time.monotonic() > deadline:
                tails = "\n".join(f"--- {n}\n{self.procs[n].log_tail()}" for n in pending)
                raise TestnetError(f"nodes not healthy after {timeout:.0f}s: {pending}\n"
                                   + tails)
            if pending:
                time.sleep(0.2)
        self.wire(names)

    def wire(self, names: list[str]) -> None:
        """Connect freshly started port-0 nodes with every other ready node, both ways.

        Each named node gets the others' addresses, and each other node the
        named node's new address, as persistent peers (RPC ``dial_peers``),
        so the redial loops keep them connected. Fixed-port nodes need
        nothing: their configs list their peers.

        Raises:
            TestnetError: a node refused or did not answer ``dial_peers``.
        """
        fresh = [n for n in names if n in self._live]
        ready = [n for n, np in self.procs.items() if np.alive and n in self._live]
        for name in fresh:
            others = [n for n in ready if n != name]
            if others:
                self.dial_peers(name, [self.spec(n).p2p_addr for n in others])
            for other in others:
                if other not in names:
                    self.dial_peers(other, [self.spec(name).p2p_addr])

    def dial_peers(self, name: str, addrs: list[str]) -> dict[str, bool]:
        """Ask node ``name`` to keep ``addrs`` connected; peer id -> connected now."""
        try:
            with RpcClient(self.spec(name).rpc_url, timeout=DIAL_RPC_TIMEOUT_S) as client:
                res = client.call("dial_peers", {"peers": addrs, "persistent": True})
        except RpcClientError as exc:
            raise TestnetError(f"{name}: dial_peers failed: {exc}") from None
        return {p["id"]: bool(p["connected"]) for p in res["peers"]}

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
    "AUTO_PORTS",
    "MANIFEST",
    "NodeProcess",
    "NodeSpec",
    "Testnet",
    "TestnetError",
    "init_testnet",
    "load_testnet",
]
