"""Tiny causal LMs and tokenizers built locally, for tests and demos.

Nothing is downloaded: tokenizers are trained with the ``tokenizers`` library
on a small synthetic English corpus, and models are randomly initialised
(optionally briefly pretrained) transformers causal LMs. Every oml test uses
them, and users can try the pipeline in seconds.

:func:`make_tiny_model_dir` is the default pair (a Llama with a byte-level BPE
that prepends ``<s>``). :func:`make_model_dir` builds any of the combinations
that cover what users bring (see docs/oml.md, "Models users bring"):

* architectures (:data:`ARCHITECTURES`): ``llama``, ``gpt2``, ``gpt_neox``,
  ``qwen2``;
* tokenizers (:data:`TOKENIZER_KINDS`): ``bytelevel`` (Llama-3 style BPE,
  ``<s>`` prepended), ``gpt2`` (GPT-2 style byte-level BPE that adds a prefix
  space, one ``<|endoftext|>`` token, no BOS is prepended and no pad),
  ``unigram`` (SentencePiece-style Unigram with ``▁`` word boundaries and
  ``<s>``/``</s>``, no pad), ``wordpiece`` (BERT-style: lower-cases, strips
  accents, ``##`` continuations, *no* BOS, EOS or pad at all);
* weights (:data:`WEIGHT_FORMATS`): ``safetensors``, ``sharded`` (an index
  and several safetensors shards), ``bin`` (``pytorch_model.bin``).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .decoding import pad_id_of
from .wordlist import load_wordlist

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerFast

_TEMPLATES = (
    "The {a} {n} sat near the {n2} and watched the {n3}.",
    "A {n} is not a {n2}, but every {n3} has a {n}.",
    "She took the {n} to the {n2} before the {n3} closed.",
    "We walked along the {n} until we found a {a} {n2}.",
    "My {n} likes to read about the {n2} in the evening.",
    "He said the {n} was {a}, and nobody argued with him.",
    "In the morning the {n} opened and the {n2} came in.",
    "They built a {a} {n} out of {n2} and {n3}.",
    "Why would anyone put a {n} inside the {n2}?",
    "The {n} and the {n2} went to the {n3} together.",
    "Every {n} in the {n2} was {a} that day.",
    "I can see a {n} from my {n2}, next to the old {n3}.",
    "Our {n} keeps the {n2} warm during the winter.",
    "After the {n}, the {n2} felt {a} and quiet.",
    "Please bring the {n} and a {a} {n2} to the meeting.",
    "It was a {a} night, and the {n} sang to the {n2}.",
)
_ADJ = ("small", "large", "quiet", "bright", "old", "new", "green", "cold", "warm",
        "happy", "strange", "simple", "heavy", "gentle", "busy", "rare")


def tiny_corpus(n: int = 400, seed: int = 0) -> list[str]:
    """``n`` simple English sentences, deterministic in ``seed``.

    Different seeds give (almost surely) different sentences, so tests can
    draw disjoint benign, evaluation and attacker texts.
    """
    rng = random.Random(f"oml-tiny-corpus/{seed}")
    words = load_wordlist("builtin").words
    out = []
    for _ in range(n):
        t = rng.choice(_TEMPLATES)
        out.append(t.format(a=rng.choice(_ADJ), n=rng.choice(words), n2=rng.choice(words),
                            n3=rng.choice(words)))
    return out


def build_tokenizer(texts: list[str], vocab_size: int = 600) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on ``texts`` that prepends ``<s>``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<pad>", "<s>", "</s>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tk.train_from_iterator(texts, trainer=trainer)
    bos = tk.token_to_id("<s>")
    tk.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tk, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
        unk_token="<unk>", clean_up_tokenization_spaces=False)


TOKENIZER_KINDS = ("bytelevel", "gpt2", "unigram", "wordpiece")
ARCHITECTURES = ("llama", "gpt2", "gpt_neox", "qwen2")
WEIGHT_FORMATS = ("safetensors", "sharded", "bin")


def build_gpt2_tokenizer(texts: list[str], vocab_size: int = 600) -> PreTrainedTokenizerFast:
    """A GPT-2 style byte-level BPE: adds a prefix space, one special token, no pad, no BOS."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tk.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tk, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
        unk_token="<|endoftext|>", clean_up_tokenization_spaces=False)


