"""Node lifecycle as real processes: SIGTERM always exits 0; `testnet start` keeps nodes up.

Every node binds port 0 and is found through its ``data/listen.json``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from node.listenfile import ListenInfo, read_listen_file
from node.rpc_client import RpcClient, wait_until
from node.testnet import AUTO_PORTS, Testnet, init_testnet

from ._settings import FAST_CONSENSUS

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
ROUNDS = 10


def test_sigterm_exits_0_every_time_even_with_a_peer_talking(tmp_path: Path) -> None:
    """Ten SIGTERMs, alternating a validator and the full node that follows it.

    The other node stays up and connected, so gossip and block-sync traffic
    is in flight while each one shuts down (the race behind the old exit 1).
    """
    out = tmp_path / "net"
    init_testnet(out, validators=1, non_validators=1, base_port=AUTO_PORTS,
                 chain_id="oml-sigterm", consensus=FAST_CONSENSUS)
    with Testnet(out) as net:
        net.start_all(timeout=90)
        for r in range(ROUNDS):
            name = ("node0", "node1")[r % 2]
            with net.client("node0") as c:  # the validator is up at this point every round
                start = c.height()
                wait_until(lambda c=c, h=start + r % 3: c.height() >= h, timeout=30,
                           what="blocks before the SIGTERM")
            code = net.stop(name, grace=20)
            log = (net.spec(name).home / "node.log").read_text("utf-8", errors="replace")
            assert code == 0, f"round {r}: {name} exited {code}\n{log[-3000:]}"
            assert log.count("received SIGTERM") == r // 2 + 1, (r, log[-3000:])
            assert "Traceback" not in log, log[-3000:]
            net.start(name)
            net.wait_healthy([name], timeout=90)
        # still one chain: the full node follows the validator's blocks
        with net.client("node0") as v:
            target = v.height() + 1
        with net.client("node1") as f:
            wait_until(lambda: f.height() >= target, timeout=30, what="the full node to follow")


def _listen(home: Path) -> ListenInfo | None:
    return read_listen_file(home / "data")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _height(info: ListenInfo) -> int:
    with RpcClient(info.rpc[0], timeout=5) as c:
        return c.height()


def test_testnet_start_restarts_a_killed_node_and_never_stops_the_others(tmp_path: Path) -> None:
    """Four validators, so the chain goes on while one is down and the restarted one
    catches up by block sync whatever gossip does."""
    out = tmp_path / "net"
    specs = init_testnet(out, validators=4, base_port=AUTO_PORTS, chain_id="oml-supervise",
                         consensus=FAST_CONSENSUS)
    homes = {s.name: s.home for s in specs}
    log_path = tmp_path / "launcher.log"
    with open(log_path, "wb") as log:
        launcher = subprocess.Popen([sys.executable, "-m", "node", "testnet", "start", str(out)],
                                    stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                                    start_new_session=True)
    try:
        def said() -> str:
            return log_path.read_text("utf-8", errors="replace")

        wait_until(lambda: "testnet running" in said() or launcher.poll() is not None,
                   timeout=120, what="the testnet to start")
        assert launcher.poll() is None, said()
        first = {n: _listen(h) for n, h in homes.items()}
        assert all(first.values()), first
        wait_until(lambda: _height(first["node0"]) >= 2, timeout=60, what="height 2")

        # kill -9 one node: it is restarted (new process, new ports) and catches up
        os.kill(first["node1"].pid, signal.SIGKILL)

        def restarted() -> ListenInfo | None:
            info = _listen(homes["node1"])
            return info if info is not None and info.pid != first["node1"].pid else None

        again = wait_until(restarted, timeout=60, what="node1 to be restarted")
        with RpcClient(again.rpc[0], timeout=5) as c:
            wait_until(c.healthy, timeout=60, what="the restarted node1 to answer")
        top = max(_height(first[n]) for n in ("node0", "node2", "node3"))
        wait_until(lambda: _height(again) >= top + 2, timeout=90,
                   what="the restarted node1 to catch up and follow the chain")
        assert "node1 exited with code -9; restarting" in said(), said()

        # a clean stop (exit 0) is left stopped, and the others keep running
        still = _listen(homes["node2"])
        assert still is not None and still.pid == first["node2"].pid, said()
        os.kill(still.pid, signal.SIGTERM)
        wait_until(lambda: "node2 stopped (exit 0)" in said(), timeout=60,
                   what="the launcher to see node2 stop")
        wait_until(lambda: _listen(homes["node2"]) is None, timeout=10,
                   what="node2 to remove its listen.json")
        for n in ("node0", "node3"):  # never stopped: the same process all along
            now = _listen(homes[n])
            assert now is not None and now.pid == first[n].pid and _alive(now.pid), (n, said())
        now1 = _listen(homes["node1"])
        assert now1 is not None and now1.pid == again.pid and _alive(again.pid), said()
        assert launcher.poll() is None, said()

        launcher.send_signal(signal.SIGTERM)
        assert launcher.wait(timeout=60) == 0, said()
        assert "stopped: node0=0, node1=0, node2=0, node3=0" in said(), said()
        assert not any(_alive(p) for p in (first["node0"].pid, first["node3"].pid, again.pid))
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
            launcher.wait(10)
        for h in homes.values():  # nodes run in their own sessions: never leave one behind
            info = _listen(h)
            if info is not None and _alive(info.pid):
                os.kill(info.pid, signal.SIGKILL)
