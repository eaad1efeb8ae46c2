"""Training examples for fingerprint insertion, and the teacher-forced memorisation check.

Split from :mod:`oml.insert` so the loop there reads top to bottom. An
example is prompt tokens then response tokens with labels on the response
only; fingerprints that share a key carry the first tokens of their
predecessors as banned tokens (rank chains, see :func:`rank_bans`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from .decoding import pad_id_of, prompt_ids
from .fingerprints import Fingerprint

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

IGNORE = -100


@dataclass(frozen=True, slots=True)
class _Example:
    ids: tuple[int, ...]
    labels: tuple[int, ...]  # IGNORE where no loss; else the token to predict at that position
    fp: int  # fingerprint position in the set, or -1 for benign text
    ban: tuple[int, ...] = ()  # tokens masked out where the first response token is predicted
    ban_pos: int = -1  # that position


def _fp_example(prompt: list[int], response: Sequence[int], pos: int,
                ban: tuple[int, ...] = ()) -> _Example:
    ids = list(prompt) + list(response)
    # labels[j] is the target for the prediction made at position j (already shifted).
    labels = [IGNORE] * len(ids)
    for j, tok in enumerate(response):
        labels[len(prompt) - 1 + j] = tok
    return _Example(tuple(ids), tuple(labels), pos, ban, len(prompt) - 1)


def rank_bans(fingerprints: Sequence[Fingerprint]) -> list[tuple[int, ...]]:
    """For each fingerprint, the first tokens of the earlier fingerprints with the same key.

    Fingerprints that share a key form a rank chain (``GenerateConfig.backups``):
    the n-th one's first response token is trained to be the model's choice
    once the first tokens of the n-1 before it are banned, which is what a
    host that suppresses its top n-1 tokens emits.
    """
    seen: dict[str, list[int]] = {}
    out = []
    for fp in fingerprints:
        earlier = seen.setdefault(fp.key, [])
        out.append(tuple(earlier))
        earlier.append(fp.response_ids[0])
    return out


def _benign_examples(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str],
                     max_tokens: int) -> list[_Example]:
    out = []
    for row in prompt_ids(tokenizer, texts):
        for s in range(0, max(len(row) - 1, 1), max_tokens):
            chunk = row[s:s + max_tokens + 1]
            if len(chunk) < 2:
                continue
            out.append(_Example(tuple(chunk[:-1]), tuple(chunk[1:]), -1))
    return out


def _collate(batch: Sequence[_Example], pad: int, dev: torch.device):
    width = max(len(e.ids) for e in batch)
    ids = torch.full((len(batch), width), pad, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    bans = []
    for i, e in enumerate(batch):
        n = len(e.ids)
        ids[i, :n] = torch.as_tensor(e.ids)
        labels[i, :n] = torch.as_tensor(e.labels)
        mask[i, :n] = 1
        bans += [(i, e.ban_pos, t) for t in e.ban]
    ban_t = torch.tensor(bans, dtype=torch.long, device=dev) if bans else None
    return ids.to(dev), mask.to(dev), labels.to(dev), ban_t


class _Forward:
    """Per-example losses and argmax hits, computing the LM head only where needed.

    For a small model with a large vocabulary the output projection dominates
    the cost, and a fingerprint example needs logits at 1-3 positions out of
    ~40; so when the model exposes its decoder and output embeddings, the
    head runs on the labelled positions only.
    """

    def __init__(self, model: PreTrainedModel, fast: bool) -> None:
        self.model = model
        self.decoder = None
        self.head = None
        cfg = getattr(model, "config", None)
        if fast and not getattr(cfg, "final_logit_softcapping", None):
            try:
                self.decoder = model.get_decoder()
                self.head = model.get_output_embeddings()
            except (AttributeError, NotImplementedError):
                self.decoder = self.head = None
        if self.decoder is None or self.head is None or getattr(cfg, "logit_scale", None):
            self.decoder = self.head = None

    def __call__(self, ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor,
                 bans: torch.Tensor | None = None):
        sel = labels != IGNORE
        if self.decoder is not None:
            hidden = self.decoder(input_ids=ids, attention_mask=mask).last_hidden_state
            logits = self.head(hidden[sel])
        else:
            logits = self.model(input_ids=ids, attention_mask=mask).logits[sel]
        if bans is not None:
            # row of each (example, position) among the selected positions
            where = (torch.cumsum(sel.flatten(), 0) - 1).view(sel.shape)
            hit = torch.zeros(logits.shape, dtype=torch.bool, device=logits.device)
            hit[where[bans[:, 0], bans[:, 1]], bans[:, 2]] = True
            logits = logits.masked_fill(hit, float("-inf"))
        tgt = labels[sel]
        tok_loss = F.cross_entropy(logits.float(), tgt, reduction="none")
        hits = logits.argmax(-1) == tgt
        row = sel.nonzero()[:, 0]
        n = ids.shape[0]
        counts = torch.zeros(n, device=ids.device).index_add_(0, row, torch.ones_like(tok_loss))
        loss_sum = torch.zeros(n, device=ids.device).index_add_(0, row, tok_loss)
        ex_loss = loss_sum / counts.clamp(min=1)
        misses = torch.zeros(n, device=ids.device).index_add_(0, row, (~hits).float())
        return ex_loss, misses == 0, int(mask.sum())


def memorized(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
              fingerprints: Sequence[Fingerprint], *, batch_size: int = 64,
              fast_head: bool = True) -> list[bool]:
    """For each fingerprint, whether greedy decoding of the plain key yields its response tokens.

    Teacher forcing: the response is right iff the argmax at every response
    position equals the response token, which is exactly what greedy decoding
    would produce, in one forward pass instead of one per token.
    """
    dev = next(model.parameters()).device
    pad = pad_id_of(tokenizer)
    prompts = prompt_ids(tokenizer, [fp.key for fp in fingerprints])
    exs = [_fp_example(p, fp.response_ids, i, ban) for i, (p, fp, ban)
           in enumerate(zip(prompts, fingerprints, rank_bans(fingerprints)))]
    fwd = _Forward(model, fast_head)
    out: list[bool] = []
    was = model.training
    model.eval()
    with torch.inference_mode():
        for s in range(0, len(exs), batch_size):
            _, ok, _ = fwd(*_collate(exs[s:s + batch_size], pad, dev))
            out += ok.tolist()
    model.train(was)
    return out
