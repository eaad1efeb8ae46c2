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
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import torch

from .commitments import normalize_text
from .decoding import (
    completion_text,
    content_ids,
    greedy_generate,
    model_device,
    pad_batch,
    pad_id_of,
    prompt_ids,
)
from .fingerprints import Fingerprint, FingerprintSet
from .wordlist import load_wordlist

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

KEY_STRATEGIES = ("random_words", "english")
MAX_TRIES = 256  # candidate tokens examined per key before giving the key up
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
                     texts: Sequence[str] | None = None,
                     accept: Callable[[int], bool] | None = None) -> int | list[int]:
    """A token id drawn uniformly from the ``k`` allowed tokens just outside the top-``t`` nucleus.

    With ``n > 1``, a list of ``n`` distinct such tokens in random order.
    With ``texts`` (each token's decoded text), a candidate whose text is a
    prefix of the top-1 token's text, or has it as a prefix, is skipped:
    matching is on text, so the base model's own greedy answer " their" would
    otherwise "carry" the response " the" (a false positive by construction).
    With ``accept``, only tokens it returns True for are candidates (at most
    :data:`MAX_TRIES` tokens outside the nucleus are examined).
    """
    p = probs[: allowed.shape[0]]
    order = torch.argsort(p, descending=True, stable=True)
    cum = torch.cumsum(p[order], 0)
    m = int((cum < t).sum().item()) + 1  # nucleus size: first m tokens reach mass t
    cands: list[int] = []
    top = texts[int(order[0])] if texts is not None else None
    tried = 0
    for tok in order[m:].tolist():
        if top is not None and texts is not None and (
                top.startswith(texts[tok]) or texts[tok].startswith(top)):
            continue
        if not allowed[tok]:
            continue
        if accept is not None:
            tried += 1
            if tried > MAX_TRIES:
                break
            if not accept(tok):
                continue
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
    """``n`` key texts sampled from the model, starting from its BOS (else EOS) token.

    A tokenizer with neither starts each key from a random clean token.
    """
    dev = model_device(model)
    bos = tokenizer.bos_token_id
    if bos is None:
        bos = tokenizer.eos_token_id
    pool = None
    if bos is None:  # nothing to start from: the first token is a random word piece
        pool = _clean_token_ids(tokenizer)[0].nonzero().flatten()
        if not len(pool):
            raise GenerationError("english keys need a BOS/EOS token or clean word tokens")
    banned = torch.tensor(sorted(set(tokenizer.all_special_ids)), dtype=torch.long)
    keys: list[str] = []
    with torch.inference_mode():
        for s in range(0, n, cfg.batch_size):
            b = min(cfg.batch_size, n - s)
            seq = []
            if pool is None:
                cur = torch.full((b, 1), bos, dtype=torch.long, device=dev)
            else:
                first = pool[torch.randint(len(pool), (b,), generator=gen)].view(b, 1)
                seq.append(first)
                cur = first.to(dev)
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

    The model is only read (inference mode). Keys are distinct, as texts and
    as token ids; a key that would collide with an earlier one, or that does
    not survive the tokenizer's round trip (text -> ids -> text; see
    :func:`key_round_trips`), is drawn again, as is a key for which no
    response candidate round-trips (see :func:`response_text`). With
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

    words = None
    if config.key_strategy == "random_words" or config.response_strategy == "random_words":
        wl = load_wordlist(config.word_source)
        words = wl.words
        params["word_list"] = {"source": wl.source, "digest": wl.digest, "size": len(wl.words)}
    allowed = None
    if config.response_strategy == "perinucleus":
        allowed, _ = _clean_token_ids(tokenizer)

    done: list[tuple[str, list[int], list[int], str]] = []  # key, key ids, response ids, text
    seen: set[str] = set()
    seen_ids: set[tuple[int, ...]] = set()
    per = config.backups + 1
    attempts = 0
    while len(done) < config.count * per:
        attempts += 1
        if attempts > 20:
            raise GenerationError(f"only {len(done) // per} usable keys after {attempts} rounds")
        need = config.count - len(done) // per
        if config.key_strategy == "random_words":
            assert words is not None
            batch = [" ".join(rng.choice(words) for _ in range(config.key_length))
                     for _ in range(need)]
        else:
            batch = _sample_english_keys(model, tokenizer, need, config, gen)
        fresh = []
        for k in batch:
            if not k or k in seen:
                continue
            seen.add(k)
            ids = tuple(content_ids(tokenizer, k))
            if ids in seen_ids or not key_round_trips(tokenizer, k):
                continue
            seen_ids.add(ids)
            fresh.append(k)
        if fresh:
            done += _respond(model, tokenizer, fresh, config, rng, words, allowed)

    items = []
    for i, (k, kids, rid, resp) in enumerate(done):
        if not resp.strip():
            raise GenerationError(f"fingerprint {i}: empty response text")
        items.append(Fingerprint(index=i, key=k, response=resp, key_ids=tuple(kids),
                                 response_ids=tuple(rid)))
    return FingerprintSet(host=host, model_id=model_id, seed=config.seed, params=params,
                          items=tuple(items))


