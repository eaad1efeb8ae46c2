"""Verification modes, false-positive rate and the binomial decision."""

from __future__ import annotations

import math

import pytest

from oml.fingerprints import FingerprintSet
from oml.verify import (
    base_rate_upper_bound,
    binomial_sf,
    decide,
    false_positive_rate,
    matches,
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