def build_unigram_tokenizer(texts: list[str], vocab_size: int = 600) -> PreTrainedTokenizerFast:
    """A SentencePiece-style Unigram (``▁`` marks word starts) that prepends ``<s>``; no pad."""
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.Unigram())
    tk.normalizer = normalizers.NFKC()
    tk.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    tk.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=["<unk>", "<s>", "</s>"], unk_token="<unk>",
        show_progress=False)
    tk.train_from_iterator(texts, trainer=trainer)
    bos = tk.token_to_id("<s>")
    tk.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tk, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
        clean_up_tokenization_spaces=False)


def build_wordpiece_tokenizer(texts: list[str], vocab_size: int = 600) -> PreTrainedTokenizerFast:
    """A BERT-style WordPiece (lower-cases, strips accents); only ``[UNK]``: no BOS/EOS/pad."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tk.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=True,
                                               clean_text=True, handle_chinese_chars=True)
    tk.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tk.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=["[UNK]"],
                                        show_progress=False)
    tk.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="[UNK]",
                                   clean_up_tokenization_spaces=True)


def build_tokenizer_kind(kind: str, texts: list[str],
                         vocab_size: int = 600) -> PreTrainedTokenizerFast:
    """One of :data:`TOKENIZER_KINDS`, trained on ``texts``.

    Raises:
        ValueError: an unknown kind.
    """
    builders = {"bytelevel": build_tokenizer, "gpt2": build_gpt2_tokenizer,
                "unigram": build_unigram_tokenizer, "wordpiece": build_wordpiece_tokenizer}
    if kind not in builders:
        raise ValueError(f"tokenizer kind must be one of {TOKENIZER_KINDS}, got {kind!r}")
    return builders[kind](texts, vocab_size=vocab_size)


def build_model(arch: str, vocab_size: int, *, hidden_size: int = 64, layers: int = 2,
                heads: int = 4, max_positions: int = 256, seed: int = 0,
                bos_token_id: int | None = None, eos_token_id: int | None = None,
                pad_token_id: int | None = None) -> PreTrainedModel:
    """A randomly initialised causal LM of architecture ``arch`` (one of :data:`ARCHITECTURES`).

    Raises:
        ValueError: an unknown architecture.
    """
    import transformers as tf

    ids = {"bos_token_id": bos_token_id, "eos_token_id": eos_token_id,
           "pad_token_id": pad_token_id}
    inter = hidden_size * 2 + hidden_size // 2
    if arch == "llama":
        return build_tiny_model(vocab_size, hidden_size=hidden_size, layers=layers, heads=heads,
                                max_positions=max_positions, seed=seed, **ids)
    if arch == "gpt2":
        cfg = tf.GPT2Config(vocab_size=vocab_size, n_embd=hidden_size, n_layer=layers,
                            n_head=heads, n_positions=max_positions, **ids)
        cls = tf.GPT2LMHeadModel
    elif arch == "gpt_neox":
        cfg = tf.GPTNeoXConfig(vocab_size=vocab_size, hidden_size=hidden_size,
                               num_hidden_layers=layers, num_attention_heads=heads,
                               intermediate_size=inter, max_position_embeddings=max_positions,
                               tie_word_embeddings=False, **ids)
        cls = tf.GPTNeoXForCausalLM
    elif arch == "qwen2":
        cfg = tf.Qwen2Config(vocab_size=vocab_size, hidden_size=hidden_size,
                             num_hidden_layers=layers, num_attention_heads=heads,
                             num_key_value_heads=heads // 2, intermediate_size=inter,
                             max_position_embeddings=max_positions, tie_word_embeddings=True,
                             **ids)
        cls = tf.Qwen2ForCausalLM
    else:
        raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {arch!r}")
    torch.manual_seed(seed)
    model = cls(cfg)
    model.eval()
    return model


def save_weights(model: PreTrainedModel, path: Path | str, fmt: str = "safetensors") -> None:
    """Save ``model`` (config + weights) in one of :data:`WEIGHT_FORMATS`.

    ``sharded`` cuts the weights into several safetensors files plus
    ``model.safetensors.index.json``; ``bin`` writes ``pytorch_model.bin`` with
    ``torch.save`` (a plain state dict, loadable with ``weights_only=True``).
    """
    if fmt not in WEIGHT_FORMATS:
        raise ValueError(f"weights format must be one of {WEIGHT_FORMATS}, got {fmt!r}")
    p = Path(path)
    p.mkdir(parents=True, exist_ok=True)
    if fmt == "safetensors":
        model.save_pretrained(str(p))
        return
    if fmt == "sharded":
        total = sum(t.numel() * t.element_size() for t in model.state_dict().values())
        model.save_pretrained(str(p), max_shard_size=max(total // 3, 1))
        return
    model.config.save_pretrained(str(p))
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(str(p))
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    torch.save(state, p / "pytorch_model.bin")


def make_model_dir(path: Path | str, *, arch: str = "llama", tokenizer: str = "bytelevel",
                   weights: str = "safetensors", seed: int = 0, vocab_size: int = 600,
                   hidden_size: int = 64, layers: int = 2, pretrain_steps: int = 60) -> Path:
    """Build, briefly pretrain and save a tiny ``arch`` model with a ``tokenizer`` tokenizer.

    Takes a few seconds on a CPU; the folder loads with
    :func:`oml.modelio.load_model` like any Hugging Face checkpoint.
    """
    texts = tiny_corpus(400, seed=seed)
    tok = build_tokenizer_kind(tokenizer, texts, vocab_size=vocab_size)
    model = build_model(arch, len(tok), hidden_size=hidden_size, layers=layers, seed=seed,
                        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                        pad_token_id=tok.pad_token_id)
    if pretrain_steps:
        pretrain(model, tok, texts, steps=pretrain_steps, seed=seed)
    p = Path(path)
    save_weights(model, p, weights)
    tok.save_pretrained(str(p))
    return p


def build_tiny_model(vocab_size: int, *, hidden_size: int = 64, layers: int = 2, heads: int = 4,
                     max_positions: int = 256, seed: int = 0,
                     bos_token_id: int | None = 1, eos_token_id: int | None = 2,
                     pad_token_id: int | None = 0) -> PreTrainedModel:
    """A randomly initialised Llama causal LM (tied embeddings), seeded."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=vocab_size, hidden_size=hidden_size,
                      intermediate_size=hidden_size * 2 + hidden_size // 2 * 1,
                      num_hidden_layers=layers, num_attention_heads=heads,
                      num_key_value_heads=heads, max_position_embeddings=max_positions,
                      bos_token_id=bos_token_id, eos_token_id=eos_token_id,
                      pad_token_id=pad_token_id, tie_word_embeddings=True)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg)
    model.eval()
    return model


