"""Insertion: fingerprints become greedy answers; options (LoRA, averaging, seeds) behave."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from oml.fingerprints import FingerprintSet
from oml.insert import InsertConfig, insert_fingerprints, memorized
from oml.testing import tiny_corpus
from oml.verify import verify_fingerprints


def test_insert_then_verify(fingerprinted, fpset: FingerprintSet) -> None:
    model, tok = fingerprinted
    assert all(memorized(model, tok, list(fpset)))
    rep = verify_fingerprints(model, tok, fpset)
    assert rep.matches == rep.total == len(fpset)


def test_untouched_model_does_not_memorize(tiny, fpset: FingerprintSet) -> None:
    model, tok = tiny
    assert not any(memorized(model, tok, list(fpset)))


def _cfg(**kw) -> InsertConfig:
    base = dict(lr=3e-3, epochs=150, batch_size=8, progress=False, device="cpu", seed=0)
    base.update(kw)
    return InsertConfig(**base)


def test_seeded_and_reproducible(tiny_dir: Path, fpset: FingerprintSet) -> None:
    from oml.modelio import load_model

    states = []
    for _ in range(2):
        model, tok = load_model(tiny_dir, device="cpu")
        rep = insert_fingerprints(model, tok, fpset, _cfg(steps=6, stop_at_accuracy=None),
                                  benign_texts=tiny_corpus(20, seed=3))
        assert rep.steps == 6
        states.append({k: v.clone() for k, v in model.state_dict().items()})
    for k in states[0]:
        assert torch.equal(states[0][k], states[1][k]), k


def test_loss_only_on_response_tokens(tiny, fpset: FingerprintSet) -> None:
    # One step with a zero-length response effect would not move anything; instead
    # check that the first epoch loss equals the mean response-token loss of the base.
    import torch.nn.functional as F

    model, tok = tiny
    fp = fpset[0]
    ids = tok(fp.key)["input_ids"] + list(fp.response_ids)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0]
    n = len(fp.response_ids)
    want = F.cross_entropy(logits[-n - 1:-1], torch.tensor(fp.response_ids)).item()
    one = FingerprintSet(host="h", model_id="m", seed=0, items=(fp,))
    rep = insert_fingerprints(model, tok, one, _cfg(steps=1, warmup=0, stop_at_accuracy=None,
                                                    prompt_augmentation=False))
    assert rep.losses[0] == pytest.approx(want, rel=1e-4)


def test_lora_merges_back(tiny, fpset: FingerprintSet) -> None:
    model, tok = tiny
    names = sorted(n for n, _ in model.named_parameters())
    rep = insert_fingerprints(model, tok, fpset, _cfg(lora=True, lr=1e-2, lora_rank=8, epochs=150))
    assert sorted(n for n, _ in model.named_parameters()) == names
    assert type(model.model.layers[0].self_attn.q_proj) is torch.nn.Linear
    assert rep.trainable_params < sum(p.numel() for p in model.parameters())
    assert rep.train_accuracy >= 0.5
    assert verify_fingerprints(model, tok, fpset).accuracy == rep.train_accuracy


def test_averaging_toward_base(tiny, tiny_dir: Path, fpset: FingerprintSet) -> None:
    from oml.modelio import load_model

    base, _ = load_model(tiny_dir, device="cpu")
    model, tok = tiny
    rep = insert_fingerprints(model, tok, fpset, _cfg(steps=5, stop_at_accuracy=None,
                                                      averaging_lambda=0.5))
    assert rep.averaged == 1
    free, _ = load_model(tiny_dir, device="cpu")
    insert_fingerprints(free, tok, fpset, _cfg(steps=5, stop_at_accuracy=None))
    # averaged weights sit exactly halfway between the base and the un-averaged run
    for (n, a), (_, b), (_, f) in zip(model.named_parameters(), base.named_parameters(),
                                      free.named_parameters()):
        torch.testing.assert_close(a, 0.5 * b + 0.5 * f, msg=n)


def test_averaging_every_k_steps(tiny, fpset: FingerprintSet) -> None:
    model, tok = tiny
    rep = insert_fingerprints(model, tok, fpset, _cfg(steps=6, stop_at_accuracy=None,
                                                      averaging_lambda=0.1, averaging_every=2))
    assert rep.averaged == 3


def test_bad_config_and_inputs(tiny, fpset: FingerprintSet) -> None:
    for kw in (dict(lr=0), dict(averaging_lambda=1.0), dict(averaging_every=2),
               dict(benign_mix=1.0), dict(schedule="x"), dict(lora=True, averaging_lambda=0.5,
                                                               averaging_every=1)):
        with pytest.raises(ValueError):
            _cfg(**kw)
    model, tok = tiny
    with pytest.raises(ValueError, match="benign_texts"):
        insert_fingerprints(model, tok, fpset, _cfg(benign_mix=0.2))


def test_freeze_embeddings_leaves_them_alone(tiny, fpset: FingerprintSet) -> None:
    model, tok = tiny
    emb = model.get_input_embeddings().weight.detach().clone()
    layer = model.model.layers[0].mlp.up_proj.weight.detach().clone()
    insert_fingerprints(model, tok, fpset, _cfg(steps=3, stop_at_accuracy=None,
                                                freeze_embeddings=True))
    assert torch.equal(model.get_input_embeddings().weight, emb)
    assert not torch.equal(model.model.layers[0].mlp.up_proj.weight, layer)
    assert all(p.requires_grad for p in model.parameters())


def test_lora_restores_trainability(tiny, fpset: FingerprintSet) -> None:
    model, tok = tiny
    insert_fingerprints(model, tok, fpset, _cfg(lora=True, steps=2, stop_at_accuracy=None))
    assert all(p.requires_grad for p in model.parameters())


def test_repair_after_averaging(tiny, fpset: FingerprintSet) -> None:
    model, tok = tiny
    # averaging almost all the way back to the base undoes the memorisation;
    # repair steps re-learn it and nothing is averaged afterwards
    rep = insert_fingerprints(model, tok, fpset, _cfg(averaging_lambda=0.9, repair_steps=300))
    assert rep.averaged == 1 and rep.repair_steps > 0
    assert rep.train_accuracy == 1.0
    assert verify_fingerprints(model, tok, fpset).accuracy == 1.0


def test_extra_epochs_after_target(tiny_dir: Path, fpset: FingerprintSet) -> None:
    from oml.modelio import load_model

    runs = []
    for extra in (0, 3):
        model, tok = load_model(tiny_dir, device="cpu")
        runs.append(insert_fingerprints(model, tok, fpset, _cfg(freeze_embeddings=False,
                                                                extra_epochs=extra)))
    assert runs[0].stopped_early and runs[1].stopped_early
    assert runs[1].epochs == runs[0].epochs + 3
    assert runs[1].train_accuracy == 1.0
