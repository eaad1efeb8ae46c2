"""The secret sidecar of an OML package, the owner's audit copy, and key subsets for provers.

The package itself goes to the host, so it must not hold the fingerprints.
The secrets (each fingerprint's key, response, 32-byte salt and Merkle path)
travel separately, sealed with a PyNaCl ``SealedBox`` to the OMLizer's own
Ed25519 key (converted to Curve25519): the OMLizer is the one that reveals
leaves on the ledger. Whoever holds a host's responses can frame it (a
sock-puppet prover claims them as observed outputs), and the model owner is
paid from every slash, so the owner gets an **audit** sidecar instead: each
fingerprint's key, leaf hash and Merkle path, no response and no salt
(without the salt a short response cannot be brute-forced against the
leaf). It lets the owner check the commitment and probe its own hosts as a
prover would (docs/threat-model.md). A prover gets a smaller box: only the
keys of the indices assigned to it, never responses or salts.

A ``SealedBox`` is anonymous: anyone who knows the owner's public key can seal
*something* to it. The sidecar's authenticity therefore comes from the signed
manifest, not from the box: :meth:`Secrets.check` recomputes every leaf and the
root and compares them to the manifest's ``fp_root``/``fp_count``.

Sealed file layout::

    "OMLSEAL" 0x01 | kind (1 byte: 1 = fingerprint secrets, 2 = prover keys,
                                3 = owner audit)
    | recipient Ed25519 public key (32 bytes) | SealedBox ciphertext

The recipient key in clear lets a node say "sealed to someone else" instead of
a bare decryption failure. The plaintext is canonical JSON (see
:func:`oml.manifest.canonical_json`) with bytes as hex.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import nacl.exceptions
import nacl.public
import nacl.signing

from .commitments import (
    SALT_SIZE,
    _inner,
    _node,
    _split,
    leaf_hash_text,
    merkle_root,
    verify_path,
)
from .manifest import Manifest, canonical_json
from .package_errors import CommitmentMismatch, PackageInputError, SidecarError

MAGIC = b"OMLSEAL\x01"
KIND_SECRETS = 1
KIND_OWNER = KIND_SECRETS  # the name before owners stopped receiving the secrets
KIND_PROVER = 2
KIND_AUDIT = 3
_HEADER = len(MAGIC) + 1 + 32
_KINDS = {KIND_SECRETS: "fingerprint secrets", KIND_PROVER: "prover keys",
          KIND_AUDIT: "owner audit"}


@dataclass(frozen=True, slots=True, kw_only=True)
class SecretEntry:
    """One fingerprint's secrets: enough to reveal its leaf on the ledger."""

    index: int
    key: str
    response: str
    salt: bytes
    path: tuple[bytes, ...]
    key_ids: tuple[int, ...] = ()
    response_ids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Secrets:
    """All secrets of one host's fingerprint set (what the OMLizer's sidecar holds)."""

    model_id: str
    host: bytes
    entries: tuple[SecretEntry, ...]

    def leaves(self) -> list[bytes]:
        """Leaf hashes in index order, exactly as :mod:`oml.commitments` defines them."""
        mid = self.model_id.encode("utf-8")
        return [leaf_hash_text(mid, self.host, e.index, e.salt, e.key, e.response)
                for e in self.entries]

    def root(self) -> bytes:
        return merkle_root(self.leaves())

    def check(self, manifest: Manifest) -> None:
        """Check these secrets open ``manifest``'s commitment, leaf by leaf.

        Raises:
            CommitmentMismatch: other model/host, wrong count, a leaf whose path
                does not reach ``fp_root``, or a root that differs.
        """
        if self.model_id != manifest.model_id or self.host != manifest.host:
            raise CommitmentMismatch("secrets belong to another model or host")
        if len(self.entries) != manifest.fp_count:
            raise CommitmentMismatch(
                f"{len(self.entries)} secrets for a commitment of {manifest.fp_count}")
        leaves = self.leaves()
        for entry, leaf in zip(self.entries, leaves):
            if not verify_path(leaf, entry.index, manifest.fp_count, entry.path, manifest.fp_root):
                raise CommitmentMismatch(f"fingerprint {entry.index} does not open fp_root")
        if merkle_root(leaves) != manifest.fp_root:
            raise CommitmentMismatch("secrets do not reproduce fp_root")

    def entry(self, index: int) -> SecretEntry:
        if not 0 <= index < len(self.entries):
            raise PackageInputError(f"no fingerprint {index} (count {len(self.entries)})")
        return self.entries[index]

    def to_json(self) -> dict[str, Any]:
        return {"kind": "owner", "model_id": self.model_id, "host": self.host.hex(),
                "entries": [{"index": e.index, "key": e.key, "response": e.response,
                             "salt": e.salt.hex(), "path": [p.hex() for p in e.path],
                             "key_ids": list(e.key_ids), "response_ids": list(e.response_ids)}
                            for e in self.entries]}

    @classmethod
    def from_json(cls, data: Any) -> Secrets:
        try:
            if data["kind"] != "owner":
                raise ValueError("not an owner sidecar")
            entries = tuple(
                SecretEntry(index=_int(e["index"]), key=_str(e["key"]),
                            response=_str(e["response"]), salt=bytes.fromhex(e["salt"]),
                            path=tuple(bytes.fromhex(p) for p in e["path"]),
                            key_ids=tuple(_int(i) for i in e["key_ids"]),
                            response_ids=tuple(_int(i) for i in e["response_ids"]))
                for e in data["entries"])
            secrets = cls(model_id=_str(data["model_id"]), host=bytes.fromhex(data["host"]),
                          entries=entries)
        except (KeyError, TypeError, ValueError) as exc:
            raise SidecarError(f"malformed owner sidecar: {exc}") from exc
        if [e.index for e in entries] != list(range(len(entries))) or not entries:
            raise SidecarError("sidecar entries must be indices 0..n-1 in order")
        return secrets


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEntry:
    """One fingerprint as the owner sees it: the key and the committed leaf, no secrets."""

    index: int
    key: str
    leaf: bytes
    path: tuple[bytes, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class OwnerAudit:
    """The owner's view of one host's fingerprint set: keys, leaves and paths.

    Enough to check that the commitment has ``fp_count`` leaves reaching
    ``fp_root`` and to probe deployments with the keys; not enough to open
    a leaf on the ledger or to write down a matching output.
    """

    model_id: str
    host: bytes
    entries: tuple[AuditEntry, ...]

    def check(self, manifest: Manifest) -> None:
        """Check every leaf reaches ``manifest``'s ``fp_root`` and the count matches.

        Raises:
            CommitmentMismatch: other model/host, wrong count, a leaf whose path
                does not reach ``fp_root``, or a root that differs.
        """
        if self.model_id != manifest.model_id or self.host != manifest.host:
            raise CommitmentMismatch("audit belongs to another model or host")
        if len(self.entries) != manifest.fp_count:
            raise CommitmentMismatch(
                f"{len(self.entries)} leaves for a commitment of {manifest.fp_count}")
        for e in self.entries:
            if not verify_path(e.leaf, e.index, manifest.fp_count, e.path, manifest.fp_root):
                raise CommitmentMismatch(f"fingerprint {e.index} does not open fp_root")
        if merkle_root([e.leaf for e in self.entries]) != manifest.fp_root:
            raise CommitmentMismatch("audit leaves do not reproduce fp_root")

    def to_json(self) -> dict[str, Any]:
        return {"kind": "audit", "model_id": self.model_id, "host": self.host.hex(),
                "entries": [{"index": e.index, "key": e.key, "leaf": e.leaf.hex(),
                             "path": [p.hex() for p in e.path]} for e in self.entries]}

    @classmethod
    def from_json(cls, data: Any) -> OwnerAudit:
        try:
            if data["kind"] != "audit":
                raise ValueError("not an owner audit")
            entries = tuple(AuditEntry(index=_int(e["index"]), key=_str(e["key"]),
                                       leaf=bytes.fromhex(e["leaf"]),
                                       path=tuple(bytes.fromhex(p) for p in e["path"]))
                            for e in data["entries"])
            audit = cls(model_id=_str(data["model_id"]), host=bytes.fromhex(data["host"]),
                        entries=entries)
        except (KeyError, TypeError, ValueError) as exc:
            raise SidecarError(f"malformed owner audit: {exc}") from exc
        if [e.index for e in entries] != list(range(len(entries))) or not entries:
            raise SidecarError("audit entries must be indices 0..n-1 in order")
        return audit


def audit_of(secrets: Secrets) -> OwnerAudit:
    """The owner's audit view of ``secrets``: keys, leaf hashes and paths only."""
    return OwnerAudit(model_id=secrets.model_id, host=secrets.host, entries=tuple(
        AuditEntry(index=e.index, key=e.key, leaf=leaf, path=e.path)
        for e, leaf in zip(secrets.entries, secrets.leaves(), strict=True)))


@dataclass(frozen=True, slots=True, kw_only=True)
class ProverKeys:
    """The keys a prover may pose as queries: index -> key, no responses, no salts."""

    model_id: str
    host: bytes
    keys: tuple[tuple[int, str], ...]

    def to_json(self) -> dict[str, Any]:
        return {"kind": "prover", "model_id": self.model_id, "host": self.host.hex(),
                "keys": [[i, k] for i, k in self.keys]}

    @classmethod
    def from_json(cls, data: Any) -> ProverKeys:
        try:
            if data["kind"] != "prover":
                raise ValueError("not a prover key set")
            keys = tuple((_int(i), _str(k)) for i, k in data["keys"])
            return cls(model_id=_str(data["model_id"]), host=bytes.fromhex(data["host"]),
                       keys=keys)
        except (KeyError, TypeError, ValueError) as exc:
            raise SidecarError(f"malformed prover key set: {exc}") from exc


def make_secrets(model_id: str, host: bytes, items: Iterable[Any], *,
                 random_bytes: Callable[[int], bytes] = os.urandom) -> Secrets:
    """Draw a fresh salt per fingerprint and compute every Merkle path.

    ``items`` are fingerprints with ``index``, ``key``, ``response`` (and
    optionally ``key_ids``/``response_ids``), indices 0..n-1 in order.
    ``random_bytes`` is injectable so tests can be deterministic; it must be a
    CSPRNG in real use, because salts are what stop a prover brute-forcing
    short responses against published leaves.

    Raises:
        PackageInputError: empty set, indices out of order, bad host or salt size.
    """
    items = list(items)
    if not items:
        raise PackageInputError("a package needs at least one fingerprint")
    if [it.index for it in items] != list(range(len(items))):
        raise PackageInputError("fingerprint indices must be 0..n-1 in order")
    if len(host) != 20:
        raise PackageInputError(f"host must be a 20-byte address, got {len(host)} bytes")
    salts = [random_bytes(SALT_SIZE) for _ in items]
    if any(len(s) != SALT_SIZE for s in salts):
        raise PackageInputError(f"salts must be {SALT_SIZE} bytes")
    mid = model_id.encode("utf-8")
    leaves = [leaf_hash_text(mid, host, it.index, salt, it.key, it.response)
              for it, salt in zip(items, salts)]
    paths = _all_paths(leaves)
    entries = tuple(
        SecretEntry(index=it.index, key=it.key, response=it.response, salt=salt,
                    path=tuple(path), key_ids=tuple(getattr(it, "key_ids", ()) or ()),
                    response_ids=tuple(getattr(it, "response_ids", ()) or ()))
        for it, salt, path in zip(items, salts, paths))
    return Secrets(model_id=model_id, host=host, entries=entries)


def _all_paths(leaves: Sequence[bytes]) -> list[list[bytes]]:
    """Every leaf's audit path in one O(n log n) pass over the RFC 6962 tree.

    Calling :func:`merkle_path` per leaf rebuilds the tree each time (O(n^2):
    16 s for 4,096 leaves); this walks it once and gives identical paths.
    """
    nodes = [_node(leaf) for leaf in leaves]
    paths: list[list[bytes]] = [[] for _ in leaves]

    def walk(lo: int, hi: int) -> bytes:
        if hi - lo == 1:
            return nodes[lo]
        k = _split(hi - lo)
        left, right = walk(lo, lo + k), walk(lo + k, hi)
        for i in range(lo, lo + k):  # appended after the recursion: bottom-up order
            paths[i].append(right)
        for i in range(lo + k, hi):
            paths[i].append(left)
        return _inner(left, right)

    if not nodes:
        raise PackageInputError("a package needs at least one fingerprint")
    walk(0, len(nodes))
    return paths


def _curve_public(ed25519_pub: bytes) -> nacl.public.PublicKey:
    try:
        return nacl.signing.VerifyKey(ed25519_pub).to_curve25519_public_key()
    except (nacl.exceptions.ValueError, nacl.exceptions.TypeError,
            nacl.exceptions.RuntimeError, nacl.exceptions.CryptoError) as exc:
        raise PackageInputError("recipient is not a valid Ed25519 public key") from exc


def _seal(kind: int, payload: dict[str, Any], recipient_pubkey: bytes) -> bytes:
    if not isinstance(recipient_pubkey, bytes) or len(recipient_pubkey) != 32:
        raise PackageInputError("recipient public key must be 32 bytes")
    box = nacl.public.SealedBox(_curve_public(recipient_pubkey))
    return MAGIC + bytes([kind]) + recipient_pubkey + box.encrypt(canonical_json(payload))


def _open(data: bytes, kind: int, seed: bytes) -> Any:
    if not isinstance(seed, bytes) or len(seed) != 32:
        raise PackageInputError("key seed must be 32 bytes")
    if len(data) < _HEADER or not data.startswith(MAGIC):
        raise SidecarError("not a sealed OML sidecar (bad magic)")
    if data[len(MAGIC)] != kind:
        got = _KINDS.get(data[len(MAGIC)], f"kind {data[len(MAGIC)]}")
        raise SidecarError(f"expected {_KINDS[kind]}, found {got}")
    key = nacl.signing.SigningKey(seed)
    recipient = data[len(MAGIC) + 1:_HEADER]
    if recipient != bytes(key.verify_key):
        raise SidecarError(f"sealed to {recipient.hex()}, not to this key "
                           f"({bytes(key.verify_key).hex()})")
    box = nacl.public.SealedBox(key.to_curve25519_private_key())
    try:
        plain = box.decrypt(data[_HEADER:])
    except nacl.exceptions.CryptoError as exc:
        raise SidecarError("sidecar does not decrypt (tampered or truncated)") from exc
    try:
        return json.loads(plain)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SidecarError(f"sidecar plaintext is not JSON: {exc}") from exc


def seal_secrets(secrets: Secrets, recipient_pubkey: bytes) -> bytes:
    """Seal all secrets to ``recipient_pubkey`` (the OMLizer's own Ed25519 key)."""
    return _seal(KIND_SECRETS, secrets.to_json(), recipient_pubkey)


def open_secrets(data: bytes, seed: bytes) -> Secrets:
    """Open a secrets sidecar with the recipient's 32-byte Ed25519 seed.

    Raises:
        SidecarError: not a sidecar, sealed to another key, tampered, or malformed.
    """
    return Secrets.from_json(_open(data, KIND_SECRETS, seed))


def seal_owner_audit(secrets: Secrets, owner_pubkey: bytes) -> bytes:
    """Seal the owner's audit view (no responses, no salts) to the owner's key."""
    return _seal(KIND_AUDIT, audit_of(secrets).to_json(), owner_pubkey)


def open_owner_audit(data: bytes, owner_seed: bytes) -> OwnerAudit:
    """Open an owner audit sidecar with the owner's 32-byte Ed25519 seed.

    Raises:
        SidecarError: not an audit sidecar, sealed to another key, tampered, or malformed.
    """
    return OwnerAudit.from_json(_open(data, KIND_AUDIT, owner_seed))


def sidecar_kind(data: bytes) -> int:
    """The kind byte of sealed sidecar bytes (``KIND_*``).

    Raises:
        SidecarError: not a sealed OML sidecar.
    """
    if len(data) < _HEADER or not data.startswith(MAGIC):
        raise SidecarError("not a sealed OML sidecar (bad magic)")
    return data[len(MAGIC)]


def seal_prover_keys(secrets: Secrets | OwnerAudit, indices: Iterable[int],
                     prover_pubkey: bytes) -> bytes:
    """Seal the keys (only the keys) of ``indices`` to a prover's Ed25519 public key.

    ``secrets`` may be the OMLizer's secrets or the owner's audit: both hold
    the keys, and a prover never gets more.

    Raises:
        PackageInputError: an index is out of range or repeated, or the set is empty.
    """
    chosen = list(indices)
    if not chosen:
        raise PackageInputError("a prover key set needs at least one index")
    if len(set(chosen)) != len(chosen):
        raise PackageInputError("repeated fingerprint index")
    by_index = {e.index: e.key for e in secrets.entries}
    missing = [i for i in chosen if i not in by_index]
    if missing:
        raise PackageInputError(f"no fingerprint {missing[0]} (count {len(by_index)})")
    keys = ProverKeys(model_id=secrets.model_id, host=secrets.host,
                      keys=tuple((i, by_index[i]) for i in sorted(chosen)))
    return _seal(KIND_PROVER, keys.to_json(), prover_pubkey)


def open_prover_keys(data: bytes, prover_seed: bytes) -> ProverKeys:
    """Open a prover key set with the prover's 32-byte Ed25519 seed.

    Raises:
        SidecarError: not a prover key set, sealed to another key, tampered, or malformed.
    """
    return ProverKeys.from_json(_open(data, KIND_PROVER, prover_seed))


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"expected a non-negative integer, got {value!r}")
    return value


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {type(value).__name__}")
    return value
