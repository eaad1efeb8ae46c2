"""Seeded simulations of the real core: agreement, validity, termination, exact replay.

More than 300 seeds across N=4 (F=1) and N=7 (F=2), every one with message
loss, duplication, reordering, a partition that heals, a crash and restart
from the WAL, and Byzantine validators (a random behaviour per faulty node).
A failing seed's message names the CLI command that replays it.
"""

from __future__ import annotations

import pytest

from consensus.sim import NetworkConditions, SimConfig, run_simulation
from consensus.sim.__main__ import main


def check_seeds(config: SimConfig, seeds: range) -> list:
    results = []
    for seed in seeds:
        r = run_simulation(config, seed)
        assert r.ok, (f"seed {seed} failed: {r.safety_violations} {r.liveness_failure}; replay: "
                      f"python -m consensus.sim --validators {config.validators} --byzantine "
                      f"{config.byzantine} --heights {config.heights} --seeds 1 "
                      f"--seed-start {seed}")
        assert all(r.heights[i] >= config.heights for i in r.heights
                   if i not in _byzantine(config, seed))
        results.append(r)
    return results


def _byzantine(config: SimConfig, seed: int) -> set[int]:
    from consensus.sim import Simulation
    return Simulation(config, seed).byzantine


N4 = SimConfig(validators=4, byzantine=1, heights=3, crashes=2)
N7 = SimConfig(validators=7, byzantine=2, heights=3)


@pytest.mark.parametrize("start", range(0, 200, 50))
def test_n4_f1_mixed_faults(start):
    results = check_seeds(N4, range(start, start + 50))  # two crashes per seed
    # the faults really happened: crashes with restarts and partitions
    assert sum(r.restarts for r in results) >= 25
    assert sum(r.partitioned for r in results) >= 40


@pytest.mark.parametrize("start", range(1000, 1120, 20))
def test_n7_f2_mixed_faults(start):
    results = check_seeds(N7, range(start, start + 20))
    assert sum(r.restarts for r in results) >= 10


@pytest.mark.parametrize("strategy", ["equivocate", "random", "split", "silent", "badblocks"])
def test_each_byzantine_strategy_alone(strategy):
    check_seeds(SimConfig(validators=4, byzantine=1, heights=3, strategy=strategy), range(20))


def test_third_or_more_byzantine_breaks_agreement():
    """The checker is not blind: colluding faulty nodes with >= 1/3 power fork the chain."""
    calm = NetworkConditions(gst_ms=0, partitions=False)
    for n, f in [(4, 2), (7, 3)]:
        config = SimConfig(validators=n, byzantine=f, heights=3, strategy="split", network=calm,
                           crashes=0)
        broken = [run_simulation(config, seed) for seed in range(5)]
        assert sum(1 for r in broken if r.safety_violations) >= 3
        assert any("agreement violated" in v for r in broken for v in r.safety_violations)
    # the same adversary below 1/3 breaks nothing
    check_seeds(SimConfig(validators=4, byzantine=1, heights=3, strategy="split", network=calm,
                          crashes=0), range(10))


def test_seed_replays_exactly():
    a = run_simulation(N7, 1234)
    b = run_simulation(N7, 1234)
    assert a.digest == b.digest and a.events == b.events and a.messages == b.messages
    assert run_simulation(N7, 1235).digest != a.digest


def test_cli_summary_and_exit_code(capsys):
    assert main(["--validators", "4", "--byzantine", "1", "--heights", "2", "--seeds", "3"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1] == "seeds=3 safety_violations=0 liveness_failures=0"
    assert main(["--validators", "7", "--byzantine", "2", "--heights", "2", "--seeds", "2"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == \
        "seeds=2 safety_violations=0 liveness_failures=0"
    code = main(["--validators", "4", "--byzantine", "2", "--heights", "2", "--seeds", "2",
                 "--strategy", "split", "--gst-ms", "0", "--crashes", "0", "--no-partitions"])
    out = capsys.readouterr().out.strip().splitlines()
    assert code == 1
    assert out[-1].startswith("seeds=2 safety_violations=") and "safety_violations=0" not in out[-1]
    assert any("replay: python -m consensus.sim" in line for line in out)


def test_validity_checker_flags_bad_blocks():
    """The validity check is not blind either: a committed block that breaks a rule is reported."""
    from dataclasses import replace

    from consensus.block import Block
    from consensus.merkle import txs_root
    from consensus.sim import Simulation

    calm = NetworkConditions(gst_ms=0, partitions=False)
    sim = Simulation(SimConfig(validators=4, byzantine=0, heights=2, network=calm, crashes=0), 7)
    assert sim.run().ok
    node = sim.nodes[0]
    block, commit = node.store[2]
    node.state = sim.genesis  # pretend height 1 is the next one again
    sim._check_valid(node, block, commit)
    assert any("validity violated at height 2" in v for v in sim.violations)
    sim.violations.clear()
    node.state = sim.nodes[1].state  # a node at height 2 ...
    first, first_commit = node.store[1]
    txs = (*first.txs, b"foreign")
    bad = Block(header=replace(first.header, txs_root=txs_root(txs)), txs=txs,
                last_commit=first.last_commit)
    node.state = sim.genesis
    sim._check_valid(node, bad, first_commit)
    assert any("foreign transaction" in v for v in sim.violations)
    assert any("commit is for a different block" in v for v in sim.violations)


def test_seed_replays_exactly_across_processes():
    """Replaying a printed seed in a new process (other hash seed) gives the same run."""
    import os
    import subprocess
    import sys

    digests = []
    for hash_seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        out = subprocess.run(
            [sys.executable, "-m", "consensus.sim", "--validators", "4", "--byzantine", "1",
             "--heights", "2", "--seeds", "2", "--seed-start", "31", "-v"],
            capture_output=True, text=True, env=env, timeout=120, check=True).stdout
        digests.append([line.split("digest=")[1] for line in out.splitlines()
                        if "digest=" in line])
    assert len(digests[0]) == 2 and digests[0] == digests[1]


def test_with_timeout_commit():
    """The daemon's default pauses after each commit; the faults must not change the outcome."""
    from dataclasses import replace

    from consensus.sim import sim_params
    config = replace(N4, params=replace(sim_params(), timeout_commit_ms=200))
    check_seeds(config, range(500, 520))
