"""Verification modes, false-positive rate and the binomial decision."""

from __future__ import annotations

import math

import pytest

from oml.fingerprints import FingerprintSet
from oml.verify import (
    DEFAULT_BASE_RATE,
    ReferenceRate,
    ReferenceRequired,
    assumed_base_rate,
    base_rate_upper_bound,
    binomial_sf,
    decide,
    false_positive_rate,
    matches,
    reference_base_rate,
    reference_rate,
    verify_fingerprints,
)


def test_match_modes() -> None:
    assert matches(" blue sky today", " blue sky")
    assert not matches("blue sky", " blue sky")
    assert matches("blue  sky", " blue sky", "prefix")
    assert not matches("the blue sky", " blue sky", "prefix")
    assert matches("well, blue sky", " blue sky", "contains")
    assert not matches("bluesky", " blue sky", "contains")
    assert matches("e\u0301x", "\u00e9")  # NFC normalisation before comparing
    with pytest.raises(ValueError):
        matches("a", "a", "fuzzy")


def test_report_per_fingerprint(fingerprinted, fpset: FingerprintSet) -> None:
    model, tok = fingerprinted
    rep = verify_fingerprints(model, tok, fpset, batch_size=4)
    assert [r.index for r in rep.results] == list(range(len(fpset)))
    for r, fp in zip(rep.results, fpset):
        assert r.matched and r.output.startswith(fp.response)
    j = rep.to_json()
    assert j["matches"] == len(fpset) and j["accuracy"] == 1.0
    for mode in ("prefix", "contains"):
        assert verify_fingerprints(model, tok, fpset, mode=mode).accuracy == 1.0
    with pytest.raises(ValueError):
        verify_fingerprints(model, tok, fpset, mode="nope")


def test_false_positive_rate_on_base(tiny, fpset: FingerprintSet) -> None:
    model, tok = tiny
    assert false_positive_rate(model, tok, fpset) == 0.0


def test_other_hosts_keys_do_not_match(fingerprinted, tiny) -> None:
    from oml.generate import GenerateConfig, generate_fingerprints

    model, tok = fingerprinted
    other = generate_fingerprints(tiny[0], tok, GenerateConfig(count=6, seed=1, key_length=4,
                                                               response_length=2),
                                  host="host-b", model_id="tiny-llama")
    assert verify_fingerprints(model, tok, other).matches == 0


def test_binomial_known_values() -> None:
    assert binomial_sf(0, 10, 0.3) == 1.0
    assert binomial_sf(11, 10, 0.3) == 0.0
    assert binomial_sf(10, 10, 0.5) == pytest.approx(0.5 ** 10)
    assert binomial_sf(1, 10, 0.1) == pytest.approx(1 - 0.9 ** 10)
    assert binomial_sf(3, 5, 0.5) == pytest.approx(0.5)
    assert binomial_sf(1, 10, 0.0) == 0.0


def test_decide() -> None:
    d = decide(10, 10, 0.01)
    assert d.carries and d.p_value == pytest.approx(1e-20)
    d = decide(1, 10, 0.01)
    assert not d.carries and d.p_value == pytest.approx(1 - 0.99 ** 10)
    d = decide(0, 100, 0.0)
    assert not d.carries and d.p_value == 1.0
    assert decide(5, 100, 0.01, alpha=0.01).carries
    assert not decide(2, 100, 0.01, alpha=0.01).carries
    for args in ((1, 0, 0.1), (5, 4, 0.1), (1, 4, 1.5), (1, 4, -0.1)):
        with pytest.raises(ValueError):
            decide(*args)
    with pytest.raises(ValueError):
        decide(1, 4, 0.1, alpha=0)


