"""Confidential blobs: the secretstream envelope and its failure modes."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import nacl.exceptions
import nacl.signing
import pytest

from consensus.crypto import address_of
from node.roles.storage.crypto import (
    ABYTES,
    DecryptingReader,
    decrypt_bytes,
    encrypt_bytes,
    recipients_of,
)
from node.roles.storage.errors import BadChunk, BadCiphertext, NotARecipient, StoreUsageError
from node.roles.storage.store import BlobStore

from .conftest import CS, keypair, write_random

SEG = 1024  # the smallest segment size keeps the multi-segment cases small
ALICE, BOB, CAROL = keypair(1), keypair(2), keypair(3)


def _prefix_and_header_len(envelope: bytes) -> int:
    return 11 + struct.unpack(">I", envelope[7:11])[0]


@pytest.mark.parametrize("size", [0, 1, SEG - 1, SEG, SEG + 1, 3 * SEG, 3 * SEG + 7])
def test_round_trip(size: int) -> None:
    data = bytes(i % 251 for i in range(size))
    env = encrypt_bytes(data, [ALICE[1]], segment_size=SEG)
    assert decrypt_bytes(env, ALICE[0]) == data
    # full segments, the last one (possibly empty, possibly full) tagged final; 17 bytes each
    segments = max(1, -(-size // SEG))
    assert len(env) == _prefix_and_header_len(env) + size + segments * ABYTES


def test_fresh_key_every_time() -> None:
    a = encrypt_bytes(b"same", [ALICE[1]])
    b = encrypt_bytes(b"same", [ALICE[1]])
    assert a != b


def test_wrong_recipient_named_clearly() -> None:
    env = encrypt_bytes(b"secret", [ALICE[1], BOB[1]])
    with pytest.raises(NotARecipient) as err:
        decrypt_bytes(env, CAROL[0])
    msg = str(err.value)
    assert address_of(ALICE[1]).hex() in msg and address_of(BOB[1]).hex() in msg
    assert address_of(CAROL[1]).hex() in msg
    assert err.value.code == "not_a_recipient"


def test_every_recipient_can_decrypt() -> None:
    env = encrypt_bytes(b"m" * 5000, [ALICE[1], BOB[1], CAROL[1]], segment_size=SEG)
    assert recipients_of(io.BytesIO(env)) == [ALICE[1], BOB[1], CAROL[1]]
    for seed, _ in (ALICE, BOB, CAROL):
        assert decrypt_bytes(env, seed) == b"m" * 5000


PLAIN = bytes(range(256)) * 16 + b"tail"  # four full segments and a short final one


def _envelope() -> tuple[bytes, int]:
    env = encrypt_bytes(PLAIN, [ALICE[1]], segment_size=SEG)
    return env, _prefix_and_header_len(env)


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 1]) + data[at + 1:]


def _tampered() -> dict[str, bytes]:
    env, body = _envelope()
    seg = SEG + ABYTES
    return {
        "no final segment": env[:body + 4 * seg],
        "cut inside the last segment": env[:-5],
        "only the header": env[:body],
        "cut inside the header": env[:body - 3],
        "empty": b"",
        "flipped ciphertext byte": _flip(env, body + 10),
        "flipped tag byte of the final segment": _flip(env, len(env) - 1),
        "flipped stream header": _flip(env, body - 2),
        "flipped recipient key byte": _flip(env, body - 130),
        "segments swapped": env[:body] + env[body + seg:body + 2 * seg] + env[body:body + seg]
        + env[body + 2 * seg:],
        "segment dropped": env[:body] + env[body + seg:],
        "trailing bytes": env + b"\x00",
        "trailing bytes after a full final segment":
            encrypt_bytes(bytes(2 * SEG), [ALICE[1]], segment_size=SEG) + b"\x00",
        "flipped sealed key byte": _flip(env, body - 50),
        "bad magic": b"X" + env[1:],
        "bad version": env[:6] + b"\x02" + env[7:],
        "huge header length": env[:7] + struct.pack(">I", 1 << 30) + env[11:],
    }


@pytest.mark.parametrize("case", sorted(_tampered()))
def test_truncation_and_tampering_detected(case: str) -> None:
    with pytest.raises((BadCiphertext, NotARecipient)) as err:
        decrypt_bytes(_tampered()[case], ALICE[0])
    if case != "flipped recipient key byte":  # that one no longer names Alice
        assert isinstance(err.value, BadCiphertext)
        assert isinstance(err.value, BadChunk)  # one family for "bytes that do not verify"


def test_untampered_control_decrypts() -> None:
    env, _ = _envelope()
    assert decrypt_bytes(env, ALICE[0]) == PLAIN


@pytest.mark.parametrize("recipients", [[], [ALICE[1], ALICE[1]], [b"\x01" * 31],
                                        ["not bytes"]])
def test_bad_recipients_are_usage_errors(recipients: list[bytes]) -> None:
    with pytest.raises(StoreUsageError):
        encrypt_bytes(b"x", recipients)


def test_invalid_point_is_a_usage_error() -> None:
    def converts(pub: bytes) -> bool:
        try:
            nacl.signing.VerifyKey(pub).to_curve25519_public_key()
        except nacl.exceptions.CryptoError:
            return False
        return True

    bad = next(bytes([i]) * 32 for i in range(256) if not converts(bytes([i]) * 32))
    with pytest.raises(StoreUsageError, match="not a valid Ed25519"):
        encrypt_bytes(b"x", [bad])


def test_bad_seed_is_a_usage_error() -> None:
    env = encrypt_bytes(b"x", [ALICE[1]])
    with pytest.raises(StoreUsageError):
        DecryptingReader(io.BytesIO(env), b"short")


# --- through the store -------------------------------------------------------------

def test_encrypted_blob_through_store(store: BlobStore, tmp_path: Path) -> None:
    data = write_random(tmp_path / "weights", 5 * CS + 99)
    m = store.put_file(tmp_path / "weights", recipients=[ALICE[1], BOB[1]], chunk_size=CS)
    assert m.encrypted and m.size > len(data)
    # storage peers hold ciphertext: the plaintext does not appear in any chunk
    with store.open_reader(m.blob_id) as reader:
        stored = reader.read()
    assert data[:64] not in stored
    store.export(m.blob_id, tmp_path / "alice", seed=ALICE[0])
    store.export(m.blob_id, tmp_path / "bob", seed=BOB[0])
    assert (tmp_path / "alice").read_bytes() == data == (tmp_path / "bob").read_bytes()
    with pytest.raises(NotARecipient, match=address_of(ALICE[1]).hex()):
        store.export(m.blob_id, tmp_path / "carol", seed=CAROL[0])
    with pytest.raises(NotARecipient, match="key of one of them is needed"):
        store.export(m.blob_id, tmp_path / "nobody")
    assert not (tmp_path / "carol").exists() and not (tmp_path / "nobody").exists()
    store.export(m.blob_id, tmp_path / "cipher", raw=True)
    assert (tmp_path / "cipher").read_bytes() == stored


def test_encrypted_directory_through_store(store: BlobStore, tmp_path: Path) -> None:
    src = tmp_path / "model"
    (src / "sub").mkdir(parents=True)
    write_random(src / "sub" / "w.bin", 2 * CS + 1)
    (src / "config.json").write_text("{}")
    m = store.put_file(src, recipients=[ALICE[1]], chunk_size=CS)
    assert m.encrypted
    store.export(m.blob_id, tmp_path / "out", seed=ALICE[0])
    assert (tmp_path / "out" / "sub" / "w.bin").read_bytes() == (src / "sub" / "w.bin").read_bytes()
    assert (tmp_path / "out" / "config.json").read_text() == "{}"


def test_bad_recipient_on_put_stores_nothing(store: BlobStore, tmp_path: Path) -> None:
    write_random(tmp_path / "f", 10)
    with pytest.raises(StoreUsageError):
        store.put_file(tmp_path / "f", recipients=[b"\x00" * 5])
    assert store.list() == []
