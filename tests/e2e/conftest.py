"""Fixtures for multi-process end-to-end tests: a local testnet of real node processes.

A testnet is started ONCE per test module (starting Python + libp2p costs
1-2 s per process on a loaded 2-core machine) and always stopped in teardown,
whatever the tests did to it. Every wait is a poll with a deadline.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.testnet import PORTS_PER_NODE, Testnet, init_testnet

#: Consensus timeouts for tests: short enough that a round with a dead
#: proposer costs ~1 s, long enough for 5 Python processes on 2 cores.
FAST_CONSENSUS = {
    "timeout_propose_ms": 1500,
    "timeout_propose_delta_ms": 500,
    "timeout_prevote_ms": 500,
    "timeout_prevote_delta_ms": 500,
    "timeout_precommit_ms": 500,
    "timeout_precommit_delta_ms": 500,
    "timeout_commit_ms": 300,
}


def _ports_free(ports: list[int]) -> bool:
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def free_base_port(nodes: int) -> int:
    """A base port such that every port a testnet of ``nodes`` uses is free now."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20000, 60000 - PORTS_PER_NODE * nodes, PORTS_PER_NODE)
        ports = [base + PORTS_PER_NODE * i + k for i in range(nodes) for k in range(3)]
        if _ports_free(ports):
            return base
    raise RuntimeError("no free port range found")


def make_testnet(root: Path, validators: int, non_validators: int = 0) -> Path:
    out = root / "testnet"
    init_testnet(out, validators=validators, non_validators=non_validators,
                 base_port=free_base_port(validators + non_validators),
                 chain_id="oml-e2e", consensus=FAST_CONSENSUS)
    return out


@pytest.fixture(scope="module")
def testnet4(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Testnet]:
    """Four validators running, plus one non-validator home that is NOT started."""
    out = make_testnet(tmp_path_factory.mktemp("e2e"), validators=4, non_validators=1)
    net = Testnet(out)
    try:
        net.start_all([f"node{i}" for i in range(4)], timeout=90)
        yield net
    finally:
        net.stop_all()
