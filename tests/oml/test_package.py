"""OML package: signed manifest, layout-free weights hash, sealed sidecar, prover subsets."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import nacl.signing
import pytest

from oml.commitments import leaf_hash_text, verify_path
from oml.fingerprints import FingerprintSet
from oml.hashing import WeightsFileError, weights_hash
from oml.manifest import Manifest
from oml.package import (
    audit_path,
    build_package,
    default_sidecar_path,
    read_manifest,
    verify_package,
)
from oml.package_errors import (
    CommitmentMismatch,
    FileMismatch,
    ManifestError,
    PackageError,
    PackageInputError,
    SidecarError,
    SignatureError,
    WeightsMismatch,
)
from oml.sidecar import (
    AuditEntry,
    OwnerAudit,
    SecretEntry,
    Secrets,
    open_owner_audit,
    open_prover_keys,
    open_secrets,
    seal_prover_keys,
    seal_secrets,
)

HOST = "ab" * 20
MODEL_ID = "tiny-llama"


def _keys() -> tuple[bytes, bytes, bytes, bytes]:
    omlizer = nacl.signing.SigningKey(b"\x01" * 32)
    owner = nacl.signing.SigningKey(b"\x02" * 32)
    return bytes(omlizer), bytes(omlizer.verify_key), bytes(owner), bytes(owner.verify_key)


def _salts():
    """A deterministic salt source for reproducible tests (real use: os.urandom)."""
    counter = iter(range(10**6))
    return lambda n: bytes([next(counter) % 256]) * n


@pytest.fixture(scope="module")
def host_fps(fpset: FingerprintSet) -> FingerprintSet:
    """The session's fingerprints, re-labelled for a hex host address."""
    return FingerprintSet(host=HOST, model_id=MODEL_ID, seed=fpset.seed, params=fpset.params,
                          items=fpset.items)


@pytest.fixture(scope="module")
def built(tiny_dir: Path, host_fps: FingerprintSet, tmp_path_factory: pytest.TempPathFactory):
    """A package of the tiny model with one weight nudged (standing in for insertion,
    which the format does not care about and which test_insert covers)."""
    import torch

    from oml.modelio import load_model

    model, tok = load_model(tiny_dir, device="cpu")
    with torch.no_grad():
        model.get_input_embeddings().weight[0, 0] += 0.5
    oz_seed, _, _, owner_pub = _keys()
    out = tmp_path_factory.mktemp("pkg") / "package"
    return build_package(model, tok, host_fps, out, model_id=MODEL_ID, host=HOST,
                         base_hash=weights_hash(tiny_dir), omlizer_key_seed=oz_seed,
                         owner_pubkey=owner_pub, params={"insert": {"lr": 3e-3}},
                         random_bytes=_salts())


@pytest.fixture()
def pkg(built, tmp_path: Path) -> Path:
    """A private copy of the built package that a test may tamper with."""
    dst = tmp_path / "package"
    shutil.copytree(built.path, dst)
    return dst


def test_package_verifies_and_loads(built, tiny_dir: Path, tmp_path: Path) -> None:
    from oml.modelio import load_model

    oz_seed, oz_pub, owner_seed, owner_pub = _keys()
    sealed = default_sidecar_path(built.path).read_bytes()
    assert sealed == built.sealed_sidecar
    m = verify_package(built.path, oz_pub, sidecar=sealed, owner_seed=oz_seed)
    assert m == built.manifest
    audit = audit_path(default_sidecar_path(built.path)).read_bytes()
    assert audit == built.sealed_audit
    assert verify_package(built.path, oz_pub, sidecar=audit, owner_seed=owner_seed) == m
    assert (m.model_id, m.host.hex(), m.fp_count) == (MODEL_ID, HOST, 6)
    assert m.base_weights_hash == weights_hash(tiny_dir) != m.weights_hash
    model, _ = load_model(built.path, device="cpu")  # the package is a normal model dir
    assert model.config.model_type == "llama"
    model.save_pretrained(tmp_path / "resaved", max_shard_size="100KB")
    assert len(list((tmp_path / "resaved").glob("*.safetensors"))) > 1
    assert m.weights_hash == weights_hash(tmp_path / "resaved")  # layout does not matter
    assert m.owner_pubkey == owner_pub and m.params == {"insert": {"lr": 3e-3}}
    assert set(m.files) >= {"config.json", "model.safetensors", "tokenizer.json"}
    assert not any(p.name.endswith(".sidecar") for p in built.path.iterdir())


