"""Local-only model loading: round trip, device choice and clear errors for bad directories."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from oml.modelio import DeviceError, ModelDirError, load_model, pick_device, save_model


def test_load_round_trip(tiny_dir: Path, tmp_path: Path) -> None:
    model, tok = load_model(tiny_dir, device="cpu")
    assert not model.training
    assert next(model.parameters()).dtype == torch.float32
    assert tok.pad_token_id is not None and tok.bos_token_id is not None
    save_model(model, tok, tmp_path / "copy")
    again, tok2 = load_model(tmp_path / "copy", device="cpu")
    for (n, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), n
    assert tok2("hello world")["input_ids"] == tok("hello world")["input_ids"]


def test_pick_device() -> None:
    assert pick_device("cpu").type == "cpu"
    assert pick_device(None).type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(DeviceError):
        pick_device("not-a-device")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="CUDA"):
            pick_device("cuda")


def test_missing_dir(tmp_path: Path) -> None:
    with pytest.raises(ModelDirError, match="does not exist"):
        load_model(tmp_path / "nope")
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ModelDirError, match="not a directory"):
        load_model(f)
    with pytest.raises(ModelDirError, match="config.json"):
        load_model(tmp_path)


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_malformed_config(tiny_dir: Path, tmp_path: Path) -> None:
    d = _copy(tiny_dir, tmp_path / "m")
    (d / "config.json").write_text("{not json")
    with pytest.raises(ModelDirError, match="not valid JSON"):
        load_model(d)
    (d / "config.json").write_text(json.dumps({"hidden_size": 4}))
    with pytest.raises(ModelDirError, match="model_type"):
        load_model(d)


def test_missing_weights_and_tokenizer(tiny_dir: Path, tmp_path: Path) -> None:
    d = _copy(tiny_dir, tmp_path / "m")
    (d / "model.safetensors").unlink()
    with pytest.raises(ModelDirError, match="no weights"):
        load_model(d)
    d2 = _copy(tiny_dir, tmp_path / "m2")
    (d2 / "tokenizer.json").unlink()
    with pytest.raises(ModelDirError, match="tokenizer"):
        load_model(d2)


def test_corrupt_weights(tiny_dir: Path, tmp_path: Path) -> None:
    d = _copy(tiny_dir, tmp_path / "m")
    (d / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(ModelDirError, match="cannot load model"):
        load_model(d)


def test_shape_mismatch(tiny_dir: Path, tmp_path: Path) -> None:
    d = _copy(tiny_dir, tmp_path / "m")
    cfg = json.loads((d / "config.json").read_text())
    cfg["intermediate_size"] = cfg["intermediate_size"] + 8
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelDirError):
        load_model(d)


def test_missing_keys(tiny_dir: Path, tmp_path: Path) -> None:
    d = _copy(tiny_dir, tmp_path / "m")
    cfg = json.loads((d / "config.json").read_text())
    cfg["num_hidden_layers"] = cfg["num_hidden_layers"] + 1
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelDirError, match="missing_keys"):
        load_model(d)