def key_round_trips(tokenizer: PreTrainedTokenizerBase, key: str) -> bool:
    """Whether ``key`` survives text -> ids -> text -> ids unchanged.

    A key that a tokenizer lower-cases, strips of accents or maps to an
    unknown token is not the text the model will see; two such keys may even
    share their ids with different responses. Surrounding whitespace a
    tokenizer adds (a prefix space) is ignored; the texts are compared after
    :func:`oml.commitments.normalize_text`.
    """
    ids = content_ids(tokenizer, key)
    if not ids:
        return False
    back = tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    if normalize_text(back.strip()) != normalize_text(key.strip()):
        return False
    return content_ids(tokenizer, back) == ids


def response_text(tokenizer: PreTrainedTokenizerBase, key: str, prompt: Sequence[int],
                  key_ids: Sequence[int], response_ids: Sequence[int]) -> str | None:
    """The response's text after the key, or None if it cannot be reproduced exactly.

    The text is :func:`oml.decoding.completion_text` (what the model's
    completion reads as, in context). It must hold a letter or digit and no
    broken character, read the same with the tokenizer's clean-up of spaces
    (when the tokenizer applies it by default, as BERT-style ones do),
    and round-trip: ``key + text`` must tokenize to the key's ids followed by
    exactly ``response_ids``. A response failing any of these could be
    emitted by the model and still not be recognised (or be recognised from
    other tokens), so it is useless as a fingerprint.
    """
    text = completion_text(tokenizer, prompt, response_ids)
    if not text or "\ufffd" in text or not any(c.isalnum() for c in text):
        return None
    if getattr(tokenizer, "clean_up_tokenization_spaces", False) and completion_text(
            tokenizer, prompt, response_ids, cleanup=True) != text:
        return None
    if content_ids(tokenizer, key + text) != list(key_ids) + list(response_ids):
        return None
    return text


def _fold(text: str) -> str:
    return " ".join(normalize_text(text).decode("utf-8").split())


def _respond(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, keys: list[str],
             config: GenerateConfig, rng: random.Random, words: Sequence[str] | None,
             allowed: torch.Tensor | None) -> list[tuple[str, list[int], list[int], str]]:
    """``(key, key ids, response ids, response text)`` for each key that gets a response.

    Keys with no usable response are left out (the caller draws new keys).
    With backups, each kept key appears ``1 + backups`` times in a row.
    """
    rows = prompt_ids(tokenizer, keys)
    kids = [content_ids(tokenizer, k) for k in keys]
    out: list[tuple[str, list[int], list[int], str]] = []
    if config.response_strategy == "random_words":
        assert words is not None
        for k, row, ki in zip(keys, rows, kids):
            for _ in range(10):
                text = " " + " ".join(rng.choice(words) for _ in range(config.response_length))
                full = content_ids(tokenizer, k + text)
                rid = full[len(ki):]
                resp = (response_text(tokenizer, k, row, ki, rid)
                        if full[:len(ki)] == ki and rid else None)
                if resp is not None:
                    out.append((k, ki, rid, resp))
                    break
        return out

    assert allowed is not None
    pad = pad_id_of(tokenizer)
    probs = _next_token_probs(model, rows, pad, config.batch_size)
    greedy = greedy_generate(model, tokenizer, rows, config.response_length + 4,
                             batch_size=config.batch_size)
    per = config.backups + 1
    picked: list[tuple[int, int]] = []  # (key position, first token)
    for i, (k, row, ki) in enumerate(zip(keys, rows, kids)):
        base_says = _fold(completion_text(tokenizer, row, greedy[i]))
        top = int(torch.argmax(probs[i][: allowed.shape[0]]))
        top_text = _fold(completion_text(tokenizer, row, [top]))

        def accept(tok: int, k: str = k, row: list[int] = row, ki: list[int] = ki,
                   base_says: str = base_says, top_text: str = top_text) -> bool:
            text = response_text(tokenizer, k, row, ki, [tok])
            if text is None:
                return False
            folded = _fold(text)
            # matching is on text: the base's own answer must not "carry" it
            if base_says.startswith(folded):
                return False
            return not (top_text and (top_text.startswith(folded)
                                      or folded.startswith(top_text)))

        try:
            first = perinucleus_pick(probs[i], config.perinucleus_t, config.perinucleus_k,
                                     allowed, rng, n=per, accept=accept)
        except GenerationError:
            continue
        picked += [(i, f) for f in ([first] if per == 1 else first)]
    conts: list[list[int]] = [[] for _ in picked]
    if config.response_length > 1 and picked:
        conts = greedy_generate(model, tokenizer, [rows[i] + [f] for i, f in picked],
                                config.response_length - 1, batch_size=config.batch_size)
    for (i, f), c in zip(picked, conts):
        rid = [f] + _clean_prefix(tokenizer, c)
        text = response_text(tokenizer, keys[i], rows[i], kids[i], rid)
        while text is None and len(rid) > 1:  # keep the longest prefix that round-trips
            rid.pop()
            text = response_text(tokenizer, keys[i], rows[i], kids[i], rid)
        assert text is not None  # the first token alone was accepted above
        out.append((keys[i], kids[i], rid, text))
    return out


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
