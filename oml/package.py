"""Build and verify OML packages.

An OML package is a directory a host can load with ``from_pretrained``:

    out_dir/
        model.safetensors (or shards), config.json, generation_config.json,
        tokenizer files ...          the fingerprinted model, as transformers saves it
        manifest.json                signed by the OMLizer (see :mod:`oml.manifest`)

and, kept apart from it because the host must never see it, a sealed secret
sidecar (see :mod:`oml.sidecar`) for the OMLizer, which reveals leaves on
the ledger, and an audit sidecar for the model owner (keys, leaf hashes and
paths: no responses, no salts; docs/threat-model.md). :func:`build_package`
writes the directory and both sidecars and returns their bytes;
:func:`verify_package` checks a directory (and, given a sidecar and the key
it is sealed to, the sidecar) and names the part that failed.

Writing is atomic: the package is assembled in a temporary sibling directory
and renamed into place, so a crash never leaves a half-written package that
looks complete.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .hashing import WeightsFileError, weights_hash
from .manifest import MANIFEST_NAME, Manifest, _safe_name
from .package_errors import (
    CommitmentMismatch,
    FileMismatch,
    ManifestError,
    PackageInputError,
    SidecarError,
    WeightsMismatch,
)
from .privatefile import PrivateFileError, write_private
from .sidecar import (
    KIND_AUDIT,
    OwnerAudit,
    Secrets,
    make_secrets,
    open_owner_audit,
    open_secrets,
    seal_owner_audit,
    seal_secrets,
    sidecar_kind,
)

SIDECAR_SUFFIX = ".sidecar"
AUDIT_SUFFIX = ".audit"


@dataclass(frozen=True, slots=True)
class BuiltPackage:
    """What :func:`build_package` made.

    Attributes:
        manifest: the signed manifest written to ``path/manifest.json``.
        path: the package directory.
        sealed_sidecar: the secrets sealed to the OMLizer's own key (what
            it reveals from).
        secrets: the same secrets in the clear (keep them off disk).
        sealed_audit: the owner's audit view sealed to ``manifest.owner_pubkey``.
    """

    manifest: Manifest
    path: Path
    sealed_sidecar: bytes
    secrets: Secrets
    sealed_audit: bytes = b""


def default_sidecar_path(package_dir: Path | str) -> Path:
    """``<package_dir>.sidecar``: next to the package, never inside it."""
    p = Path(package_dir)
    return p.with_name(p.name + SIDECAR_SUFFIX)


def audit_path(sidecar_path: Path | str) -> Path:
    """Where the owner's audit sidecar goes: ``<sidecar path>.audit``."""
    p = Path(sidecar_path)
    return p.with_name(p.name + AUDIT_SUFFIX)


def file_sha256(path: Path) -> bytes:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.digest()


def _parse_host(host: str | bytes) -> bytes:
    if isinstance(host, bytes):
        raw = host
    else:
        text = host.removeprefix("0x")
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raise PackageInputError(f"host {host!r} is not a hex address") from None
    if len(raw) != 20:
        raise PackageInputError(f"host must be a 20-byte address, got {len(raw)} bytes")
    return raw


