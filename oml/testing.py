"""A tiny Llama-style model and tokenizer built locally, for tests and demos.

Nothing is downloaded: the tokenizer is a byte-level BPE trained with the
``tokenizers`` library on a small synthetic English corpus, and the model is a
randomly initialised (optionally briefly pretrained) ``LlamaForCausalLM``.
Every oml test uses it, and users can use it to try the pipeline in seconds.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import TYPE_CHECKING

import torch

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


def build_tiny_model(vocab_size: int, *, hidden_size: int = 64, layers: int = 2, heads: int = 4,
                     max_positions: int = 256, seed: int = 0,
                     bos_token_id: int = 1, eos_token_id: int = 2,
                     pad_token_id: int = 0) -> PreTrainedModel:
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
        ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
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
