"""The prover's claim rule (pure): consistent outputs, divergence from references, thresholds."""

from __future__ import annotations

import pytest

from node.roles.prover.decide import (
    KeyEvidence,
    diverges,
    evidence_for,
    key_groups,
    majority_prefix,
    plan_claim,
    settled_output,
)


def test_greedy_deployment_settles_on_its_whole_output() -> None:
    assert majority_prefix([" r1 and more"] * 3) == " r1 and more"
    assert settled_output([" r1 x"] * 3, samples=3, min_chars=1) == " r1 x"


def test_too_few_samples_do_not_settle() -> None:
    assert settled_output([" r1"] * 2, samples=3, min_chars=1) is None


def test_sampling_deployment_keeps_the_prefix_a_majority_shares() -> None:
    # the trained response comes first on most draws; the tails differ
    outs = [" r1 cat sat", " r1 dog ran", " zebra"]
    assert majority_prefix(outs) == " r1 "
    assert settled_output(outs, samples=3, min_chars=1) == " r1 "


def test_no_majority_means_no_output() -> None:
    outs = [" a", " b", " c", " d"]
    assert majority_prefix(outs) == " "  # only the space is shared by a majority
    assert settled_output(outs, samples=4, min_chars=2) is None
    assert majority_prefix(["x", "y"]) == ""


def test_majority_prefix_uses_the_ledgers_normalisation() -> None:
    composed, decomposed = "\u00e9t\u00e9", "e\u0301te\u0301"
    assert majority_prefix([composed, decomposed, composed]) == composed
    assert majority_prefix(["a\r\nb", "a\nb", "a\rb"]) == "a\nb"


@pytest.mark.parametrize(("out", "ref", "expected"), [
    (" r1", " other", True),
    (" r1 more", " r1", False),    # a prefix is agreement
    (" r1", " r1 more", False),
    ("", " r1", False),            # nothing said: no evidence
    (" r1", "", False),
])
def test_diverges(out: str, ref: str, expected: bool) -> None:
    assert diverges(out, ref) is expected


def ev(i: int, out: str | None, *refs: str) -> KeyEvidence:
    return KeyEvidence(i, f"key {i}", out, tuple(refs))


def test_claim_needs_min_matches_keys_that_differ_from_every_reference() -> None:
    evidence = [ev(0, " a", " x"), ev(2, " b", " y", " z"), ev(4, " c", " c tail"),
                ev(6, " d", " w"), ev(8, None, " v")]
    # key 4 agrees with the reference, key 8 is unsettled: two countable keys... plus key 6
    assert plan_claim(evidence, min_matches=4, max_keys=8, require_reference=True) is None
    plan = plan_claim(evidence, min_matches=3, max_keys=8, require_reference=True)
    assert plan is not None
    assert plan.items == ((0, "key 0", " a"), (2, "key 2", " b"), (6, "key 6", " d"))


def test_one_agreeing_reference_is_enough_to_drop_a_key() -> None:
    evidence = [ev(i, f" r{i}", " base", f" r{i}") for i in range(5)]  # a sibling agrees
    assert plan_claim(evidence, min_matches=1, max_keys=8, require_reference=True) is None


def test_without_reference_the_rule_decides_by_the_switch() -> None:
    evidence = [ev(i, f" r{i}") for i in range(4)]
    assert plan_claim(evidence, min_matches=4, max_keys=8, require_reference=True) is None
    plan = plan_claim(evidence, min_matches=4, max_keys=8, require_reference=False)
    assert plan is not None and [i for i, _, _ in plan.items] == [0, 1, 2, 3]


def test_burned_indices_are_never_named_and_max_keys_caps_the_claim() -> None:
    evidence = [ev(i, f" r{i}", " base") for i in range(10)]
    plan = plan_claim(evidence, min_matches=3, max_keys=4, require_reference=True,
                      burned=frozenset({0, 1}))
    assert plan is not None and [i for i, _, _ in plan.items] == [2, 3, 4, 5]
    assert plan_claim(evidence, min_matches=3, max_keys=4, require_reference=True,
                      burned=frozenset(range(8))) is None


def test_key_groups_put_the_primary_first() -> None:
    keys = [(3, "b"), (0, "a"), (1, "a"), (2, "b"), (4, "c")]
    assert key_groups(keys) == [(0, (1,), "a"), (2, (3,), "b"), (4, (), "c")]


def test_a_key_is_named_with_its_backups_and_counted_once() -> None:
    evidence = [KeyEvidence(2 * k, f"key {k}", f" r{k}", (" base",), (2 * k + 1,))
                for k in range(4)]
    plan = plan_claim(evidence, min_matches=4, max_keys=8, require_reference=True)
    assert plan is not None and plan.keys == 4
    assert plan.items[:2] == ((0, "key 0", " r0"), (1, "key 0", " r0"))
    assert len(plan.items) == 8
    # four keys are needed, not four indices
    assert plan_claim(evidence[:2], min_matches=4, max_keys=8, require_reference=True) is None
    # a burned backup makes its key public: the whole key is left out
    assert plan_claim(evidence, min_matches=4, max_keys=8, require_reference=True,
                      burned=frozenset({3})) is None
    # the ledger's cap on items: a key that would not fit is left out
    capped = plan_claim(evidence, min_matches=3, max_keys=8, require_reference=True,
                        max_items=7)
    assert capped is not None and capped.keys == 3 and len(capped.items) == 6


def test_evidence_for_ignores_references_that_sample_wildly() -> None:
    keys = [(0, (), "k0"), (2, (), "k1")]
    mine = {"k0": [" r0"] * 3, "k1": [" r1"] * 2}
    ref_stable = {"k0": [" base"] * 3, "k1": [" base"] * 3}
    ref_random = {"k0": ["a", "b", "c"]}
    out = evidence_for(keys, mine, [ref_stable, ref_random], samples=3, min_chars=1)
    assert out == [KeyEvidence(0, "k0", " r0", (" base",)),
                   KeyEvidence(2, "k1", None, (" base",))]


def test_while_probes_are_out_the_claim_waits_for_max_keys() -> None:
    evidence = [ev(i, f" r{i}", " base") for i in range(5)]
    assert plan_claim(evidence, min_matches=4, max_keys=6, require_reference=True,
                      complete=False) is None
    assert plan_claim(evidence, min_matches=4, max_keys=5, require_reference=True,
                      complete=False) is not None
    plan = plan_claim(evidence, min_matches=4, max_keys=6, require_reference=True)
    assert plan is not None and len(plan.items) == 5
