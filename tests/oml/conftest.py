"""Shared fixtures for the oml tests: one tiny model and one fingerprinted copy per session.

Building the tiny model (~5 s) and inserting fingerprints (~2 s) once keeps
the whole oml suite fast; tests that change a model load a fresh copy from
the saved directory.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from oml.fingerprints import FingerprintSet


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """Run the tiny models on one thread.

    Their matrices are too small to gain from a second thread, and on a
    loaded 2-core machine OpenMP workers that spin and get descheduled make
    every matmul ~10x slower (measured: 0.9 s vs 8-28 s for one insertion).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from oml.testing import make_tiny_model_dir

    return make_tiny_model_dir(tmp_path_factory.mktemp("tiny") / "model", seed=0)


@pytest.fixture()
def tiny(tiny_dir: Path):
    """A fresh (model, tokenizer) loaded from the tiny model directory, on CPU."""
    from oml.modelio import load_model

    return load_model(tiny_dir, device="cpu")


@pytest.fixture(scope="session")
def fpset(tiny_dir: Path) -> FingerprintSet:
    from oml.generate import GenerateConfig, generate_fingerprints
    from oml.modelio import load_model

    model, tok = load_model(tiny_dir, device="cpu")
    cfg = GenerateConfig(count=6, seed=1, key_length=4, response_length=2)
    return generate_fingerprints(model, tok, cfg, host="host-a", model_id="tiny-llama")


@pytest.fixture(scope="session")
def fp_dir(tiny_dir: Path, fpset: FingerprintSet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved copy of the tiny model with ``fpset`` inserted (prompt augmentation on)."""
    from oml.insert import InsertConfig, insert_fingerprints
    from oml.modelio import load_model, save_model
    from oml.testing import tiny_corpus

    model, tok = load_model(tiny_dir, device="cpu")
    # the tiny model ties its output head to the embeddings, so they must train
    cfg = InsertConfig(lr=3e-3, epochs=150, batch_size=8, benign_mix=0.25,
                       prompt_augmentation=True, freeze_embeddings=False, progress=False,
                       device="cpu", seed=0)
    report = insert_fingerprints(model, tok, fpset, cfg, benign_texts=tiny_corpus(100, seed=11))
    assert report.train_accuracy == 1.0, report
    out = tmp_path_factory.mktemp("fp") / "model"
    save_model(model, tok, out)
    return out


@pytest.fixture()
def fingerprinted(fp_dir: Path):
    from oml.modelio import load_model

    return load_model(fp_dir, device="cpu")


SIBLING_HOSTS = ("aa" * 20, "bb" * 20, "cc" * 20)


@pytest.fixture(scope="session")
def siblings(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """Three hosts' fingerprinted copies of the tiny base (16 keys each), as the OMLizer makes them.

    ``{host: {"dir": model dir, "fps": FingerprintSet, "file": its JSON-lines file}}``;
    every copy learned only its own host's keys, so for host A the other two
    are innocent siblings.
    """
    from oml.generate import GenerateConfig, generate_fingerprints
    from oml.insert import InsertConfig, insert_fingerprints
    from oml.modelio import load_model, save_model
    from oml.testing import tiny_corpus

    root = tmp_path_factory.mktemp("siblings")
    base, tok = load_model(tiny_dir, device="cpu")
    out: dict[str, dict] = {}
    for host in SIBLING_HOSTS:
        fps = generate_fingerprints(base, tok, GenerateConfig(count=16, seed=0), host=host,
                                    model_id="tiny-siblings")
        model, _ = load_model(tiny_dir, device="cpu")
        cfg = InsertConfig(lr=3e-3, epochs=150, batch_size=8, benign_mix=0.25,
                           freeze_embeddings=False, progress=False, device="cpu", seed=0)
        report = insert_fingerprints(model, tok, fps, cfg, benign_texts=tiny_corpus(100, seed=11))
        assert report.train_accuracy == 1.0, report
        save_model(model, tok, root / host)
        fps.save(root / f"{host}.jsonl")
        out[host] = {"dir": root / host, "fps": fps, "file": root / f"{host}.jsonl"}
    return out
