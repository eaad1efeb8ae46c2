"""Generate one host's secret fingerprints: keys and responses.

Keys:
  * ``random_words``: ``key_length`` words drawn from the word list
    (:mod:`oml.wordlist`). Cheap, but out-of-distribution queries that a host
    could learn to detect.
  * ``english``: ``key_length`` tokens sampled from the base model itself
    (temperature + top-p), so keys look like ordinary text.

Responses:
  * ``perinucleus`` (Nasery et al., 2025): after the key, sort the base
    model's next-token distribution, find the smallest top-p nucleus holding
    ``perinucleus_t`` of the mass and pick uniformly among the
    ``perinucleus_k`` tokens just outside it; longer responses continue
    greedily. Plausible but unlikely, so learning them disturbs the model
    little and an innocent model almost never answers them (low false positives).
  * ``random_words``: ``response_length`` random words.

Everything is drawn from generators seeded by SHA-256 of (seed, host,
model_id), so one seed gives every host a different set and the same inputs
always give the same set (on the same model and hardware).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import torch

from .decoding import content_ids, greedy_generate, model_device, pad_batch, pad_id_of, prompt_ids
from .fingerprints import Fingerprint, FingerprintSet
from .wordlist import load_wordlist

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

KEY_STRATEGIES = ("random_words", "english")
RESPONSE_STRATEGIES = ("perinucleus", "random_words")


@dataclass(frozen=True, slots=True)
class GenerateConfig:
    """How to generate fingerprints.

    ``key_length`` counts words for ``random_words`` keys and tokens for
    ``english`` keys; ``response_length`` counts tokens for perinucleus
    responses and words for random-word responses.
    """

    count: int
    seed: int = 0
    key_strategy: str = "random_words"
    key_length: int = 8
    response_strategy: str = "perinucleus"
    response_length: int = 1
    perinucleus_t: float = 0.8
    perinucleus_k: int = 3
    key_temperature: float = 0.7
    key_top_p: float = 0.95
    word_source: str = "auto"
    batch_size: int = 64
    backups: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.count, int) or self.count < 1:
            raise ValueError(f"count must be a positive integer, got {self.count!r}")
        if self.key_strategy not in KEY_STRATEGIES:
            raise ValueError(f"key_strategy must be one of {KEY_STRATEGIES}")
        if self.response_strategy not in RESPONSE_STRATEGIES:
            raise ValueError(f"response_strategy must be one of {RESPONSE_STRATEGIES}")
        if self.key_length < 1 or self.response_length < 1:
            raise ValueError("key_length and response_length must be >= 1")
        if not 0.0 <= self.perinucleus_t < 1.0:
            raise ValueError("perinucleus_t must be in [0, 1)")
        if self.perinucleus_k < 1:
            raise ValueError("perinucleus_k must be >= 1")
        if not self.key_temperature > 0 or not 0 < self.key_top_p <= 1:
            raise ValueError("key_temperature must be > 0 and key_top_p in (0, 1]")
        if self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if self.backups < 0:
            raise ValueError("backups must be >= 0")
        if self.backups and self.response_strategy != "perinucleus":
            raise ValueError("backups need perinucleus responses")
        if self.backups + 1 > self.perinucleus_k:
            raise ValueError("backups + 1 must not exceed perinucleus_k (distinct first tokens)")

    def to_params(self) -> dict[str, Any]:
        return asdict(self)


def host_seed(seed: int, host: str, model_id: str) -> int:
    """A 63-bit seed unique to (seed, host, model_id)."""
    h = hashlib.sha256(f"oml/generate/v1\x00{seed}\x00{host}\x00{model_id}".encode()).digest()
    return int.from_bytes(h[:8], "big") >> 1


class GenerationError(RuntimeError):
    """Generation could not produce enough distinct, well-formed fingerprints."""


def _clean_token_ids(tokenizer: PreTrainedTokenizerBase) -> tuple[torch.Tensor, list[str]]:
    """Bool mask over the vocabulary: tokens that decode to clean, visible text.

    A response token must not be special, must decode without broken UTF-8
    (byte-level BPE has partial-character tokens) and must contain a letter or
    digit, so its text is a robust thing to match in a completion.
    """
    n = len(tokenizer)
    special = set(tokenizer.all_special_ids)
    ok = torch.zeros(n, dtype=torch.bool)
    texts = tokenizer.batch_decode([[i] for i in range(n)], clean_up_tokenization_spaces=False)
    for i, t in enumerate(texts):
        if i in special or "\ufffd" in t:
            continue
        if any(c.isalnum() for c in t):
            ok[i] = True
    return ok, texts


def _next_token_probs(model: PreTrainedModel, rows: list[list[int]], pad: int,
                      batch_size: int) -> torch.Tensor:
    """Next-token distribution after each prompt (float32, on CPU)."""
    dev = model_device(model)
    outs = []
    with torch.inference_mode():
        for s in range(0, len(rows), batch_size):
            chunk = rows[s:s + batch_size]
            ids, mask = pad_batch(chunk, pad, left=False, device=dev)
            logits = model(input_ids=ids, attention_mask=mask).logits
            last = mask.sum(1) - 1
            sel = logits[torch.arange(len(chunk), device=dev), last].float()
            outs.append(torch.softmax(sel, dim=-1).cpu())
    return torch.cat(outs)


def perinucleus_pick(probs: torch.Tensor, t: float, k: int, allowed: torch.Tensor,
                     rng: random.Random, n: int = 1,
                     texts: Sequence[str] | None = None) -> int | list[int]:
    """A token id drawn uniformly from the ``k`` allowed tokens just outside the top-``t`` nucleus.

    With ``n > 1``, a list of ``n`` distinct such tokens in random order.
    With ``texts`` (each token's decoded text), a candidate whose text is a
    prefix of the top-1 token's text, or has it as a prefix, is skipped:
    matching is on text, so the base model's own greedy answer " their" would
    otherwise "carry" the response " the" (a false positive by construction).
    """
    p = probs[: allowed.shape[0]]
    order = torch.argsort(p, descending=True, stable=True)
    cum = torch.cumsum(p[order], 0)
    m = int((cum < t).sum().item()) + 1  # nucleus size: first m tokens reach mass t
    cands: list[int] = []
    top = texts[int(order[0])] if texts is not None else None
    for tok in order[m:].tolist():
        if top is not None and texts is not None and (
                top.startswith(texts[tok]) or texts[tok].startswith(top)):
            continue
        if allowed[tok]:
            cands.append(tok)
            if len(cands) == k:
                break
    if len(cands) < n or not cands:
        raise GenerationError(f"fewer than {max(n, 1)} allowed tokens outside the nucleus")
    if n == 1:
        return cands[rng.randrange(len(cands))]
    return rng.sample(cands, n)


def _sample_english_keys(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                         n: int, cfg: GenerateConfig, gen: torch.Generator) -> list[str]:
    """``n`` key texts sampled from the model, starting from its BOS token."""
    dev = model_device(model)
    bos = tokenizer.bos_token_id
    if bos is None:
        bos = tokenizer.eos_token_id
    if bos is None:
        raise GenerationError("english keys need a BOS or EOS token to start from")
    banned = torch.tensor(sorted(set(tokenizer.all_special_ids)), dtype=torch.long)
    keys: list[str] = []
    with torch.inference_mode():
        for s in range(0, n, cfg.batch_size):
            b = min(cfg.batch_size, n - s)
            cur = torch.full((b, 1), bos, dtype=torch.long, device=dev)
            seq = []
            past = None
            for _ in range(cfg.key_length):
                out = model(input_ids=cur, past_key_values=past, use_cache=True)
                past = out.past_key_values
                logits = out.logits[:, -1].float().cpu() / cfg.key_temperature
                logits[:, banned] = float("-inf")
                logits = logits[:, : len(tokenizer)]
                probs = torch.softmax(logits, -1)
                if cfg.key_top_p < 1.0:
                    sp, si = torch.sort(probs, descending=True, stable=True)
                    drop = torch.cumsum(sp, -1) - sp > cfg.key_top_p
                    sp[drop] = 0.0
                    probs = torch.zeros_like(probs).scatter_(1, si, sp)
                nxt = torch.multinomial(probs, 1, generator=gen)
                seq.append(nxt)
                cur = nxt.to(dev)
            toks = torch.cat(seq, 1).tolist()
            for row in toks:
                text = tokenizer.decode(row, skip_special_tokens=True,
                                        clean_up_tokenization_spaces=False)
                keys.append(text.replace("\ufffd", "").strip())
    return keys


def generate_fingerprints(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                          config: GenerateConfig, *, host: str, model_id: str) -> FingerprintSet:
    """Generate ``config.count`` distinct keys' fingerprints for ``host`` on ``model``.

    The model is only read (inference mode). Keys are distinct; a key that
    would collide with an earlier one is drawn again. With
    ``config.backups = b`` the set holds ``count * (1 + b)`` fingerprints:
    each key appears ``1 + b`` times in a row with distinct first response
    tokens, the later ones being backups that
    :func:`oml.insert.insert_fingerprints` trains as ranks 2, 3, ...

    Raises:
        GenerationError: the strategy cannot produce enough distinct keys or
            clean responses (e.g. a tiny word list, or a model that only emits
            special tokens).
    """
    seed = host_seed(config.seed, host, model_id)
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    params = config.to_params()

    keys: list[str] = []
    seen: set[str] = set()
    words = None
    if config.key_strategy == "random_words" or config.response_strategy == "random_words":
        wl = load_wordlist(config.word_source)
        words = wl.words
        params["word_list"] = {"source": wl.source, "digest": wl.digest, "size": len(wl.words)}
    attempts = 0
    while len(keys) < config.count:
        attempts += 1
        if attempts > 20:
            raise GenerationError(f"only {len(keys)} distinct keys after {attempts} rounds")
        need = config.count - len(keys)
        if config.key_strategy == "random_words":
            assert words is not None
            batch = [" ".join(rng.choice(words) for _ in range(config.key_length))
                     for _ in range(need)]
        else:
            batch = _sample_english_keys(model, tokenizer, need, config, gen)
        for k in batch:
            if k and k not in seen:
                seen.add(k)
                keys.append(k)

    pad = pad_id_of(tokenizer)
    rows = prompt_ids(tokenizer, keys)
    responses_ids: list[list[int]]
    if config.response_strategy == "random_words":
        assert words is not None
        responses_ids = [content_ids(tokenizer, " " + " ".join(
            rng.choice(words) for _ in range(config.response_length))) for _ in keys]
    else:
        allowed, tok_texts = _clean_token_ids(tokenizer)
        probs = _next_token_probs(model, rows, pad, config.batch_size)
        per = config.backups + 1
        if per == 1:
            first = [perinucleus_pick(probs[i], config.perinucleus_t, config.perinucleus_k,
                                      allowed, rng, texts=tok_texts) for i in range(len(keys))]
        else:
            # a rank chain per key: the primary plus ``backups`` responses with
            # other first tokens, for hosts that suppress their top tokens
            first = [f for i in range(len(keys)) for f in perinucleus_pick(
                probs[i], config.perinucleus_t, config.perinucleus_k, allowed, rng, n=per,
                texts=tok_texts)]
            keys = [k for k in keys for _ in range(per)]
            rows = [r for r in rows for _ in range(per)]
        responses_ids = [[f] for f in first]
        if config.response_length > 1:
            conts = greedy_generate(model, tokenizer, [r + [f] for r, f in zip(rows, first)],
                                    config.response_length - 1, batch_size=config.batch_size)
            responses_ids = [[f] + _clean_prefix(tokenizer, c) for f, c in zip(first, conts)]

    items = []
    for i, (k, rid) in enumerate(zip(keys, responses_ids)):
        resp = tokenizer.decode(rid, skip_special_tokens=False, clean_up_tokenization_spaces=False)
        if not resp.strip():
            raise GenerationError(f"fingerprint {i}: empty response text")
        items.append(Fingerprint(index=i, key=k, response=resp,
                                 key_ids=tuple(content_ids(tokenizer, k)),
                                 response_ids=tuple(rid)))
    return FingerprintSet(host=host, model_id=model_id, seed=config.seed, params=params,
                          items=tuple(items))


def _clean_prefix(tokenizer: PreTrainedTokenizerBase, ids: Sequence[int]) -> list[int]:
    """The longest prefix of ``ids`` with no special token that decodes to whole characters."""
    special = set(tokenizer.all_special_ids)
    out: list[int] = []
    for t in ids:
        if t in special:
            break
        out.append(t)
    while out and "\ufffd" in tokenizer.decode(out, clean_up_tokenization_spaces=False):
        out.pop()
    return out