def test_base_rate_upper_bound() -> None:
    # rule of three: 0 of n gives about 3/n at 95%
    assert base_rate_upper_bound(0, 300) == pytest.approx(1 - 0.05 ** (1 / 300), rel=1e-6)
    assert math.isclose(base_rate_upper_bound(0, 300), 3 / 300, rel_tol=0.02)
    ub = base_rate_upper_bound(5, 100)
    assert 0.05 < ub < 0.2
    assert binomial_sf(6, 100, ub) == pytest.approx(0.95, abs=1e-6)  # P[X <= 5] = 0.05
    assert base_rate_upper_bound(4, 4) == 1.0
    with pytest.raises(ValueError):
        base_rate_upper_bound(5, 4)


def test_batched_greedy_equals_one_by_one(tiny, fpset: FingerprintSet) -> None:
    # left padding must not change what greedy decoding produces
    model, tok = tiny
    one = verify_fingerprints(model, tok, fpset, batch_size=1, extra_tokens=6)
    many = verify_fingerprints(model, tok, fpset, batch_size=64, extra_tokens=6)
    assert [r.output for r in one.results] == [r.output for r in many.results]
    assert len({len(tok(fp.key)["input_ids"]) for fp in fpset}) > 1  # lengths really differ


# --- references: the innocent rate is measured, never assumed for loose modes (issue 11) -------

def test_assumed_rate_only_for_exact() -> None:
    assert assumed_base_rate("exact") == DEFAULT_BASE_RATE == 0.01
    for mode in ("prefix", "contains"):
        with pytest.raises(ReferenceRequired, match="reference"):
            assumed_base_rate(mode)
    with pytest.raises(ValueError, match="mode"):
        assumed_base_rate("nope")


def test_reference_base_rate_is_the_largest_upper_bound() -> None:
    base, sib = ReferenceRate("base", 0, 64), ReferenceRate("sibling", 6, 64)
    assert sib.rate == 6 / 64 and sib.upper == base_rate_upper_bound(6, 64)
    assert base.upper == pytest.approx(1 - 0.05 ** (1 / 64), rel=1e-6)
    # a clean base must not dilute the sibling: the max, not the pooled 6/128
    assert reference_base_rate([base, sib]) == sib.upper > base_rate_upper_bound(6, 128)
    assert ReferenceRate("none", 0, 0).upper == 1.0
    with pytest.raises(ReferenceRequired):
        reference_base_rate([])


def test_issue_example_assumed_rate_frames_a_sibling() -> None:
    """Issue 11: a sibling matched 9/64 in contains mode; 1% assumed said "carries" (p=1.7e-8)."""
    assumed = decide(9, 64, 0.01)
    assert assumed.carries and assumed.p_value == pytest.approx(1.7e-8, rel=0.1)
    # another sibling measured as the reference, matching as often, clears it
    assert not decide(9, 64, reference_base_rate([ReferenceRate("sib", 9, 64)])).carries


def test_reference_rate_counts_what_the_reference_answers(tiny, fpset: FingerprintSet) -> None:
    model, tok = tiny
    r = reference_rate(model, tok, fpset, name="base", mode="contains")
    rep = verify_fingerprints(model, tok, fpset, mode="contains")
    assert (r.name, r.matches, r.total) == ("base", rep.matches, 6)


def test_siblings_as_reference_do_not_frame(siblings: dict[str, dict]) -> None:
    """B's copy answering A's keys is not judged as carrying them; A's own copy is."""
    from oml.modelio import load_model

    a, b, c = siblings.values()
    (m_a, tok), (m_b, _), (m_c, _) = (load_model(x["dir"], device="cpu") for x in (a, b, c))
    for mode in ("exact", "contains"):
        rate = reference_base_rate([reference_rate(m_c, tok, a["fps"], name="C", mode=mode)])
        suspect = verify_fingerprints(m_b, tok, a["fps"], mode=mode)
        assert suspect.accuracy < 0.5
        assert not decide(suspect.matches, suspect.total, rate).carries, (mode, suspect.matches)
        own = verify_fingerprints(m_a, tok, a["fps"], mode=mode)
        assert own.matches == own.total and decide(own.matches, own.total, rate).carries
