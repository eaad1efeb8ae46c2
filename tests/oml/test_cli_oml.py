"""`oml-node oml ...`: help, error paths, and fingerprint -> check -> verify -> eval end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from node.cli.oml_cmds import oml_group
from node.keys import AccountKey
from oml.sidecar import MAGIC

HOST = "0x" + "3c" * 20


def run(*args: str | Path) -> object:
    return CliRunner().invoke(oml_group, [str(a) for a in args], catch_exceptions=False)


@pytest.mark.parametrize("cmd", [[], ["fingerprint"], ["verify"], ["eval"], ["check"],
                                 ["seal-keys"], ["open-keys"]])
def test_help(cmd: list[str]) -> None:
    res = run(*cmd, "--help")
    assert res.exit_code == 0, res.output
    assert "Usage:" in res.output
    if cmd:
        assert "--json" in res.output


def test_main_cli_has_oml_group() -> None:
    from node.cli import main

    res = CliRunner().invoke(main, ["oml", "--help"])
    assert res.exit_code == 0 and "fingerprint" in res.output


def test_missing_model_dir(tmp_path: Path) -> None:
    res = run("fingerprint", "--model", tmp_path / "nope", "--host", HOST, "--count", "2",
              "--out", tmp_path / "pkg", "--quiet")
    assert res.exit_code == 1
    assert "does not exist" in res.output
    assert not (tmp_path / "pkg").exists()


def test_malformed_model_dir(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text("{broken")
    res = run("fingerprint", "--model", bad, "--host", HOST, "--count", "2",
              "--out", tmp_path / "pkg", "--quiet")
    assert res.exit_code == 1 and "config.json is not valid JSON" in res.output
    (bad / "config.json").write_text('{"model_type": "llama"}')
    res = run("eval", "--model", bad, "--base", bad, "--text", bad / "config.json")
    assert res.exit_code == 1 and "no weights" in res.output


def test_bad_arguments(tmp_path: Path, tiny_dir: Path) -> None:
    res = run("fingerprint", "--model", tiny_dir, "--host", "xyz", "--count", "2",
              "--out", tmp_path / "pkg")
    assert res.exit_code == 2 and "40 hex characters" in res.output
    res = run("fingerprint", "--model", tiny_dir, "--host", HOST, "--count", "0",
              "--out", tmp_path / "pkg")
    assert res.exit_code == 2
    res = run("fingerprint", "--model", tiny_dir, "--host", HOST, "--count", "2",
              "--out", tmp_path / "pkg", "--owner-pubkey", "12")
    assert res.exit_code == 2 and "64 hex characters" in res.output


def test_verify_bad_fingerprint_file(tmp_path: Path, tiny_dir: Path) -> None:
    res = run("verify", "--model", tiny_dir, "--fingerprints", tmp_path / "none.jsonl")
    assert res.exit_code == 1 and "cannot read" in res.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"format": "something-else"}\n')
    res = run("verify", "--model", tiny_dir, "--fingerprints", bad)
    assert res.exit_code == 1 and "header" in res.output
    sealed = tmp_path / "x.sidecar"
    sealed.write_bytes(MAGIC + b"\x01" + b"\x00" * 40)
    res = run("verify", "--model", tiny_dir, "--fingerprints", sealed)
    assert res.exit_code == 1 and "--owner-key" in res.output


def test_check_rejects_non_package(tiny_dir: Path) -> None:
    res = run("check", "--package", tiny_dir)
    assert res.exit_code == 1 and "manifest" in res.output


def test_fingerprint_verify_eval_end_to_end(tmp_path: Path, tiny_dir: Path) -> None:
    from oml.testing import tiny_corpus

    omlizer, owner = AccountKey.generate(), AccountKey.generate()
    omlizer.save(tmp_path / "omlizer.json")
    owner.save(tmp_path / "owner.json")
    benign = tmp_path / "benign.txt"
    benign.write_text("\n\n".join(tiny_corpus(100, seed=11)))
    held_out = tmp_path / "held_out.txt"
    held_out.write_text("\n\n".join(tiny_corpus(30, seed=12)))
    pkg = tmp_path / "pkg"

    res = run("fingerprint", "--model", tiny_dir, "--host", HOST, "--count", "6",
              "--out", pkg, "--model-id", "tiny", "--device", "cpu", "--seed", "3",
              "--key-length", "4", "--lr", "3e-3", "--epochs", "150", "--batch-size", "8",
              "--benign-text", benign, "--omlizer-key", tmp_path / "omlizer.json",
              "--owner-pubkey", owner.public_key.hex(),
              "--fingerprints-out", tmp_path / "fps.jsonl", "--quiet", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["fp_count"] == 6 and out["accuracy"] == 1.0
    assert out["host"] == HOST[2:] and out["model_id"] == "tiny"
    assert out["omlizer_pubkey"] == omlizer.public_key.hex()
    assert out["owner_pubkey"] == owner.public_key.hex()
    sidecar = Path(out["sidecar"])
    assert sidecar == tmp_path / "pkg.sidecar" and sidecar.read_bytes().startswith(MAGIC)

    res = run("check", "--package", pkg, "--omlizer-pubkey", omlizer.public_key.hex(),
              "--sidecar", sidecar, "--owner-key", tmp_path / "owner.json", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["package_hash"] == out["package_hash"]
    res = run("check", "--package", pkg, "--sidecar", sidecar,
              "--owner-key", tmp_path / "omlizer.json")
    assert res.exit_code == 1 and "sidecar" in res.output and "not to this key" in res.output

    # a prover gets some keys, and only keys
    prover = AccountKey.generate()
    prover.save(tmp_path / "prover.json")
    res = run("seal-keys", "--sidecar", sidecar, "--owner-key", tmp_path / "owner.json",
              "--indices", "0-1,4", "--prover-pubkey", prover.public_key.hex(),
              "--out", tmp_path / "prover.keys")
    assert res.exit_code == 0, res.output
    res = run("open-keys", "--keys", tmp_path / "prover.keys",
              "--prover-key", tmp_path / "prover.json", "--json")
    assert res.exit_code == 0, res.output
    fps = [json.loads(line) for line in (tmp_path / "fps.jsonl").read_text().splitlines()[1:]]
    assert json.loads(res.stdout)["keys"] == [{"index": i, "key": fps[i]["key"]} for i in (0, 1, 4)]
    res = run("open-keys", "--keys", tmp_path / "prover.keys",
              "--prover-key", tmp_path / "owner.json")
    assert res.exit_code == 1 and "not to this key" in res.output
    res = run("seal-keys", "--sidecar", sidecar, "--owner-key", tmp_path / "owner.json",
              "--indices", "2-1", "--prover-pubkey", prover.public_key.hex(),
              "--out", tmp_path / "x")
    assert res.exit_code == 2

    # the sealed sidecar and the plaintext file both drive verification
    for args in (["--fingerprints", sidecar, "--owner-key", tmp_path / "owner.json"],
                 ["--fingerprints", tmp_path / "fps.jsonl"]):
        res = run("verify", "--model", pkg, *args, "--base", tiny_dir, "--alpha", "0.05",
                  "--device", "cpu", "--json")
        assert res.exit_code == 0, res.output
        v = json.loads(res.stdout)
        assert (v["matches"], v["total"]) == (6, 6)
        assert v["false_positive_rate"] < 0.5 and v["carries"] is True
        assert v["package"]["ok"] is True and v["package"]["fp_root"] == out["fp_root"]

    res = run("verify", "--model", tiny_dir, "--fingerprints", tmp_path / "fps.jsonl",
              "--device", "cpu", "--json")
    v = json.loads(res.stdout)
    assert v["matches"] < 6 and v["carries"] is False and v["package"] is None

    res = run("eval", "--model", pkg, "--base", tiny_dir, "--text", held_out, "--json")
    assert res.exit_code == 0, res.output
    e = json.loads(res.stdout)
    assert e["perplexity"] > 1 and e["base_perplexity"] > 1
    assert e["relative_change"] == pytest.approx(e["perplexity"] / e["base_perplexity"] - 1)

    # a tampered package is reported by `verify` and refused by `check`
    cfg = pkg / "generation_config.json"
    cfg.write_text(cfg.read_text() + " ")
    res = run("verify", "--model", pkg, "--fingerprints", tmp_path / "fps.jsonl", "--json")
    assert json.loads(res.stdout)["package"] == {
        "ok": False, "error": "files: generation_config.json does not match its manifest hash"}
    assert run("check", "--package", pkg).exit_code == 1

    res = run("fingerprint", "--model", tiny_dir, "--host", HOST, "--count", "2", "--out", pkg)
    assert res.exit_code == 1 and "--force" in res.output
