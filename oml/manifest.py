"""The signed manifest of an OML package.

``manifest.json`` says which model a package is, for which host, what its
weights hash to, and what fingerprint commitment (``fp_root`` over
``fp_count`` leaves) it carries. The OMLizer signs it; anyone can check it
without the secrets.

Canonical bytes: the manifest without its ``signature`` field, as JSON with
sorted keys, no whitespace, ASCII only and no NaN/Infinity
(``json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=True,
allow_nan=False)``). Signatures and hashes are over these bytes, never over the
file as stored, so reformatting ``manifest.json`` does not break it but
changing any value does. Floats are allowed only inside ``params`` (learning
rates and the like); Python writes them in their shortest round-trip form, so
re-encoding a parsed manifest gives the same bytes.

Sign bytes follow the project rule ``domain || 0x00 || body`` with domain
``oml/manifest/v1`` (no chain id: a package is not bound to one chain). This
module uses PyNaCl directly because ``oml`` imports nothing from ``node`` or
``consensus``.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import nacl.exceptions
import nacl.signing

from .package_errors import ManifestError, PackageInputError, SignatureError

MANIFEST_NAME = "manifest.json"
FORMAT = "oml-package/v1"
SIGN_DOMAIN = b"oml/manifest/v1"
PACKAGE_HASH_DOMAIN = b"oml/package/v1"
ADDRESS_SIZE = 20
PUBKEY_SIZE = 32

_HEX = re.compile(r"^(?:[0-9a-f]{2})*$")


def canonical_json(value: Any) -> bytes:
    """The one byte encoding used for everything hashed or signed in a package."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode("ascii")


def manifest_sign_bytes(body: bytes) -> bytes:
    """``oml/manifest/v1 || 0x00 || body``: what the OMLizer signs."""
    return SIGN_DOMAIN + b"\x00" + body


def _hex_field(data: dict[str, Any], name: str, size: int | None, exc: type[Exception]) -> bytes:
    value = data.get(name)
    if not isinstance(value, str) or not _HEX.match(value):
        raise exc(f"{name} must be lower-case hex")
    raw = bytes.fromhex(value)
    if size is not None and len(raw) != size:
        raise exc(f"{name} must be {size} bytes, got {len(raw)}")
    return raw


