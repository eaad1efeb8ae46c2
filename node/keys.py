"""Key files: the account/validator key and the libp2p node key.

Both are JSON files created with mode 0600 (owner read/write only), like
CometBFT's ``priv_validator_key.json`` and ``node_key.json``. The two keys
are separate on purpose: the node key identifies a libp2p peer and can be
rotated freely; the account key holds funds and signs votes.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from consensus.crypto import PrivateKey
from net.identity import peer_id_from_seed

KEY_FILE_MODE = 0o600


class KeyFileError(ValueError):
    """A key file is missing, unreadable, malformed or too widely readable."""


def write_secret_json(path: Path, data: dict[str, str], *, overwrite: bool = False) -> None:
    """Write ``data`` as JSON to a file that is created with mode 0600.

    The mode is set at creation (``os.open``), so the secret is never readable
    by others even for an instant; the file is fsynced before returning.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
    try:
        fd = os.open(path, flags, KEY_FILE_MODE)
    except FileExistsError:
        raise KeyFileError(f"{path} already exists") from None
    with os.fdopen(fd, "w") as fh:
        os.fchmod(fh.fileno(), KEY_FILE_MODE)
        json.dump(data, fh, indent=2)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())


def _read_json(path: Path) -> dict[str, object]:
    try:
        raw = path.read_text("utf-8")
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror}") from None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise KeyFileError(f"{path}: not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise KeyFileError(f"{path}: expected a JSON object")
    return data


def _seed_field(path: Path, data: dict[str, object], name: str) -> bytes:
    value = data.get(name)
    if not isinstance(value, str):
        raise KeyFileError(f"{path}: missing field {name!r}")
    try:
        seed = bytes.fromhex(value)
    except ValueError:
        raise KeyFileError(f"{path}: field {name!r} is not hex") from None
    if len(seed) != 32:
        raise KeyFileError(f"{path}: field {name!r} must be 32 bytes")
    return seed


@dataclass(frozen=True)
class AccountKey:
    """The Ed25519 key that owns an account and, if in the validator set, votes."""

    key: PrivateKey

    @property
    def address(self) -> bytes:
        return self.key.address

    @property
    def public_key(self) -> bytes:
        return self.key.public_key

    @classmethod
    def generate(cls) -> AccountKey:
        return cls(PrivateKey.generate())

    def save(self, path: Path, *, overwrite: bool = False) -> None:
        write_secret_json(path, {
            "address": self.address.hex(),
            "pub_key": self.public_key.hex(),
            "priv_key": self.key.seed.hex(),
        }, overwrite=overwrite)

    @classmethod
    def load(cls, path: Path) -> AccountKey:
        data = _read_json(path)
        key = cls(PrivateKey(_seed_field(path, data, "priv_key")))
        if data.get("pub_key") not in (None, key.public_key.hex()):
            raise KeyFileError(f"{path}: pub_key does not match priv_key")
        return key


@dataclass(frozen=True)
class NodeKey:
    """The libp2p identity of a node (an Ed25519 seed; peer ID derived from it)."""

    seed: bytes

    @property
    def peer_id(self) -> str:
        return peer_id_from_seed(self.seed)

    @classmethod
    def generate(cls) -> NodeKey:
        return cls(os.urandom(32))

    def save(self, path: Path, *, overwrite: bool = False) -> None:
        write_secret_json(path, {"priv_key": self.seed.hex(), "peer_id": self.peer_id},
                          overwrite=overwrite)

    @classmethod
    def load(cls, path: Path) -> NodeKey:
        return cls(_seed_field(path, _read_json(path), "priv_key"))
