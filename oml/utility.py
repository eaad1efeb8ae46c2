"""Utility: does the fingerprinted model still model language as well as the base?

Perplexity on held-out text, computed the same way for both models so the
relative change is meaningful. Each text gets the tokenizer's special tokens
(BOS) and is cut into windows of ``max_length`` tokens; perplexity is
``exp(total NLL / predicted tokens)`` over all windows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from .decoding import model_device, pad_batch, pad_id_of, prompt_ids

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


def _windows(rows: list[list[int]], max_length: int) -> list[list[int]]:
    out = []
    for row in rows:
        # overlap by one token so every token after the first is predicted exactly once
        for s in range(0, max(len(row) - 1, 1), max_length - 1):
            w = row[s:s + max_length]
            if len(w) >= 2:
                out.append(w)
    return out


def negative_log_likelihood(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                            texts: Sequence[str], *, max_length: int = 256,
                            batch_size: int = 16) -> tuple[float, int]:
    """``(total NLL in nats, number of predicted tokens)`` over ``texts``."""
    if max_length < 2:
        raise ValueError("max_length must be >= 2")
    dev = model_device(model)
    pad = pad_id_of(tokenizer)
    wins = _windows(prompt_ids(tokenizer, texts), max_length)
    wins.sort(key=len)
    total, count = 0.0, 0
    was = model.training
    model.eval()
    with torch.inference_mode():
        for s in range(0, len(wins), batch_size):
            ids, mask = pad_batch(wins[s:s + batch_size], pad, left=False, device=dev)
            logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
            tgt = ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
            total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1),
                                           ignore_index=-100, reduction="sum"))
            count += int((tgt != -100).sum())
    model.train(was)
    return total, count


def perplexity(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str],
               *, max_length: int = 256, batch_size: int = 16) -> float:
    """Perplexity of ``model`` on ``texts``.

    Raises:
        ValueError: no text yields a token to predict.
    """
    nll, n = negative_log_likelihood(model, tokenizer, texts, max_length=max_length,
                                     batch_size=batch_size)
    if n == 0:
        raise ValueError("no tokens to score: texts are empty")
    return math.exp(nll / n)


def perplexity_change(model: PreTrainedModel, base_model: PreTrainedModel,
                      tokenizer: PreTrainedTokenizerBase, texts: Sequence[str],
                      **kw: int) -> tuple[float, float, float]:
    """``(ppl_model, ppl_base, relative change)``; 0.1 means 10% worse than the base."""
    p = perplexity(model, tokenizer, texts, **kw)
    b = perplexity(base_model, tokenizer, texts, **kw)
    return p, b, p / b - 1.0
