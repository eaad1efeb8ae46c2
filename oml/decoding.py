"""Batched tokenisation, padding and greedy decoding shared by the oml modules.

One place decides how text becomes model input (the tokenizer's own special
tokens, e.g. BOS, then the text) so generation, insertion and verification
can never disagree about what a key looks like to the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from transformers import LogitsProcessor, PreTrainedModel, PreTrainedTokenizerBase


def prompt_ids(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str]) -> list[list[int]]:
    """Token ids for each prompt text, with the tokenizer's special tokens (BOS)."""
    if not texts:
        return []
    return [list(r) for r in tokenizer(list(texts), add_special_tokens=True)["input_ids"]]


def content_ids(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    """Token ids of ``text`` without special tokens."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def completion_text(tokenizer: PreTrainedTokenizerBase, prompt: Sequence[int],
                    new: Sequence[int], *, cleanup: bool = False) -> str:
    """The text ``new`` adds after ``prompt``: what a deployment returns as the completion.

    Decoding the new tokens alone loses context: a SentencePiece ``▁the``
    decodes to ``"the"`` on its own but adds ``" the"`` after a prompt, and a
    WordPiece ``##s`` glues to the word before it. So this decodes prompt and
    prompt + new (special tokens skipped) and returns the difference, as
    transformers' text-generation pipeline and incremental detokenizers do.
    Falls back to decoding ``new`` alone when the prompt's text is not a
    prefix of the whole (a decoder that rewrites earlier text).
    """
    kw = {"skip_special_tokens": True, "clean_up_tokenization_spaces": cleanup}
    head = tokenizer.decode(list(prompt), **kw)
    full = tokenizer.decode(list(prompt) + list(new), **kw)
    if full.startswith(head):
        return full[len(head):]
    return tokenizer.decode(list(new), **kw)


def pad_batch(rows: Sequence[Sequence[int]], pad_id: int, *, left: bool,
              device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(input_ids, attention_mask)`` for ``rows`` padded on the left or right."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        if not r:
            continue
        t = torch.as_tensor(r, dtype=torch.long)
        if left:
            ids[i, width - len(r):] = t
            mask[i, width - len(r):] = 1
        else:
            ids[i, :len(r)] = t
            mask[i, :len(r)] = 1
    if device is not None:
        ids, mask = ids.to(device), mask.to(device)
    return ids, mask


def model_device(model: PreTrainedModel) -> torch.device:
    return next(model.parameters()).device


def pad_id_of(tokenizer: PreTrainedTokenizerBase) -> int:
    """The id to pad batches with: pad, else EOS, else UNK, else 0.

    Padded positions are always masked out (attention mask, ignored labels,
    sliced-off outputs), so any valid id does; a tokenizer without pad and EOS
    (e.g. BERT-style WordPiece) still works and is never modified.
    """
    for pid in (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id):
        if pid is not None:
            return int(pid)
    return 0


def greedy_generate(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                    rows: Sequence[Sequence[int]], max_new_tokens: int, *,
                    batch_size: int = 64,
                    logits_processors: Sequence[LogitsProcessor] = ()) -> list[list[int]]:
    """Greedy continuations (new token ids only) of each prompt in ``rows``.

    Prompts are sorted by length and left-padded in batches so one batch does
    little padding; results come back in input order. EOS ends a
    continuation (the EOS itself is kept out of the result).
    """
    from transformers import GenerationConfig, LogitsProcessorList

    dev = model_device(model)
    pad = pad_id_of(tokenizer)
    eos = tokenizer.eos_token_id
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    out: list[list[int]] = [[] for _ in rows]
    gcfg = GenerationConfig(do_sample=False, max_new_tokens=max_new_tokens, pad_token_id=pad,
                            eos_token_id=eos, bos_token_id=tokenizer.bos_token_id)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for s in range(0, len(order), batch_size):
                idx = order[s:s + batch_size]
                ids, mask = pad_batch([rows[i] for i in idx], pad, left=True, device=dev)
                procs = LogitsProcessorList(logits_processors) if logits_processors else None
                gen = model.generate(input_ids=ids, attention_mask=mask, generation_config=gcfg,
                                     logits_processor=procs)
                new = gen[:, ids.shape[1]:].tolist()
                for i, toks in zip(idx, new):
                    if eos is not None and eos in toks:
                        toks = toks[:toks.index(eos)]
                    out[i] = toks
    finally:
        model.train(was_training)
    return out