@dataclass(frozen=True, slots=True, kw_only=True)
class Manifest:
    """What an OML package is; every field is covered by ``signature``.

    Attributes:
        model_id: the model's id on the ledger (its UTF-8 bytes go into each leaf).
        host: the host's 20-byte account address.
        base_weights_hash: :func:`oml.hashing.weights_hash` of the base model.
        weights_hash: the same hash over this package's fingerprinted weights.
        fp_root: Merkle root of the fingerprint leaves (:mod:`oml.commitments`).
        fp_count: number of fingerprints (leaves).
        params: generation and insertion parameters (JSON values), for audit.
        files: every other file in the package (config, tokenizer, weights) ->
            its SHA-256, so a swapped tokenizer or config is caught too.
        omlizer_pubkey: Ed25519 key of the OMLizer that signed.
        owner_pubkey: Ed25519 key the secret sidecar is sealed to.
        signature: OMLizer's signature over :meth:`body_bytes`.
    """

    model_id: str
    host: bytes
    base_weights_hash: bytes
    weights_hash: bytes
    fp_root: bytes
    fp_count: int
    params: dict[str, Any] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    omlizer_pubkey: bytes = b""
    owner_pubkey: bytes = b""
    signature: bytes = b""

    def body(self) -> dict[str, Any]:
        """The signed fields as JSON values (bytes as lower-case hex)."""
        return {
            "format": FORMAT,
            "model_id": self.model_id,
            "host": self.host.hex(),
            "base_weights_hash": self.base_weights_hash.hex(),
            "weights_hash": self.weights_hash.hex(),
            "fp_root": self.fp_root.hex(),
            "fp_count": self.fp_count,
            "params": self.params,
            "files": {name: digest.hex() for name, digest in sorted(self.files.items())},
            "omlizer_pubkey": self.omlizer_pubkey.hex(),
            "owner_pubkey": self.owner_pubkey.hex(),
        }

    def body_bytes(self) -> bytes:
        """Canonical bytes of :meth:`body` (see the module docstring)."""
        try:
            return canonical_json(self.body())
        except (TypeError, ValueError) as exc:
            raise PackageInputError(f"manifest params are not plain JSON: {exc}") from exc

    def package_hash(self) -> bytes:
        """SHA-256 over ``oml/package/v1 || 0x00 || body``: the id the ledger records.

        It commits to the weights, every file, the host and the fingerprint
        root, so ``commit_omlization(package_hash, fp_root, ...)`` pins the
        exact package the host received.
        """
        return hashlib.sha256(PACKAGE_HASH_DOMAIN + b"\x00" + self.body_bytes()).digest()

    def signed(self, omlizer_seed: bytes) -> Manifest:
        """A copy signed by the OMLizer whose Ed25519 seed is ``omlizer_seed``."""
        if not isinstance(omlizer_seed, bytes) or len(omlizer_seed) != 32:
            raise PackageInputError("OMLizer key seed must be 32 bytes")
        key = nacl.signing.SigningKey(omlizer_seed)
        unsigned = replace(self, omlizer_pubkey=bytes(key.verify_key), signature=b"")
        sig = key.sign(manifest_sign_bytes(unsigned.body_bytes())).signature
        return replace(unsigned, signature=sig)

    def verify_signature(self, expected_omlizer_pubkey: bytes | None = None) -> None:
        """Check the signature (and, if given, that the expected OMLizer made it).

        Raises:
            SignatureError: wrong signer, or the signature does not verify.
        """
        if expected_omlizer_pubkey is not None and expected_omlizer_pubkey != self.omlizer_pubkey:
            raise SignatureError(
                f"signed by OMLizer {self.omlizer_pubkey.hex()}, "
                f"expected {expected_omlizer_pubkey.hex()}")
        try:
            nacl.signing.VerifyKey(self.omlizer_pubkey).verify(
                manifest_sign_bytes(self.body_bytes()), self.signature)
        except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError,
                nacl.exceptions.TypeError, nacl.exceptions.CryptoError) as exc:
            raise SignatureError("OMLizer signature does not verify") from exc

    def to_json(self) -> dict[str, Any]:
        """The manifest.json object: :meth:`body` plus ``signature``."""
        return {**self.body(), "signature": self.signature.hex()}

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n",
                        encoding="utf-8")

    @classmethod
    def from_json(cls, data: Any) -> Manifest:
        """Parse a manifest.json object, rejecting missing, extra or ill-typed fields.

        Raises:
            ManifestError: the object is not a well-formed manifest.
        """
        if not isinstance(data, dict):
            raise ManifestError("manifest is not a JSON object")
        expected = set(_FIELDS) | {"format", "signature"}
        missing, extra = expected - data.keys(), data.keys() - expected
        if missing:
            raise ManifestError(f"missing fields: {', '.join(sorted(missing))}")
        if extra:
            raise ManifestError(f"unknown fields: {', '.join(sorted(extra))}")
        if data["format"] != FORMAT:
            raise ManifestError(f"unsupported format {data['format']!r} (expected {FORMAT})")
        if not isinstance(data["model_id"], str) or not data["model_id"]:
            raise ManifestError("model_id must be a non-empty string")
        count = data["fp_count"]
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ManifestError("fp_count must be a positive integer")
        if not isinstance(data["params"], dict):
            raise ManifestError("params must be an object")
        files = data["files"]
        if not isinstance(files, dict):
            raise ManifestError("files must be an object")
        parsed_files: dict[str, bytes] = {}
        for name in files:
            if not _safe_name(name):
                raise ManifestError(f"bad file name {name!r}")
            parsed_files[name] = _hex_field(files, name, 32, ManifestError)
        return cls(
            model_id=data["model_id"],
            host=_hex_field(data, "host", ADDRESS_SIZE, ManifestError),
            base_weights_hash=_hex_field(data, "base_weights_hash", 32, ManifestError),
            weights_hash=_hex_field(data, "weights_hash", 32, ManifestError),
            fp_root=_hex_field(data, "fp_root", 32, ManifestError),
            fp_count=count,
            params=data["params"],
            files=parsed_files,
            omlizer_pubkey=_hex_field(data, "omlizer_pubkey", PUBKEY_SIZE, ManifestError),
            owner_pubkey=_hex_field(data, "owner_pubkey", PUBKEY_SIZE, ManifestError),
            signature=_hex_field(data, "signature", 64, ManifestError),
        )

    @classmethod
    def load(cls, path: Path) -> Manifest:
        """Read and parse ``path`` (a manifest.json).

        Raises:
            ManifestError: missing, unreadable, not JSON, or malformed.
        """
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ManifestError(f"{path} is missing") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ManifestError(f"{path}: cannot read: {exc}") from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ManifestError(f"{path}: not JSON: {exc}") from exc
        return cls.from_json(data)


_FIELDS = ("model_id", "host", "base_weights_hash", "weights_hash", "fp_root", "fp_count",
           "params", "files", "omlizer_pubkey", "owner_pubkey")


def _safe_name(name: str) -> bool:
    """A plain file name inside the package: no directories, no dot-files, no manifest."""
    return (bool(name) and "/" not in name and "\\" not in name and not name.startswith(".")
            and name != MANIFEST_NAME and name.isprintable())
