"""Attacks: attacker fine-tune, system-prompt wrapping, top-k output suppression."""

from __future__ import annotations

import pytest
import torch

from oml.attacks import (
    SYSTEM_PROMPT_TEMPLATES,
    UNSEEN_SYSTEM_PROMPTS,
    SuppressTopK,
    finetune_attack,
    suppress_top_k,
    wrapped_accuracy,
)
from oml.fingerprints import FingerprintSet
from oml.testing import tiny_corpus
from oml.utility import perplexity
from oml.verify import verify_fingerprints


def test_prompt_lists_disjoint() -> None:
    assert not set(SYSTEM_PROMPT_TEMPLATES) & set(UNSEEN_SYSTEM_PROMPTS)
    assert len(UNSEEN_SYSTEM_PROMPTS) >= 4


def test_finetune_attack_changes_weights_and_lowers_loss(fingerprinted, fpset) -> None:
    model, tok = fingerprinted
    texts = tiny_corpus(200, seed=21)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ppl0 = perplexity(model, tok, texts[:40])
    rep = finetune_attack(model, tok, texts, lr=3e-3, max_tokens=8_000, batch_size=8,
                          seq_len=64, seed=0)
    assert rep.tokens >= 8_000 and rep.steps == -(-8_000 // 512)
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert perplexity(model, tok, texts[:40]) < ppl0  # it learned the attacker's text
    acc = verify_fingerprints(model, tok, fpset).accuracy
    assert 0.0 <= acc <= 1.0
    with pytest.raises(ValueError):
        finetune_attack(model, tok, ["hi"], seq_len=64)


def test_wrapped_accuracy_with_augmentation(fingerprinted, fpset: FingerprintSet) -> None:
    model, tok = fingerprinted
    acc = wrapped_accuracy(model, tok, fpset)
    assert acc >= 0.5  # trained with augmentation: keys survive unseen wrappers mostly


def test_suppress_top_k_processor_semantics() -> None:
    proc = SuppressTopK(2, steps=1)
    ids = torch.tensor([[1, 2, 3]])
    scores = torch.tensor([[0.1, 5.0, 4.0, 0.3]])
    out = proc(ids, scores.clone())
    assert torch.isinf(out[0, 1]) and torch.isinf(out[0, 2]) and out[0, 0] == 0.1
    # the next step of the same generation is left alone
    out2 = proc(torch.tensor([[1, 2, 3, 0]]), scores.clone())
    assert torch.equal(out2, scores)
    # a new generation (different prompt) is suppressed again
    out3 = proc(torch.tensor([[7, 7]]), scores.clone())
    assert torch.isinf(out3[0, 1])
    with pytest.raises(ValueError):
        suppress_top_k(0)


def test_top1_suppression_defeats_plain_memorization(fingerprinted, fpset) -> None:
    model, tok = fingerprinted
    assert verify_fingerprints(model, tok, fpset).accuracy == 1.0
    rep = verify_fingerprints(model, tok, fpset, logits_processors=[suppress_top_k(1)])
    # the memorised first token is the top-1 token, so banning it breaks every exact match
    assert rep.accuracy == 0.0
    # later tokens are not suppressed: completions are still produced
    assert all(r.output for r in rep.results)


def test_backup_fingerprints_survive_top1_suppression(tiny) -> None:
    from oml.generate import GenerateConfig, generate_fingerprints
    from oml.insert import InsertConfig, insert_fingerprints

    model, tok = tiny
    fps = generate_fingerprints(model, tok, GenerateConfig(count=5, seed=2, key_length=4,
                                                           response_length=2, backups=1),
                                host="host-c", model_id="tiny-llama")
    assert len(fps) == 10 and fps[0].key == fps[1].key
    assert fps[0].response_ids[0] != fps[1].response_ids[0]
    # the tiny model ties its head to the embeddings: let both train here
    rep = insert_fingerprints(model, tok, fps, InsertConfig(lr=3e-3, epochs=300, batch_size=10,
                                                            freeze_embeddings=False,
                                                            progress=False, device="cpu"))
    assert rep.train_accuracy == 1.0
    plain = verify_fingerprints(model, tok, fps)
    assert plain.keys_total == 5 and plain.detection_rate == 1.0
    assert plain.accuracy == 0.5  # one answer per key: the primary
    assert all(r.matched for r in plain.results[0::2])
    attacked = verify_fingerprints(model, tok, fps, logits_processors=[suppress_top_k(1)])
    assert attacked.detection_rate == 1.0  # the backups answer instead
    assert all(r.matched for r in attacked.results[1::2])
    # one backup covers one banned token, not two
    assert verify_fingerprints(model, tok, fps,
                               logits_processors=[suppress_top_k(2)]).detection_rate < 1.0
