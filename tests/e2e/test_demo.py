"""The demo's story end to end: ``oml-node demo --json`` on five real node processes.

The demo plays publish, access, fingerprint, fetch, serve, pay, probe,
claim, reveal, rebut, slash and payouts by itself (``node/demo/``). This
test runs exactly that command and then checks its outcome with its OWN
arithmetic from the settings and the chain parameters, not with the
demo's expected column, so a mistake in the demo's books cannot hide a
wrong payout: the cheater is slashed, the prover rewarded, the honest
host's claim dismissed with its collateral intact, owner, contributors
and parent paid exactly for the queries the honest host paid for, and the
supply invariant holds on every node (RPC ``supply``).

The command is bounded by its own ``--timeout``; if it still runs past
this test's deadline it gets SIGTERM (and stops every process it started)
before it is killed.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from node.demo import DemoSettings
from node.ledger.params import BP, Params

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
PHASES = ["build", "testnet", "publish", "access", "fingerprint", "fetch", "serve", "pay",
          "probe", "claim", "reveal", "rebut", "slash", "payouts"]


def run_demo(tmp: Path, timeout: float) -> tuple[int, dict[str, Any] | None, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "node", "demo", "--json", "--keep", str(tmp / "run"),
         "--timeout", str(int(timeout - 60))],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        stdin=subprocess.DEVNULL)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)  # the demo stops its nodes on SIGTERM
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
    report = json.loads(out) if out.strip().startswith("{") else None
    return proc.returncode, report, err


@pytest.mark.timeout(900)
def test_the_demo_story_pays_exactly_and_slashes_only_the_cheater(tmp_path: Path) -> None:
    code, report, err = run_demo(tmp_path, timeout=780)
    assert report is not None, f"exit {code}, no report; stderr tail:\n{err[-4000:]}"
    failed = [c for c in report["checks"] if not c["ok"]]
    assert code == 0 and report["ok"] and not failed, (failed, err[-3000:])

    s, p = DemoSettings(), Params.from_json(DemoSettings().chain_params)
    change = {a["label"]: a["change"] for a in report["accounts"]}
    q, funded = report["paid_queries"], report["funded"]
    assert q >= s.user_queries + p.claim_min_matches  # the user's queries and the audit's

    # one query's redemption, the ledger's order: proposer fee, splits, royalty, owner
    fee = s.price * p.protocol_fee_bp // BP
    net = s.price - fee
    split_a, split_b = net * s.split_a_bp // BP, net * s.split_b_bp // BP
    royalty = (net - split_a - split_b) * s.royalty_bp // BP
    owner = net - split_a - split_b - royalty
    slashed = s.cheater_collateral * p.slash_fraction_bp // BP
    reward = slashed * p.prover_reward_bp // BP
    owner_share = slashed * p.owner_slash_share_bp // BP

    # the cheater is slashed and the prover rewarded
    claims = {c["host"]: c for c in report["claims"]}
    assert len(report["claims"]) == 2
    assert claims["cheater"]["status"] == "slashed"
    assert change["cheater"] == -s.cheater_collateral
    assert report["hosts"]["cheater"]["collateral"] == s.cheater_collateral - slashed
    assert change["prover"] == reward - s.prover_bond  # both claim bonds came back
    # the honest host's audit was dismissed: collateral intact, it paid only for queries
    assert claims["host"]["status"] == "dismissed"
    assert claims["host"]["committed_height"] < claims["host"]["decided_height"]
    honest = report["hosts"]["host"]
    assert honest["collateral"] == s.host_collateral and honest["slashed_total"] == 0
    assert change["host"] == -(s.host_collateral + funded)
    assert honest["redeemed_amount"] == q * s.price
    assert honest["escrow"] == funded - q * s.price
    # owner (also the only proposer), contributors and the parent's owner, exactly
    assert change["owner"] == q * (owner + fee) + owner_share
    assert change["contributor_a"] == q * split_a
    assert change["contributor_b"] == q * split_b
    assert change["parent_owner"] == q * royalty
    assert change["omlizer"] == -s.omlizer_bond

    # the supply invariant on every node, with the slash's burned share in it
    assert sorted(report["supply"]) == [f"node{i}" for i in range(5)]
    for node, sup in report["supply"].items():
        parts = (sup["balances"] + sup["collateral"] + sup["escrow"] + sup["role_bonds"]
                 + sup["claim_bonds"] + sup["burned"])
        assert parts == sup["genesis_supply"] and sup["balanced"], (node, sup)
        assert sup["burned"] == slashed - reward - owner_share, (node, sup)
        assert sup["claim_bonds"] == 0, (node, sup)

    # every phase ran, in order, each narrated with the heights it spanned
    steps = report["steps"]
    assert [st["name"] for st in steps] == PHASES
    for a, b in zip(steps, steps[1:], strict=False):
        assert a["height_end"] <= b["height_start"] <= b["height_end"], (a, b)
    assert {n["step"] for n in report["narration"]} >= set(PHASES)
