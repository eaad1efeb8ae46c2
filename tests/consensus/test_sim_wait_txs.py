"""Seeded simulations with create_empty_blocks off: the wait for transactions
must not cost agreement or termination under the simulator's faults.

The simulated app proposes no transactions here, so every height after the
first waits; the simulator answers ``WaitForTxs`` after a random delay (the
transactions' gossip) and, in the second case, mostly the empty-block
interval ends the wait first.
"""

from __future__ import annotations

from dataclasses import replace

from consensus.sim import SimConfig, sim_params
from tests.consensus.test_sim import check_seeds

WAITING = replace(sim_params(), create_empty_blocks=False)
N4 = SimConfig(validators=4, byzantine=1, heights=3, crashes=2, txs_per_block=0, params=WAITING)


def test_waiting_for_txs_keeps_agreement_and_termination() -> None:
    results = check_seeds(N4, range(0, 40))
    assert sum(r.restarts for r in results) > 0  # crashes during waits were exercised


def test_interval_ends_the_wait_when_txs_come_late() -> None:
    config = replace(N4, params=replace(WAITING, create_empty_blocks_interval_ms=700),
                     txs_delay_ms=20_000)
    check_seeds(config, range(100, 130))
