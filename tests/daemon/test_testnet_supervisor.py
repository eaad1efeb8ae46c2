"""node.testnet_supervisor: which exits are restarted, the backoff, and nobody else stops.

A fake testnet (implementing the supervisor's ``Nodes`` protocol) and a fake
clock make every transition explicit; tests/daemon/test_testnet.py runs the
real thing (``oml-node testnet start`` with a node SIGKILLed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from node.testnet_supervisor import Nodes, State, Supervisor


@dataclass
class FakeProc:
    returncode: int | None = None


@dataclass
class FakeNode:
    proc: FakeProc = field(default_factory=FakeProc)
    log_closed: bool = False

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None

    def close_log(self) -> None:
        self.log_closed = True

    def log_tail(self, lines: int = 30) -> str:
        return "last log line"


@dataclass(frozen=True)
class FakeSpec:
    home: Path
    rpc_url: str


class FakeNet:
    """Nodes that exit when told; a started node is ready when ``ready`` says so."""

    def __init__(self, names: list[str]) -> None:
        self.procs: dict[str, FakeNode] = {n: FakeNode() for n in names}
        self.started: list[str] = []
        self.wired: list[list[str]] = []
        self.killed: list[str] = []
        self.ready: set[str] = set()

    def spec(self, name: str) -> FakeSpec:
        return FakeSpec(home=Path("/net") / name, rpc_url=f"http://{name}")

    def start(self, name: str) -> FakeNode:
        self.started.append(name)
        self.procs[name] = FakeNode()
        return self.procs[name]

    def poll_ready(self, name: str) -> bool:
        return self.procs[name].alive and name in self.ready

    def wire(self, names: list[str]) -> None:
        self.wired.append(list(names))

    def kill(self, name: str) -> None:
        self.killed.append(name)
        self.procs[name].proc.returncode = -9

    def exit(self, name: str, code: int) -> None:
        self.procs[name].proc.returncode = code


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(names: list[str]) -> tuple[FakeNet, Clock, Supervisor, list[str]]:
    net, clock, said = FakeNet(names), Clock(), []
    checked: Nodes = net  # the fake implements the protocol the real Testnet does
    sup = Supervisor(checked, say=said.append, clock=clock, backoff_s=1, max_backoff_s=4,
                     stable_s=60, start_timeout_s=30)
    return net, clock, sup, said


def test_a_crash_is_restarted_after_a_doubling_backoff_and_rewired() -> None:
    net, clock, sup, said = make(["node0", "node1"])
    net.exit("node1", -9)
    sup.tick()
    assert sup.state("node1") is State.WAITING and sup.state("node0") is State.RUNNING
    assert net.procs["node1"].log_closed and "restarting in 1s" in said[-1]
    clock.now += 0.9
    sup.tick()
    assert net.started == []  # not before the backoff
    clock.now += 0.1
    sup.tick()
    assert net.started == ["node1"] and sup.state("node1") is State.STARTING
    sup.tick()
    assert net.wired == []  # not ready yet
    net.ready.add("node1")
    sup.tick()
    assert sup.state("node1") is State.RUNNING and net.wired == [["node1"]]
    assert said[-1] == "node1 restarted: http://node1"
    # crashing again soon: 2 s, then 4 s, then capped at 4 s
    for expected in ("2s", "4s", "4s"):
        net.exit("node1", 1)
        sup.tick()
        assert f"restarting in {expected}" in said[-1]
        clock.now += 4
        sup.tick()
        sup.tick()
        assert sup.state("node1") is State.RUNNING
    assert sup.restarts == 4 and sup.state("node0") is State.RUNNING
    # after a stable minute the backoff starts from 1 s again
    clock.now += 60
    sup.tick()
    net.exit("node1", -9)
    sup.tick()
    assert "restarting in 1s" in said[-1]


def test_clean_stop_and_halt_are_left_alone_and_others_keep_running() -> None:
    net, clock, sup, said = make(["node0", "node1", "node2"])
    net.exit("node1", 0)
    net.exit("node2", 2)
    for _ in range(3):
        sup.tick()
        clock.now += 100
    assert sup.state("node1") is State.STOPPED and sup.state("node2") is State.HALTED
    assert sup.state("node0") is State.RUNNING and net.procs["node0"].alive
    assert net.started == [] and net.killed == []
    assert any("node1 stopped (exit 0)" in line and "/net/node1" in line for line in said)
    assert any("node2 halted (exit 2)" in line and "last log line" in line for line in said)


def test_a_restart_that_never_gets_healthy_is_killed_and_retried() -> None:
    net, clock, sup, said = make(["node0"])
    net.exit("node0", 1)
    sup.tick()
    clock.now += 1
    sup.tick()
    assert sup.state("node0") is State.STARTING
    clock.now += 31
    sup.tick()
    assert net.killed == ["node0"] and sup.state("node0") is State.WAITING
    assert "not healthy" in said[-2] and "restarting in 2s" in said[-1]
    # a restart that dies during start-up counts as a crash too
    clock.now += 2
    sup.tick()
    net.exit("node0", 1)
    sup.tick()
    assert sup.state("node0") is State.WAITING and "restarting in 4s" in said[-1]