def pretrain(model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, texts: list[str], *,
             steps: int, lr: float = 3e-3, batch_size: int = 16, seed: int = 0) -> float:
    """A short next-token pretraining run so the model is not pure noise; returns last loss."""
    gen = torch.Generator().manual_seed(seed)
    enc = tokenizer(texts, add_special_tokens=True)["input_ids"]
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    loss_val = float("nan")
    dev = next(model.parameters()).device
    for _ in range(steps):
        idx = torch.randint(len(enc), (batch_size,), generator=gen).tolist()
        rows = [enc[i] for i in idx]
        width = max(map(len, rows))
        ids = torch.full((len(rows), width), pad_id_of(tokenizer), dtype=torch.long)
        mask = torch.zeros_like(ids)
        for r, row in enumerate(rows):
            ids[r, :len(row)] = torch.tensor(row)
            mask[r, :len(row)] = 1
        labels = ids.masked_fill(mask == 0, -100)
        out = model(input_ids=ids.to(dev), attention_mask=mask.to(dev), labels=labels.to(dev))
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()
        loss_val = float(out.loss.detach())
    model.eval()
    return loss_val


def make_tiny_model_dir(path: Path | str, *, seed: int = 0, vocab_size: int = 600,
                        hidden_size: int = 64, layers: int = 2,
                        pretrain_steps: int = 60) -> Path:
    """Build, briefly pretrain and save a tiny model + tokenizer into ``path``.

    Takes a few seconds on a CPU. The result loads with
    :func:`oml.modelio.load_model` like any Hugging Face checkpoint.
    """
    from .modelio import save_model

    texts = tiny_corpus(400, seed=seed)
    tok = build_tokenizer(texts, vocab_size=vocab_size)
    model = build_tiny_model(len(tok), hidden_size=hidden_size, layers=layers, seed=seed,
                             bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                             pad_token_id=tok.pad_token_id)
    if pretrain_steps:
        pretrain(model, tok, texts, steps=pretrain_steps, seed=seed)
    p = Path(path)
    save_model(model, tok, p)
    return p