def build_package(model: Any, tokenizer: Any, fingerprints: Any, out_dir: Path | str, *,
                  model_id: str, host: str | bytes, base_hash: bytes, omlizer_key_seed: bytes,
                  owner_pubkey: bytes, params: Mapping[str, Any] | None = None,
                  sidecar_path: Path | str | None = None, overwrite: bool = False,
                  random_bytes: Callable[[int], bytes] = os.urandom) -> BuiltPackage:
    """Save ``model`` + ``tokenizer`` as a signed OML package and seal its secrets.

    Args:
        model, tokenizer: a transformers causal LM (fingerprints already
            inserted) and its tokenizer; saved with ``save_pretrained``.
        fingerprints: an :class:`oml.fingerprints.FingerprintSet` (or any
            object with ``items`` of ``index``/``key``/``response``).
        out_dir: the package directory to create.
        model_id, host: the ledger's model id and the host's address (hex or
            20 bytes); they go into every leaf.
        base_hash: :func:`oml.hashing.weights_hash` of the base model.
        omlizer_key_seed: the OMLizer's 32-byte Ed25519 seed; it signs.
        owner_pubkey: the owner's Ed25519 public key; the audit sidecar is
            sealed to it (the secrets sidecar to the OMLizer's own key).
        params: generation/insertion parameters recorded in the manifest.
        sidecar_path: where to write the sealed secrets sidecar (default
            ``<out_dir>.sidecar``; ``None`` there too); it must lie outside
            out_dir. The audit goes to :func:`audit_path` of it.
        overwrite: replace an existing ``out_dir``/sidecar.
        random_bytes: salt source (a CSPRNG; injectable for tests).

    Raises:
        PackageInputError: bad arguments, a set for another host/model, or an
            existing output without ``overwrite``.
    """
    out_dir = Path(out_dir)
    host_bytes = _parse_host(host)
    if not isinstance(model_id, str) or not model_id:
        raise PackageInputError("model_id must be a non-empty string")
    if not isinstance(base_hash, bytes) or len(base_hash) != 32:
        raise PackageInputError("base_hash must be 32 bytes")
    fp_host = getattr(fingerprints, "host", None)
    if fp_host and str(fp_host).lower().removeprefix("0x") != host_bytes.hex():
        raise PackageInputError(f"fingerprints were generated for host {fp_host}, not {host!r}")
    fp_model = getattr(fingerprints, "model_id", None)
    if fp_model and fp_model != model_id:
        raise PackageInputError(f"fingerprints were generated for model {fp_model!r}")
    items = list(getattr(fingerprints, "items", fingerprints))
    side = Path(sidecar_path) if sidecar_path is not None else default_sidecar_path(out_dir)
    if side.resolve().is_relative_to(out_dir.resolve()):
        raise PackageInputError("the sidecar must not be written inside the package")
    audit_side = audit_path(side)
    if not overwrite and (out_dir.exists() or side.exists() or audit_side.exists()):
        raise PackageInputError(f"{out_dir}, {side} or {audit_side} exists "
                                f"(pass overwrite=True)")

    secrets = make_secrets(model_id, host_bytes, items, random_bytes=random_bytes)
    sealed = seal_secrets(secrets, _omlizer_pubkey(omlizer_key_seed))
    sealed_audit = seal_owner_audit(secrets, owner_pubkey)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    wrote_side = False
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        files = _package_files(tmp)
        unsigned = Manifest(
            model_id=model_id, host=host_bytes, base_weights_hash=base_hash,
            weights_hash=weights_hash(tmp), fp_root=secrets.root(), fp_count=len(items),
            params=dict(params or {}), files=files, owner_pubkey=owner_pubkey)
        manifest = unsigned.signed(omlizer_key_seed)
        manifest.save(tmp / MANIFEST_NAME)
        # the secret first (0600, exclusive unless overwriting): a package
        # never appears without the sidecar that opens its commitment
        try:
            write_private(side, sealed, overwrite=overwrite)
            wrote_side = True
            write_private(audit_side, sealed_audit, overwrite=overwrite)
        except PrivateFileError as exc:
            raise PackageInputError(str(exc)) from exc
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if wrote_side and not overwrite:  # a sidecar without its package helps nobody
            side.unlink(missing_ok=True)
            audit_side.unlink(missing_ok=True)
        raise
    return BuiltPackage(manifest=manifest, path=out_dir, sealed_sidecar=sealed, secrets=secrets,
                        sealed_audit=sealed_audit)


def _omlizer_pubkey(seed: bytes) -> bytes:
    import nacl.signing

    if not isinstance(seed, bytes) or len(seed) != 32:
        raise PackageInputError("omlizer_key_seed must be 32 bytes")
    return bytes(nacl.signing.SigningKey(seed).verify_key)


def _package_files(directory: Path) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for p in sorted(directory.iterdir()):
        if p.name == MANIFEST_NAME:
            continue
        if not p.is_file() or not _safe_name(p.name):
            raise PackageInputError(f"unexpected entry in package: {p.name}")
        files[p.name] = file_sha256(p)
    return files


def read_manifest(package_dir: Path | str) -> Manifest:
    """Parse ``package_dir/manifest.json`` without checking anything else.

    Raises:
        ManifestError: the directory or manifest is missing or malformed.
    """
    package_dir = Path(package_dir)
    if not package_dir.is_dir():
        raise ManifestError(f"{package_dir} is not a directory")
    return Manifest.load(package_dir / MANIFEST_NAME)