def test_sidecar_opens_the_ledger_commitment(built) -> None:
    """Each entry reveals a leaf that a ledger can check against fp_root alone."""
    oz_seed, _, _, _ = _keys()
    secrets = open_secrets(built.sealed_sidecar, oz_seed)
    m = built.manifest
    assert [e.key for e in secrets.entries] == [fp.key for fp in built.secrets.entries]
    assert len({e.salt for e in secrets.entries}) == len(secrets.entries)
    for e in secrets.entries:
        assert len(e.salt) == 32
        leaf = leaf_hash_text(MODEL_ID.encode(), bytes.fromhex(HOST), e.index, e.salt,
                              e.key, e.response)
        assert verify_path(leaf, e.index, m.fp_count, e.path, m.fp_root)
        wrong = leaf_hash_text(MODEL_ID.encode(), bytes.fromhex(HOST), e.index, e.salt,
                               e.key, e.response + "x")
        assert not verify_path(wrong, e.index, m.fp_count, e.path, m.fp_root)


def test_expected_omlizer_is_enforced(built) -> None:
    other = bytes(nacl.signing.SigningKey(b"\x09" * 32).verify_key)
    with pytest.raises(SignatureError, match="expected"):
        verify_package(built.path, other)


@pytest.mark.parametrize("field,value", [
    ("fp_root", "00" * 32), ("fp_count", 7), ("host", "cd" * 20), ("model_id", "other"),
    ("weights_hash", "11" * 32), ("params", {"insert": {"lr": 1.0}}),
])
def test_tampered_manifest_is_rejected(pkg: Path, field: str, value: object) -> None:
    path = pkg / "manifest.json"
    data = json.loads(path.read_text())
    data[field] = value
    path.write_text(json.dumps(data))
    with pytest.raises(SignatureError) as info:
        verify_package(pkg)
    assert info.value.part == "signature"


def test_reformatted_manifest_still_verifies(pkg: Path, built) -> None:
    path = pkg / "manifest.json"
    path.write_text(json.dumps(json.loads(path.read_text()), indent=7))
    m = verify_package(pkg)
    assert m.package_hash() == built.manifest.package_hash()


@pytest.mark.parametrize("content,match", [
    (None, "missing"), ("{not json", "not JSON"), ("[1, 2]", "not a JSON object"),
])
def test_malformed_manifest(pkg: Path, content: str | None, match: str) -> None:
    path = pkg / "manifest.json"
    if content is None:
        path.unlink()
    else:
        path.write_text(content)
    with pytest.raises(ManifestError, match=match):
        verify_package(pkg)


def test_manifest_fields_are_checked(pkg: Path) -> None:
    path = pkg / "manifest.json"
    good = json.loads(path.read_text())
    for change, match in [({"extra": 1}, "unknown fields"), ({"fp_count": 0}, "fp_count"),
                          ({"host": "zz"}, "host"), ({"files": {"../x": "00" * 32}}, "file name"),
                          ({"format": "oml-package/v0"}, "format")]:
        path.write_text(json.dumps({**good, **change}))
        with pytest.raises(ManifestError, match=match):
            verify_package(pkg)
    del good["signature"]
    path.write_text(json.dumps(good))
    with pytest.raises(ManifestError, match="missing fields: signature"):
        verify_package(pkg)


def _flip_tensor_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    (size,) = struct.unpack("<Q", data[:8])
    data[8 + size + 100] ^= 0x01  # inside the first tensor's data
    path.write_bytes(bytes(data))


def test_tampered_weights_are_rejected(pkg: Path) -> None:
    _flip_tensor_byte(pkg / "model.safetensors")
    with pytest.raises(WeightsMismatch) as info:
        verify_package(pkg)
    assert info.value.part == "weights"


@pytest.mark.parametrize("action", ["edit_tokenizer", "edit_config", "remove", "add"])
def test_tampered_files_are_rejected(pkg: Path, action: str) -> None:
    if action == "edit_tokenizer":
        tj = pkg / "tokenizer.json"
        tj.write_text(tj.read_text().replace('"', '"', 1) + " ")
    elif action == "edit_config":
        cfg = pkg / "config.json"
        cfg.write_text(cfg.read_text().replace("silu", "gelu"))
    elif action == "remove":
        (pkg / "tokenizer.json").unlink()
    else:
        (pkg / "extra.bin").write_bytes(b"x")
    with pytest.raises(FileMismatch) as info:
        verify_package(pkg)
    assert info.value.part == "files"


