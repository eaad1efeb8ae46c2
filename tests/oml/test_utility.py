"""Perplexity: sane values, training lowers it, windows and batching do not change it."""

from __future__ import annotations

import math

import pytest

from oml.testing import tiny_corpus
from oml.utility import negative_log_likelihood, perplexity, perplexity_change


def test_perplexity_sane(tiny) -> None:
    model, tok = tiny
    texts = tiny_corpus(40, seed=99)
    ppl = perplexity(model, tok, texts)
    assert 1.0 < ppl < len(tok)  # better than uniform: the tiny model was pretrained a little
    nll, n = negative_log_likelihood(model, tok, texts)
    assert n == sum(len(tok(t)["input_ids"]) - 1 for t in texts)
    assert ppl == pytest.approx(math.exp(nll / n))


def test_batching_and_windows_consistent(tiny) -> None:
    model, tok = tiny
    texts = tiny_corpus(12, seed=98)
    a = perplexity(model, tok, texts, batch_size=1)
    b = perplexity(model, tok, texts, batch_size=16)
    assert a == pytest.approx(b, rel=1e-4)
    # shorter windows lose context, but still score every token once
    _, n_short = negative_log_likelihood(model, tok, texts, max_length=5)
    _, n_long = negative_log_likelihood(model, tok, texts)
    assert n_short == n_long


def test_perplexity_change_zero_for_same_model(tiny) -> None:
    model, tok = tiny
    p, b, rel = perplexity_change(model, model, tok, tiny_corpus(8, seed=97))
    assert p == b and rel == 0.0


def test_empty_texts_rejected(tiny) -> None:
    model, tok = tiny
    with pytest.raises(ValueError):
        perplexity(model, tok, [])
