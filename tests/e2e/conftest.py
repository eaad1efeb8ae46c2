"""Fixtures for multi-process end-to-end tests: a local testnet of real node processes.

A testnet is started ONCE per test module (starting Python + libp2p costs
1-2 s per process on a loaded 2-core machine) and always stopped in teardown,
whatever the tests did to it. Every wait is a poll with a deadline. Every
node binds port 0 and reports its ports in its listen.json (never a port
probed free earlier: another process could take it in between).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from node.testnet import AUTO_PORTS, Testnet, init_testnet

from ._settings import FAST_CONSENSUS


def make_testnet(root: Path, validators: int, non_validators: int = 0,
                 params: dict[str, int] | None = None) -> Path:
    """A testnet's homes under ``root``; ``params`` override ledger params in genesis."""
    out = root / "testnet"
    init_testnet(out, validators=validators, non_validators=non_validators,
                 base_port=AUTO_PORTS,
                 chain_id="oml-e2e", consensus=FAST_CONSENSUS)
    if params:
        set_genesis_params(out, params)
    return out


def set_genesis_params(out: Path, params: dict[str, int]) -> None:
    """Change ledger params in every home's genesis.json (before any node starts)."""
    import json

    for genesis in out.glob("*/config/genesis.json"):
        data = json.loads(genesis.read_text())
        data["app_state"].setdefault("params", {}).update(params)
        genesis.write_text(json.dumps(data))


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
