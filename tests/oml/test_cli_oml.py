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
    sidecar, audit = Path(out["sidecar"]), Path(out["audit"])
    assert sidecar == tmp_path / "pkg.sidecar" and sidecar.read_bytes().startswith(MAGIC)
    assert audit == tmp_path / "pkg.sidecar.audit" and audit.read_bytes().startswith(MAGIC)

    # the secrets are sealed to the OMLizer (it reveals), the audit to the owner
    for side, key in ((sidecar, "omlizer.json"), (audit, "owner.json")):
        res = run("check", "--package", pkg, "--omlizer-pubkey", omlizer.public_key.hex(),
                  "--sidecar", side, "--owner-key", tmp_path / key, "--json")
        assert res.exit_code == 0, res.output
        assert json.loads(res.stdout)["package_hash"] == out["package_hash"]
        assert json.loads(res.stdout)["sidecar_checked"] is True
    res = run("check", "--package", pkg, "--sidecar", sidecar,
              "--owner-key", tmp_path / "owner.json")
    assert res.exit_code == 1 and "sidecar" in res.output and "not to this key" in res.output

    # a prover gets some keys, and only keys (from the OMLizer's secrets or the owner's audit)
    prover = AccountKey.generate()
    prover.save(tmp_path / "prover.json")
    res = run("seal-keys", "--sidecar", audit, "--owner-key", tmp_path / "owner.json",
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
    res = run("seal-keys", "--sidecar", sidecar, "--owner-key", tmp_path / "omlizer.json",
              "--indices", "2", "--prover-pubkey", prover.public_key.hex(),
              "--out", tmp_path / "prover2.keys")
    assert res.exit_code == 0, res.output
    res = run("seal-keys", "--sidecar", sidecar, "--owner-key", tmp_path / "omlizer.json",
              "--indices", "2-1", "--prover-pubkey", prover.public_key.hex(),
              "--out", tmp_path / "x")
    assert res.exit_code == 2

    # the owner's audit holds no responses: it cannot drive verification
    res = run("verify", "--model", pkg, "--fingerprints", audit,
              "--owner-key", tmp_path / "owner.json", "--device", "cpu")
    assert res.exit_code == 1 and "no responses" in res.output

    # the sealed sidecar and the plaintext file both drive verification
    for args in (["--fingerprints", sidecar, "--owner-key", tmp_path / "omlizer.json"],
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
        "ok": False, "error": "files: generation_config.json does not match its manifest hash",
        "fingerprints_checked": "host, model_id, count"}
    assert run("check", "--package", pkg).exit_code == 1

    res = run("fingerprint", "--model", tiny_dir, "--host", HOST, "--count", "2", "--out", pkg)
    assert res.exit_code == 1 and "--force" in res.output


# --- toolkit honesty (issue 9, item 6) ------------------------------------------------

@pytest.fixture(scope="module")
def cli_pkg(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One package built by `oml fingerprint`, with its owner key and clear-text fingerprints."""
    d = tmp_path_factory.mktemp("cli_pkg")
    owner, omlizer = AccountKey.generate(), AccountKey.generate()
    owner.save(d / "owner.json")
    omlizer.save(d / "omlizer.json")
    res = run("fingerprint", "--model", tiny_dir, "--host", HOST, "--count", "4",
              "--out", d / "pkg", "--model-id", "tiny", "--device", "cpu", "--seed", "5",
              "--key-length", "4", "--lr", "3e-3", "--epochs", "150", "--batch-size", "8",
              "--owner-pubkey", owner.public_key.hex(), "--omlizer-key", d / "omlizer.json",
              "--fingerprints-out", d / "fps.jsonl", "--quiet", "--json")
    assert res.exit_code == 0, res.output
    return {"dir": d, "pkg": d / "pkg", "sidecar": d / "pkg.sidecar", "fps": d / "fps.jsonl",
            "owner": d / "owner.json", "omlizer": d / "omlizer.json",
            "audit": d / "pkg.sidecar.audit"}


def test_secret_files_are_owner_only(cli_pkg: dict[str, Path]) -> None:
    for name in ("fps", "sidecar", "audit"):
        assert cli_pkg[name].stat().st_mode & 0o777 == 0o600, name
    prover = AccountKey.generate()
    out = cli_pkg["dir"] / "prover.keys"
    args = ["seal-keys", "--sidecar", cli_pkg["sidecar"], "--owner-key", cli_pkg["omlizer"],
            "--indices", "0-1", "--prover-pubkey", prover.public_key.hex(), "--out", out]
    assert run(*args).exit_code == 0
    assert out.stat().st_mode & 0o777 == 0o600
    before = out.read_bytes()
    res = run(*args, "--json")
    assert res.exit_code == 1 and json.loads(res.stdout)["error"].endswith(
        "exists; pass --force to replace")
    assert out.read_bytes() == before
    assert run(*args, "--force").exit_code == 0 and out.read_bytes() != before


def test_fingerprint_refuses_existing_outputs_before_training(
        cli_pkg: dict[str, Path], tiny_dir: Path, tmp_path: Path) -> None:
    fps_before = cli_pkg["fps"].read_bytes()
    res = run("fingerprint", "--model", tiny_dir, "--host", HOST, "--count", "2",
              "--out", tmp_path / "new", "--fingerprints-out", cli_pkg["fps"], "--quiet",
              "--json")
    assert res.exit_code == 1
    err = json.loads(res.stdout)
    assert err["ok"] is False and "--force" in err["error"] and err["exit_code"] == 1
    assert cli_pkg["fps"].read_bytes() == fps_before and not (tmp_path / "new").exists()
    res = run("fingerprint", "--model", tiny_dir, "--host", HOST, "--count", "2",
              "--out", tmp_path / "new", "--fingerprints-out", tmp_path / "new" / "f.jsonl")
    assert res.exit_code == 2 and "inside the package" in res.output


def test_fingerprint_fails_below_min_accuracy(tiny_dir: Path, tmp_path: Path) -> None:
    res = run("fingerprint", "--model", tiny_dir, "--host", HOST, "--count", "4",
              "--out", tmp_path / "pkg", "--device", "cpu", "--key-length", "4",
              "--steps", "1", "--lr", "1e-5", "--fingerprints-out", tmp_path / "f.jsonl",
              "--min-accuracy", "1.0", "--quiet", "--json")
    assert res.exit_code == 1
    err = json.loads(res.stdout)
    assert "below --min-accuracy 1" in err["error"] and "/4 fingerprints (" in err["error"]
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written, not even temps


def test_json_errors_on_every_command(tmp_path: Path) -> None:
    nope = tmp_path / "nope"
    cases = [
        ["fingerprint", "--model", nope, "--host", HOST, "--count", "2", "--out", tmp_path / "p"],
        ["fingerprint", "--model", nope, "--host", "xyz", "--count", "2", "--out", tmp_path / "p"],
        ["verify", "--model", nope, "--fingerprints", nope],
        ["eval", "--model", nope, "--base", nope, "--text", nope],
        ["check", "--package", nope],
        ["seal-keys", "--sidecar", nope, "--owner-key", nope, "--indices", "0",
         "--prover-pubkey", "ab" * 32, "--out", tmp_path / "k"],
        ["open-keys", "--keys", nope, "--prover-key", nope],
    ]
    for args in cases:
        res = run(*args, "--json")
        assert res.exit_code in (1, 2), (args, res.output)
        err = json.loads(res.stdout)
        assert err["ok"] is False and err["error"] and err["exit_code"] == res.exit_code
        assert set(err) == {"ok", "error", "error_type", "exit_code"}
    res = run(*cases[1], "--json")
    assert json.loads(res.stdout)["error_type"] == "UsageError"
    res = run(*cases[4], "--json")
    assert json.loads(res.stdout)["error_type"] == "ManifestError"


def test_verify_checks_fingerprints_belong_to_package(cli_pkg: dict[str, Path],
                                                      tmp_path: Path) -> None:
    from oml.fingerprints import FingerprintSet

    fps = FingerprintSet.load(cli_pkg["fps"])
    other = FingerprintSet(host="ab" * 20, model_id=fps.model_id, seed=fps.seed,
                           params=fps.params, items=fps.items)
    other.save(tmp_path / "other.jsonl")
    res = run("verify", "--model", cli_pkg["pkg"], "--fingerprints", tmp_path / "other.jsonl",
              "--device", "cpu", "--json")
    assert res.exit_code == 1
    err = json.loads(res.stdout)
    assert err["error_type"] == "CommitmentMismatch" and "ab" * 20 in err["error"]
    res = run("verify", "--model", cli_pkg["pkg"], "--fingerprints", tmp_path / "other.jsonl",
              "--device", "cpu", "--any-package", "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["package"]["fingerprints_checked"] is None

    renamed = FingerprintSet(host=fps.host, model_id="another-model", seed=fps.seed,
                             params=fps.params, items=fps.items)
    renamed.save(tmp_path / "renamed.jsonl")
    res = run("verify", "--model", cli_pkg["pkg"], "--fingerprints", tmp_path / "renamed.jsonl")
    assert res.exit_code == 1 and "another-model" in res.output

    # a sidecar is checked down to fp_root; one from another package is refused
    res = run("verify", "--model", cli_pkg["pkg"], "--fingerprints", cli_pkg["sidecar"],
              "--owner-key", cli_pkg["omlizer"], "--device", "cpu", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["package"]["fingerprints_checked"] == "fp_root"


def test_eval_refuses_different_tokenizers(tiny_dir: Path, tmp_path: Path) -> None:
    import shutil

    other = tmp_path / "other"
    shutil.copytree(tiny_dir, other)
    tj = json.loads((other / "tokenizer.json").read_text())
    vocab = tj["model"]["vocab"]
    a, b = sorted(vocab, key=vocab.get)[100:102]  # swap two ordinary tokens' ids
    vocab[a], vocab[b] = vocab[b], vocab[a]
    (other / "tokenizer.json").write_text(json.dumps(tj))
    text = tmp_path / "t.txt"
    text.write_text("The cat sat near the door.\n\nA dog is not a cat.\n")
    res = run("eval", "--model", other, "--base", tiny_dir, "--text", text, "--json")
    assert res.exit_code == 1
    err = json.loads(res.stdout)
    assert err["error_type"] == "TokenizerMismatch" and "different tokenizers" in err["error"]
    res = run("eval", "--model", tiny_dir, "--base", tiny_dir, "--text", text, "--json")
    assert res.exit_code == 0, res.output


# --- references (issue 11): siblings of the same base calibrate the verdict -------------------

def test_verify_loose_modes_refuse_an_assumed_rate(siblings: dict[str, dict]) -> None:
    a, b, _ = siblings.values()
    for mode in ("prefix", "contains"):
        res = run("verify", "--model", b["dir"], "--fingerprints", a["file"], "--mode", mode,
                  "--json")
        assert res.exit_code == 2
        err = json.loads(res.stdout)
        assert err["error_type"] == "UsageError" and "--reference" in err["error"]
    res = run("verify", "--model", b["dir"], "--fingerprints", a["file"],
              "--reference", b["dir"], "--json")
    assert res.exit_code == 2 and "must differ" in json.loads(res.stdout)["error"]
    res = run("verify", "--model", b["dir"], "--fingerprints", a["file"], "--device", "cpu",
              "--json")  # exact mode may still assume, and says so
    v = json.loads(res.stdout)
    assert res.exit_code == 0 and v["base_rate_source"] == "assumed" and v["base_rate"] == 0.01
    assert v["references"] == []


def test_verify_sibling_is_not_framed_when_siblings_are_the_reference(
        siblings: dict[str, dict], tiny_dir: Path) -> None:
    """Host A's keys on host B's honest copy: not "carries" with C's copy and the base as
    references; A's own copy, against the same references, is."""
    a, b, c = siblings.values()
    for mode in ("exact", "contains"):
        refs = ["--reference", c["dir"], "--base", tiny_dir]
        res = run("verify", "--model", b["dir"], "--fingerprints", a["file"], "--mode", mode,
                  *refs, "--device", "cpu", "--json")
        assert res.exit_code == 0, res.output
        v = json.loads(res.stdout)
        assert v["carries"] is False and v["base_rate_source"] == "measured"
        assert [(r["name"], r["total"]) for r in v["references"]] == [
            ("base", 16), (str(c["dir"]), 16)]
        assert v["base_rate"] == max(r["upper"] for r in v["references"])
        assert v["false_positive_rate"] == v["references"][0]["rate"]
        res = run("verify", "--model", a["dir"], "--fingerprints", a["file"], "--mode", mode,
                  *refs, "--device", "cpu", "--json")
        v = json.loads(res.stdout)
        assert (v["matches"], v["total"], v["carries"]) == (16, 16, True), v
