"""Fingerprint generation (determinism, per-host uniqueness, strategies) and the file format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from oml.fingerprints import Fingerprint, FingerprintFileError, FingerprintSet
from oml.generate import GenerateConfig, generate_fingerprints, perinucleus_pick
from oml.wordlist import load_wordlist


def _gen(tiny, **kw) -> FingerprintSet:
    model, tok = tiny
    host = kw.pop("host", "host-a")
    return generate_fingerprints(model, tok, GenerateConfig(**kw), host=host, model_id="m")


def test_deterministic_per_seed_and_unique_per_host(tiny) -> None:
    a = _gen(tiny, count=8, seed=3)
    assert _gen(tiny, count=8, seed=3) == a
    b = _gen(tiny, count=8, seed=3, host="host-b")
    c = _gen(tiny, count=8, seed=4)
    assert not set(a.keys) & set(b.keys)
    assert not set(a.keys) & set(c.keys)
    assert len(set(a.keys)) == 8


def test_random_word_keys_and_responses(tiny) -> None:
    words = set(load_wordlist().words)
    fs = _gen(tiny, count=5, key_length=6, response_strategy="random_words", response_length=3)
    model, tok = tiny
    for fp in fs:
        assert len(fp.key.split()) == 6 and set(fp.key.split()) <= words
        assert fp.response.startswith(" ") and len(fp.response.split()) == 3
        assert list(fp.key_ids) == tok(fp.key, add_special_tokens=False)["input_ids"]
        assert tok.decode(fp.response_ids) == fp.response
    assert fs.params["word_list"]["digest"] == load_wordlist().digest


def test_perinucleus_responses_lie_outside_the_nucleus(tiny) -> None:
    model, tok = tiny
    fs = _gen(tiny, count=6, response_length=3, perinucleus_t=0.5, perinucleus_k=2)
    special = set(tok.all_special_ids)
    for fp in fs:
        assert 1 <= len(fp.response_ids) <= 3 and not special & set(fp.response_ids)
        assert tok.decode(fp.response_ids) == fp.response
        ids = tok(fp.key, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            p = torch.softmax(model(input_ids=ids).logits[0, -1], -1)
        order = torch.argsort(p, descending=True).tolist()
        rank = order.index(fp.response_ids[0])
        mass_before = float(p[order[:rank]].sum())
        assert mass_before >= 0.5 - 1e-6, "first response token is inside the nucleus"


def test_perinucleus_pick_exact() -> None:
    import random

    probs = torch.tensor([0.5, 0.3, 0.1, 0.05, 0.03, 0.02])
    allowed = torch.ones(6, dtype=torch.bool)
    picks = {perinucleus_pick(probs, 0.8, 2, allowed, random.Random(s)) for s in range(50)}
    assert picks == {2, 3}  # nucleus {0, 1} holds 0.8; the next two tokens
    allowed[3] = False
    picks = {perinucleus_pick(probs, 0.8, 2, allowed, random.Random(s)) for s in range(50)}
    assert picks == {2, 4}


def test_english_keys(tiny) -> None:
    fs = _gen(tiny, count=4, key_strategy="english", key_length=6)
    assert len(set(fs.keys)) == 4 and all(k.strip() == k and k for k in fs.keys)
    assert _gen(tiny, count=4, key_strategy="english", key_length=6) == fs


def test_config_rejects_bad_values() -> None:
    for kw in (dict(count=0), dict(count=1, key_strategy="x"), dict(count=1, perinucleus_t=1.0),
               dict(count=1, perinucleus_k=0), dict(count=1, response_strategy="y")):
        with pytest.raises(ValueError):
            GenerateConfig(**kw)


def test_file_round_trip(fpset: FingerprintSet, tmp_path: Path) -> None:
    p = tmp_path / "fps.jsonl"
    fpset.save(p)
    assert FingerprintSet.load(p) == fpset
    lines = p.read_text().splitlines()
    assert len(lines) == len(fpset) + 1
    assert json.loads(lines[0])["format"] == "oml-fingerprints"


@pytest.mark.parametrize("mutate", [
    lambda lines: lines[:-1],                                   # count mismatch
    lambda lines: ["{broken"] + lines[1:],                      # not JSON
    lambda lines: [lines[0].replace('"version": 1', '"version": 9')] + lines[1:],
    lambda lines: [lines[0]] + [lines[2], lines[1]] + lines[3:],  # out of order
    lambda lines: [lines[0], lines[1].replace('"key_ids": [', '"key_ids": [-1, ')] + lines[2:],
    lambda lines: [lines[0], lines[1].replace('"response": ', '"extra": 1, "response": ')]
    + lines[2:],
    lambda lines: [],
])
def test_malformed_file_rejected(fpset: FingerprintSet, tmp_path: Path, mutate) -> None:
    p = tmp_path / "fps.jsonl"
    fpset.save(p)
    p.write_text("\n".join(mutate(p.read_text().splitlines())))
    with pytest.raises(FingerprintFileError):
        FingerprintSet.load(p)


def test_missing_file_and_bad_records(tmp_path: Path) -> None:
    with pytest.raises(FingerprintFileError, match="not found"):
        FingerprintSet.load(tmp_path / "none.jsonl")
    with pytest.raises(FingerprintFileError):
        Fingerprint(index=0, key="", response="x", key_ids=(), response_ids=(1,))
    with pytest.raises(FingerprintFileError):
        Fingerprint(index=0, key="k", response="x", key_ids=(), response_ids=())
    fp = Fingerprint(index=1, key="k", response="x", key_ids=(), response_ids=(1,))
    with pytest.raises(FingerprintFileError, match="indices"):
        FingerprintSet(host="h", model_id="m", seed=0, items=(fp,))


def test_backups_config_checks() -> None:
    with pytest.raises(ValueError):
        GenerateConfig(count=1, backups=3, perinucleus_k=3)
    with pytest.raises(ValueError):
        GenerateConfig(count=1, backups=1, response_strategy="random_words")


def test_perinucleus_skips_prefixes_of_the_greedy_token() -> None:
    import random

    probs = torch.tensor([0.5, 0.3, 0.1, 0.05, 0.03, 0.02])
    allowed = torch.ones(6, dtype=torch.bool)
    texts = [" their", "x", " the", " th", " dog", " cat"]
    # " the" and " th" are prefixes of the greedy " their": both skipped
    picks = {perinucleus_pick(probs, 0.8, 2, allowed, random.Random(s), texts=texts)
             for s in range(50)}
    assert picks == {4, 5}