def test_secrets_open_only_with_the_omlizer_key(built) -> None:
    oz_seed, _, owner_seed, owner_pub = _keys()
    with pytest.raises(SidecarError, match="not to this key"):
        open_secrets(built.sealed_sidecar, owner_seed)  # the owner cannot open them
    # forging the clear-text recipient does not help: decryption still fails
    forged = built.sealed_sidecar[:9] + owner_pub + built.sealed_sidecar[41:]
    with pytest.raises(SidecarError, match="does not decrypt"):
        open_secrets(forged, owner_seed)
    tampered = bytearray(built.sealed_sidecar)
    tampered[-5] ^= 0xFF
    with pytest.raises(SidecarError, match="does not decrypt"):
        open_secrets(bytes(tampered), oz_seed)
    with pytest.raises(SidecarError, match="bad magic"):
        open_secrets(b"garbage" * 10, oz_seed)
    with pytest.raises(SidecarError):
        verify_package(built.path, sidecar=bytes(tampered), owner_seed=oz_seed)


def test_the_owner_audit_sidecar_holds_no_responses(built) -> None:
    """The owner is paid from slashes, so it must not hold responses (or salts, which
    would let it brute-force short responses against the leaves): its audit holds keys,
    leaf hashes and paths, enough to check fp_root and to probe its hosts."""
    oz_seed, _, owner_seed, owner_pub = _keys()
    audit = open_owner_audit(built.sealed_audit, owner_seed)
    plain = json.dumps(audit.to_json())
    for e in built.secrets.entries:
        assert e.salt.hex() not in plain
        assert e.response not in plain or e.response in e.key
    assert [a.key for a in audit.entries] == [e.key for e in built.secrets.entries]
    assert [a.leaf for a in audit.entries] == built.secrets.leaves()
    audit.check(built.manifest)
    with pytest.raises(SidecarError, match="expected fingerprint secrets, found owner audit"):
        open_secrets(built.sealed_audit, owner_seed)
    with pytest.raises(SidecarError, match="not to this key"):
        open_owner_audit(built.sealed_audit, oz_seed)
    # a forged audit (resealed to the owner: anyone can) does not reach fp_root
    bad = OwnerAudit(model_id=audit.model_id, host=audit.host, entries=(
        AuditEntry(index=0, key="k", leaf=b"\x00" * 32, path=audit.entries[0].path),)
        + audit.entries[1:])
    forged = _seal_audit_json(bad, owner_pub)
    with pytest.raises(CommitmentMismatch, match="fingerprint 0"):
        verify_package(built.path, sidecar=forged, owner_seed=owner_seed)
    # the toolkit refuses to treat it as something to reveal or verify from
    from oml.package import load_sidecar
    path = audit_path(default_sidecar_path(built.path))
    with pytest.raises(SidecarError, match="no responses"):
        load_sidecar(path, owner_seed)
    # the owner can still hand keys (only keys) to a prover
    prover = nacl.signing.SigningKey(b"\x06" * 32)
    keys = open_prover_keys(seal_prover_keys(audit, [2], bytes(prover.verify_key)),
                            bytes(prover))
    assert keys.keys == ((2, built.secrets.entries[2].key),)


def _seal_audit_json(audit: OwnerAudit, recipient: bytes) -> bytes:
    from oml.sidecar import KIND_AUDIT, _seal
    return _seal(KIND_AUDIT, audit.to_json(), recipient)


def test_resealed_forged_sidecar_fails_commitment(built) -> None:
    """Anyone can seal to the owner's public key; fp_root is what makes secrets authentic."""
    _, _, owner_seed, owner_pub = _keys()
    real = built.secrets
    first = real.entries[0]
    forged_entry = SecretEntry(index=0, key=first.key, response=first.response + " x",
                               salt=first.salt, path=first.path)
    forged = Secrets(model_id=real.model_id, host=real.host,
                     entries=(forged_entry,) + real.entries[1:])
    with pytest.raises(CommitmentMismatch, match="fingerprint 0"):
        verify_package(built.path, sidecar=seal_secrets(forged, owner_pub), owner_seed=owner_seed)
    short = Secrets(model_id=real.model_id, host=real.host, entries=real.entries[:-1])
    with pytest.raises(CommitmentMismatch, match="secrets for a commitment"):
        verify_package(built.path, secrets=short)
    other_host = Secrets(model_id=real.model_id, host=b"\xcd" * 20, entries=real.entries)
    with pytest.raises(CommitmentMismatch, match="another model or host"):
        verify_package(built.path, secrets=other_host)


