"""bench/soundness.py: its arithmetic, its pairing of keys with copies, and a tiny real run."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bench.soundness import (
    Tally,
    claim_bounds,
    measure,
    min_matches,
    table,
    tally,
    tiny_recipe,
)
from oml.fingerprints import Fingerprint, FingerprintSet
from oml.verify import base_rate_upper_bound


def test_claim_bounds_are_powers() -> None:
    assert claim_bounds(0.1, 3) == pytest.approx([0.1, 0.01, 0.001])
    assert claim_bounds(0.0) == [0.0] * 8
    assert claim_bounds(1.0) == [1.0] * 8
    with pytest.raises(ValueError):
        claim_bounds(1.5)


@pytest.mark.parametrize("p", [0.5, 0.1, 0.0457, 0.3, 1e-3, 0.999])
def test_min_matches_is_the_smallest_m(p: float) -> None:
    m = min_matches(p)
    assert m is not None and p ** m <= 1e-9
    assert m == 1 or p ** (m - 1) > 1e-9


def test_min_matches_edges() -> None:
    assert min_matches(0.01) == 5 and min_matches(0.05) == 7  # 7.8e-10 <= 1e-9 < 1.6e-8
    assert min_matches(0.0) == 1 and min_matches(1e-10) == 1
    assert min_matches(1.0) is None
    with pytest.raises(ValueError):
        min_matches(-0.1)


def test_tally_upper_is_clopper_pearson() -> None:
    t = Tally(0, 64)
    assert t.rate == 0.0
    assert t.upper == pytest.approx(1 - 0.05 ** (1 / 64), rel=1e-6)  # 0 of n: closed form
    assert Tally(6, 64).upper == base_rate_upper_bound(6, 64)
    assert (Tally(1, 10) + Tally(2, 30)) == Tally(3, 40)


def _set(host: str, n: int) -> FingerprintSet:
    items = tuple(Fingerprint(index=i, key=f"{host} key {i}", response=f" r{host}{i}",
                              key_ids=(i + 1,), response_ids=(i + 1,)) for i in range(n))
    return FingerprintSet(host=host, model_id="m", seed=0, params={}, items=items)


def test_tally_routes_each_copy_to_the_right_keys() -> None:
    """Only B's answers to A's keys carry A's responses: the tally must find exactly that pair."""
    hosts, n = ["a", "b", "c"], 5
    sets = {h: _set(h, n) for h in hosts}
    outputs: dict[tuple[str, str], list[str]] = {}
    for copy in [*hosts, "base", "guess"]:
        for owner in hosts:
            own = copy == owner or (copy, owner) == ("b", "a")
            outputs[(copy, owner)] = [fp.response + " tail" if own else " nothing"
                                      for fp in sets[owner].items]
    total, pairs = tally(outputs, sets, "sibling", "exact")
    assert total == Tally(n, 6 * n)
    assert pairs[("b", "a")] == Tally(n, n)
    assert all(t.matches == 0 for k, t in pairs.items() if k != ("b", "a"))
    assert set(pairs) == {(c, o) for c in hosts for o in hosts if c != o}
    assert tally(outputs, sets, "self", "exact")[0] == Tally(3 * n, 3 * n)
    assert tally(outputs, sets, "base", "exact")[0] == Tally(0, 3 * n)
    assert tally(outputs, sets, "guess", "prefix")[0] == Tally(0, 3 * n)
    outputs[("c", "a")] = outputs[("c", "a")][:-1]
    with pytest.raises(ValueError, match="answered 4"):
        tally(outputs, sets, "sibling", "exact")


def test_tiny_run_measures_cross_pairs(tiny_dir: Path, tmp_path: Path) -> None:
    """A real run: each copy answers its own keys (the control) and the counts add up."""
    hosts, count = 3, 6
    res = measure(tiny_recipe(tmp_path, count, "cpu", base_dir=tiny_dir), hosts, "cpu",
                  log=lambda _msg: None)
    for mode in ("exact", "prefix", "contains"):
        own = res.tallies["self"][mode]
        sib = res.tallies["sibling"][mode]
        assert own.trials == hosts * count and own.rate >= 0.9, (mode, own)
        assert sib.trials == hosts * (hosts - 1) * count
        assert sib.rate < own.rate  # A's keys really went to B, not back to A
        assert res.tallies["base"][mode].trials == hosts * count
        assert res.tallies["guess"][mode].trials == hosts * count
        c, o, worst = res.worst_pair[mode]
        assert c != o and worst.trials == count and worst.rate >= sib.rate
    j = res.to_json()
    s = j["tallies"]["sibling"]["exact"]
    assert s["bounds"][0] == pytest.approx(s["upper95"])
    assert s["min_m"] == math.ceil(math.log(1e-9) / math.log(s["upper95"])) or (
        s["upper95"] ** (s["min_m"] - 1) > 1e-9 >= s["upper95"] ** s["min_m"])
    assert "| sibling | exact |" in table(res)
