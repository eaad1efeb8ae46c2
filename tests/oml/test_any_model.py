"""Any causal LM a user brings: three architectures x three tokenizer kinds x three weight formats.

Every model here is built offline on the spot (oml.testing.make_model_dir) and
goes through the whole CLI pipeline: generate -> insert -> verify ->
package -> check, then `oml verify` on the package. The combinations:

* GPT-2 + GPT-2 style byte-level BPE (prefix space, one special token, no
  pad) with ``pytorch_model.bin`` weights;
* Llama + SentencePiece-style Unigram (``▁`` word starts, ``<s>``/``</s>``,
  no pad) with sharded safetensors;
* GPT-NeoX + BERT-style WordPiece (lower-cases, strips accents, no BOS, EOS
  or pad at all) with one ``model.safetensors``;
* Qwen2 + byte-level BPE with one ``model.safetensors``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from node.cli.oml_cmds import oml_group
from node.keys import AccountKey

HOST = "5e" * 20
COMBOS = {
    "gpt2-bytelevel-bin": ("gpt2", "gpt2", "bin"),
    "llama-unigram-sharded": ("llama", "unigram", "sharded"),
    "neox-wordpiece-safetensors": ("gpt_neox", "wordpiece", "safetensors"),
    "qwen2-bytelevel-safetensors": ("qwen2", "bytelevel", "safetensors"),
}


def run(*args: str | Path):
    return CliRunner().invoke(oml_group, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from oml.testing import make_model_dir

    root = tmp_path_factory.mktemp("any_model")
    return {name: make_model_dir(root / name, arch=a, tokenizer=t, weights=w, hidden_size=48)
            for name, (a, t, w) in COMBOS.items()}


@pytest.fixture(scope="module")
def owner(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("owner") / "owner.json"
    AccountKey.generate().save(path)
    return path


@pytest.mark.parametrize("name", list(COMBOS))
def test_pipeline_on_every_kind(name: str, model_dirs: dict[str, Path], owner: Path,
                                tmp_path: Path) -> None:
    from oml.fingerprints import FingerprintSet
    from oml.generate import key_round_trips
    from oml.modelio import load_model

    base = model_dirs[name]
    pkg = tmp_path / "pkg"
    owner_pub = AccountKey.load(owner).public_key.hex()
    omlizer = tmp_path / "omlizer.json"
    AccountKey.generate().save(omlizer)
    res = run("fingerprint", "--model", base, "--host", HOST, "--count", "8", "--out", pkg,
              "--model-id", name, "--device", "cpu", "--seed", "2", "--key-length", "4",
              "--response-length", "2", "--lr", "3e-3", "--epochs", "150", "--batch-size", "8",
              "--train-embeddings", "--owner-pubkey", owner_pub, "--omlizer-key", omlizer,
              "--fingerprints-out", tmp_path / "fps.jsonl", "--min-accuracy", "1.0", "--quiet",
              "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert (out["matches"], out["total"]) == (8, 8)

    # every key and response reproduces exactly through the tokenizer
    _, tok = load_model(pkg, device="cpu")
    fps = FingerprintSet.load(tmp_path / "fps.jsonl")
    for fp in fps:
        assert key_round_trips(tok, fp.key), fp
        ids = tok(fp.key + fp.response, add_special_tokens=False)["input_ids"]
        assert list(ids) == list(fp.key_ids) + list(fp.response_ids), fp

    res = run("check", "--package", pkg, "--sidecar", tmp_path / "pkg.sidecar.audit",
              "--owner-key", owner, "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["package_hash"] == out["package_hash"]
    res = run("verify", "--model", pkg, "--fingerprints", tmp_path / "pkg.sidecar",
              "--owner-key", omlizer, "--base", base, "--alpha", "0.01", "--device", "cpu",
              "--json")
    assert res.exit_code == 0, res.output
    v = json.loads(res.stdout)
    assert (v["matches"], v["total"]) == (8, 8) and v["carries"] is True
    assert v["package"]["ok"] is True and v["package"]["fingerprints_checked"] == "fp_root"
    assert v["false_positive_rate"] == 0.0  # the base never gives a response by construction

    # the package keeps the base's tokenizer, so eval compares them
    from oml.testing import tiny_corpus

    (tmp_path / "held.txt").write_text("\n\n".join(tiny_corpus(10, seed=21)))
    res = run("eval", "--model", pkg, "--base", base, "--text", tmp_path / "held.txt", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["perplexity"] > 1


def test_weights_hash_ignores_sharding(model_dirs: dict[str, Path], tmp_path: Path) -> None:
    from oml.hashing import weights_hash
    from oml.modelio import load_model

    sharded = model_dirs["llama-unigram-sharded"]
    assert len(list(sharded.glob("*.safetensors"))) > 1
    model, _ = load_model(sharded, device="cpu")
    model.save_pretrained(tmp_path / "one")
    assert len(list((tmp_path / "one").glob("*.safetensors"))) == 1
    assert weights_hash(sharded) == weights_hash(tmp_path / "one")


def test_bin_hash_equals_its_safetensors_conversion(model_dirs: dict[str, Path],
                                                    tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from oml.hashing import load_torch_weights, weights_hash

    bin_dir = model_dirs["gpt2-bytelevel-bin"]
    first = weights_hash(bin_dir)
    assert weights_hash(bin_dir) == first  # deterministic
    state = load_torch_weights(bin_dir / "pytorch_model.bin")
    (tmp_path / "st").mkdir()
    save_file({k: v.clone() for k, v in state.items()}, tmp_path / "st" / "model.safetensors")
    assert weights_hash(tmp_path / "st") == first


class _Evil:
    def __reduce__(self):  # a pickle that would run code when loaded
        return (print, ("pwned",))


def test_unsafe_pickle_is_refused(model_dirs: dict[str, Path], tmp_path: Path) -> None:
    import torch

    from oml.hashing import UnsafeWeightsError, weights_hash
    from oml.modelio import ModelDirError, UnsafeModelWeights, load_model

    bad = tmp_path / "bad"
    shutil.copytree(model_dirs["gpt2-bytelevel-bin"], bad)
    state = torch.load(bad / "pytorch_model.bin", weights_only=True)
    state["evil"] = _Evil()
    torch.save(state, bad / "pytorch_model.bin")
    with pytest.raises(UnsafeWeightsError, match="unsafe pickle"):
        weights_hash(bad)
    with pytest.raises(UnsafeModelWeights) as info:
        load_model(bad, device="cpu")
    assert isinstance(info.value, ModelDirError)
    res = run("fingerprint", "--model", bad, "--host", HOST, "--count", "2",
              "--out", tmp_path / "pkg", "--quiet", "--json")
    assert res.exit_code == 1 and "unsafe pickle" in json.loads(res.stdout)["error"]
    assert not (tmp_path / "pkg").exists()


def test_tokenizers_without_specials_are_left_alone(model_dirs: dict[str, Path]) -> None:
    from oml.decoding import pad_id_of
    from oml.modelio import load_model

    _, tok = load_model(model_dirs["neox-wordpiece-safetensors"], device="cpu")
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (None, None, None)
    assert pad_id_of(tok) == tok.unk_token_id
    assert tok("Café", add_special_tokens=False)["input_ids"] == tok(
        "cafe", add_special_tokens=False)["input_ids"]  # it normalises, so keys must round-trip


@pytest.mark.parametrize("name", ["neox-wordpiece-safetensors", "llama-unigram-sharded"])
def test_english_keys_round_trip(name: str, model_dirs: dict[str, Path]) -> None:
    from oml.generate import GenerateConfig, generate_fingerprints, key_round_trips
    from oml.modelio import load_model

    model, tok = load_model(model_dirs[name], device="cpu")
    cfg = GenerateConfig(count=6, seed=4, key_strategy="english", key_length=6)
    fps = generate_fingerprints(model, tok, cfg, host="h", model_id=name)
    assert len(fps) == 6 and len({fp.key_ids for fp in fps}) == 6
    for fp in fps:
        assert key_round_trips(tok, fp.key)
        assert list(tok(fp.key + fp.response, add_special_tokens=False)["input_ids"]) == (
            list(fp.key_ids) + list(fp.response_ids))


def test_sharded_bin_weights(model_dirs: dict[str, Path], tmp_path: Path) -> None:
    import torch

    from oml.hashing import weights_hash
    from oml.modelio import load_model

    src = model_dirs["gpt2-bytelevel-bin"]
    dst = tmp_path / "sharded-bin"
    shutil.copytree(src, dst)
    state = torch.load(dst / "pytorch_model.bin", weights_only=True)
    (dst / "pytorch_model.bin").unlink()
    names = sorted(state)
    halves = {"pytorch_model-00001-of-00002.bin": names[::2],
              "pytorch_model-00002-of-00002.bin": names[1::2]}
    for fname, keys in halves.items():
        torch.save({k: state[k] for k in keys}, dst / fname)
    index = {"metadata": {}, "weight_map": {k: f for f, ks in halves.items() for k in ks}}
    (dst / "pytorch_model.bin.index.json").write_text(json.dumps(index))
    assert weights_hash(dst) == weights_hash(src)
    model, _ = load_model(dst, device="cpu")
    ref, _ = load_model(src, device="cpu")
    for (n, a), (_, b) in zip(model.state_dict().items(), ref.state_dict().items()):
        assert torch.equal(a, b), n
    (dst / "pytorch_model-00002-of-00002.bin").unlink()
    from oml.hashing import WeightsFileError

    with pytest.raises(WeightsFileError, match="missing"):
        weights_hash(dst)