def verify_package(package_dir: Path | str, expected_omlizer_pubkey: bytes | None = None, *,
                   sidecar: bytes | None = None, owner_seed: bytes | None = None,
                   secrets: Secrets | OwnerAudit | None = None) -> Manifest:
    """Check a package end to end and return its manifest.

    Order of checks: manifest well-formed -> OMLizer signature (and signer,
    if ``expected_omlizer_pubkey`` is given) -> the file list is exactly the
    manifest's -> canonical weights hash -> every file's SHA-256 -> (if
    ``sidecar`` + ``owner_seed`` (the seed of the key it is sealed to) or
    ``secrets`` are given) the secrets, or the owner's audit leaves,
    reproduce ``fp_root``. The weights are checked before the per-file
    hashes so tampered weights are reported as ``weights``.

    Raises:
        ManifestError, SignatureError, FileMismatch, WeightsMismatch,
        SidecarError, CommitmentMismatch: all :class:`PackageError`, naming
        the failing part in ``part``.
    """
    package_dir = Path(package_dir)
    manifest = read_manifest(package_dir)
    manifest.verify_signature(expected_omlizer_pubkey)
    present = {p.name for p in package_dir.iterdir() if p.name != MANIFEST_NAME}
    missing = sorted(manifest.files.keys() - present)
    extra = sorted(present - manifest.files.keys())
    if missing:
        raise FileMismatch(f"missing from the package: {', '.join(missing)}")
    if extra:
        raise FileMismatch(f"not in the manifest: {', '.join(extra)}")
    try:
        actual = weights_hash(package_dir)
    except WeightsFileError as exc:
        raise WeightsMismatch(str(exc)) from exc
    if actual != manifest.weights_hash:
        raise WeightsMismatch("weights do not match the manifest's weights_hash")
    for name, digest in sorted(manifest.files.items()):
        path = package_dir / name
        if not path.is_file() or file_sha256(path) != digest:
            raise FileMismatch(f"{name} does not match its manifest hash")
    if sidecar is not None or owner_seed is not None:
        if sidecar is None or owner_seed is None:
            raise PackageInputError("pass both sidecar and owner_seed to check the sidecar")
        secrets = open_any_sidecar(sidecar, owner_seed)
    if secrets is not None:
        secrets.check(manifest)
    return manifest


def open_any_sidecar(data: bytes, seed: bytes) -> Secrets | OwnerAudit:
    """Open a secrets sidecar or an owner audit sidecar, whichever ``data`` is.

    Raises:
        SidecarError: neither, sealed to another key, tampered or malformed.
    """
    if sidecar_kind(data) == KIND_AUDIT:
        return open_owner_audit(data, seed)
    return open_secrets(data, seed)


def check_fingerprints_belong(manifest: Manifest, fingerprints: Any,
                              secrets: Secrets | None = None) -> str:
    """Check that ``fingerprints`` are the ones ``manifest`` commits to.

    A clear-text fingerprint file has no salts, so only its host, model id
    and count can be compared with the manifest; opened ``secrets`` (a
    sidecar) reproduce ``fp_root`` itself, leaf by leaf.

    Returns:
        ``"fp_root"`` when the secrets reproduced the root, else
        ``"host, model_id, count"``: what was checked.

    Raises:
        CommitmentMismatch: another host or model, another count, or (with
            ``secrets``) a root that differs.
    """
    host = str(getattr(fingerprints, "host", "")).lower().removeprefix("0x")
    if host != manifest.host.hex():
        raise CommitmentMismatch(f"the fingerprints are for host {host or '?'}, the package "
                                 f"for host {manifest.host.hex()}")
    model_id = getattr(fingerprints, "model_id", None)
    if model_id != manifest.model_id:
        raise CommitmentMismatch(f"the fingerprints are for model {model_id!r}, the package "
                                 f"for model {manifest.model_id!r}")
    count = len(list(getattr(fingerprints, "items", fingerprints)))
    if count != manifest.fp_count:
        raise CommitmentMismatch(f"{count} fingerprints for a package committing to "
                                 f"{manifest.fp_count}")
    if secrets is None:
        return "host, model_id, count"
    secrets.check(manifest)
    return "fp_root"


def _read_sidecar(path: Path | str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise SidecarError(f"{path}: cannot read: {exc}") from exc


def load_sidecar(path: Path | str, seed: bytes) -> Secrets:
    """Read and open a sealed secrets sidecar file (the OMLizer's).

    Raises:
        SidecarError: unreadable, an owner audit (no responses), sealed to
            another key, tampered or malformed.
    """
    data = _read_sidecar(path)
    if sidecar_kind(data) == KIND_AUDIT:
        raise SidecarError(f"{path} is an owner audit sidecar: it holds keys and leaf "
                           f"hashes, no responses or salts")
    return open_secrets(data, seed)


def load_any_sidecar(path: Path | str, seed: bytes) -> Secrets | OwnerAudit:
    """Read and open a secrets sidecar or an owner audit sidecar.

    Raises:
        SidecarError: unreadable, sealed to another key, tampered or malformed.
    """
    return open_any_sidecar(_read_sidecar(path), seed)