def test_prover_subset_holds_only_keys(built) -> None:
    _, _, owner_seed, _ = _keys()
    prover = nacl.signing.SigningKey(b"\x05" * 32)
    sealed = seal_prover_keys(built.secrets, [3, 1], bytes(prover.verify_key))
    keys = open_prover_keys(sealed, bytes(prover))
    assert keys.keys == ((1, built.secrets.entries[1].key), (3, built.secrets.entries[3].key))
    assert (keys.model_id, keys.host.hex()) == (MODEL_ID, HOST)
    for e in built.secrets.entries:  # no response or salt is inside the plaintext
        assert e.response not in json.dumps(keys.to_json()) or e.response in e.key
        assert e.salt.hex() not in json.dumps(keys.to_json())
    with pytest.raises(SidecarError, match="not to this key"):
        open_prover_keys(sealed, owner_seed)
    with pytest.raises(SidecarError, match="expected fingerprint secrets"):
        open_secrets(sealed, bytes(prover))
    with pytest.raises(PackageInputError, match="no fingerprint 6"):
        seal_prover_keys(built.secrets, [6], bytes(prover.verify_key))
    with pytest.raises(PackageInputError, match="repeated"):
        seal_prover_keys(built.secrets, [1, 1], bytes(prover.verify_key))


def test_build_rejects_bad_input(built, host_fps: FingerprintSet, tmp_path: Path) -> None:
    from oml.modelio import load_model

    model, tok = load_model(built.path, device="cpu")
    oz_seed, _, _, owner_pub = _keys()
    kw = {"model_id": MODEL_ID, "host": HOST, "base_hash": b"\x00" * 32,
          "omlizer_key_seed": oz_seed, "owner_pubkey": owner_pub}
    with pytest.raises(PackageInputError, match="exists"):
        build_package(model, tok, host_fps, built.path, **kw)
    with pytest.raises(PackageInputError, match="20-byte"):
        build_package(model, tok, host_fps, tmp_path / "a", **{**kw, "host": "abcd"})
    with pytest.raises(PackageInputError, match="generated for host"):
        build_package(model, tok, host_fps, tmp_path / "b", **{**kw, "host": "cd" * 20})
    with pytest.raises(PackageInputError, match="inside the package"):
        build_package(model, tok, host_fps, tmp_path / "c", sidecar_path=tmp_path / "c" / "s",
                      **kw)
    assert not any(tmp_path.iterdir())  # nothing half-written
    assert issubclass(PackageInputError, PackageError)


def test_weights_hash_ignores_layout(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    a = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    b = torch.ones(5, dtype=torch.bfloat16)
    (tmp_path / "one").mkdir()
    save_file({"a": a, "b": b}, tmp_path / "one" / "model.safetensors", metadata={"x": "1"})
    (tmp_path / "two").mkdir()
    save_file({"b": b}, tmp_path / "two" / "model-00001-of-00002.safetensors")
    save_file({"a": a}, tmp_path / "two" / "model-00002-of-00002.safetensors")
    h = weights_hash(tmp_path / "one")
    assert h == weights_hash(tmp_path / "two")
    for name, tensors in [("value", {"a": a + 1, "b": b}), ("dtype", {"a": a.double(), "b": b}),
                          ("shape", {"a": a.reshape(4, 3), "b": b}),
                          ("name", {"a2": a, "b": b})]:
        (tmp_path / name).mkdir()
        save_file(tensors, tmp_path / name / "model.safetensors")
        assert weights_hash(tmp_path / name) != h, name
    save_file({"a": a}, tmp_path / "two" / "dup.safetensors")
    with pytest.raises(WeightsFileError, match="two weight files"):
        weights_hash(tmp_path / "two")
    with pytest.raises(WeightsFileError, match="no \\*.safetensors"):
        weights_hash(tmp_path)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "model.safetensors").write_bytes(b"\x05")
    with pytest.raises(WeightsFileError, match="too short"):
        weights_hash(tmp_path / "bad")


def test_read_manifest_of_non_package(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="not a directory"):
        read_manifest(tmp_path / "nope")
    with pytest.raises(ManifestError, match="missing"):
        Manifest.load(tmp_path / "manifest.json")


def test_package_names_are_exported_lazily() -> None:
    import subprocess
    import sys

    code = ("import sys, oml; assert 'nacl' not in sys.modules and 'torch' not in sys.modules; "
            "from oml import build_package, verify_package, Manifest, PackageError, "
            "seal_prover_keys, weights_hash, load_corpus; assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 13, 64, 100])
def test_all_paths_equal_merkle_path(n: int) -> None:
    from oml.commitments import merkle_path
    from oml.sidecar import _all_paths

    leaves = [bytes([i % 256, i // 256]) * 16 for i in range(n)]
    assert _all_paths(leaves) == [merkle_path(leaves, i) for i in range(n)]
