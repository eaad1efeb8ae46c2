"""Confidential blobs: a streaming envelope sealed to Ed25519 accounts.

A blob is encrypted before it is chunked, so storage peers hold, hash and
serve ciphertext only, and the blob id covers the ciphertext. A fresh random
32-byte key encrypts the plaintext with libsodium's
``crypto_secretstream_xchacha20poly1305`` in fixed-size segments (memory stays
bounded whatever the size); that key is sealed (``crypto_box_seal``, PyNaCl's
``SealedBox``) to every recipient's Ed25519 public key converted to
Curve25519, as ``oml.sidecar`` does for its secrets.

Envelope, byte by byte::

    magic        6 bytes   b"OMLENC"
    version      1 byte    0x01
    header_len   4 bytes   big-endian length of ``header``
    header       canonical encoding (consensus.encoding) of
                 [segment_size, [[recipient_pubkey(32), sealed_key(80)], ...], stream_header(24)]
    segments     each: secretstream ciphertext = segment plaintext + 17 bytes
                 every segment but the last holds exactly segment_size plaintext
                 bytes and has TAG_MESSAGE; the last holds 0..segment_size bytes
                 and has TAG_FINAL; nothing may follow it.

Every segment is pushed with associated data ``sha256(header)``, so the
recipient list and stream header cannot be swapped under the ciphertext. A
missing final segment (truncation), a segment that does not authenticate
(tampering), a reordered segment or trailing bytes raise ``BadCiphertext``.
A key that is not among the recipients raises ``NotARecipient`` naming the
recipients' account addresses.
"""

from __future__ import annotations

import hashlib
import io
import struct
from collections.abc import Callable, Sequence
from typing import BinaryIO

import nacl.bindings as sodium
import nacl.exceptions
import nacl.public
import nacl.signing

from consensus.crypto import address_of
from consensus.encoding import DecodeError, decode, encode, expect_bytes, expect_int, expect_list

from .errors import BadCiphertext, NotARecipient, StoreUsageError

MAGIC = b"OMLENC"
VERSION = 1
#: Plaintext bytes per segment: the unit of memory and of authentication.
SEGMENT_SIZE = 64 * 1024
MIN_SEGMENT_SIZE = 1024
MAX_SEGMENT_SIZE = 1 << 22
MAX_RECIPIENTS = 64
KEY_SIZE = sodium.crypto_secretstream_xchacha20poly1305_KEYBYTES
STREAM_HEADER_SIZE = sodium.crypto_secretstream_xchacha20poly1305_HEADERBYTES
ABYTES = sodium.crypto_secretstream_xchacha20poly1305_ABYTES
#: crypto_box_SEALBYTES = 32-byte ephemeral public key + 16-byte MAC
SEALED_KEY_SIZE = KEY_SIZE + 48
PUBKEY_SIZE = 32
_PREFIX = struct.Struct(">6sBI")
MAX_HEADER_BYTES = 64 + MAX_RECIPIENTS * (PUBKEY_SIZE + SEALED_KEY_SIZE + 8)

_TAG_MESSAGE = sodium.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
_TAG_FINAL = sodium.crypto_secretstream_xchacha20poly1305_TAG_FINAL

Sink = Callable[[bytes], None]


def _curve_public(ed25519_pub: bytes) -> nacl.public.PublicKey:
    if not isinstance(ed25519_pub, bytes) or len(ed25519_pub) != PUBKEY_SIZE:
        raise StoreUsageError("a recipient must be a 32-byte Ed25519 public key")
    try:
        return nacl.signing.VerifyKey(ed25519_pub).to_curve25519_public_key()
    except nacl.exceptions.CryptoError as exc:
        raise StoreUsageError(
            f"recipient {ed25519_pub.hex()} is not a valid Ed25519 public key"
        ) from exc


def _check_recipients(recipients: Sequence[bytes]) -> list[nacl.public.PublicKey]:
    if not recipients:
        raise StoreUsageError("an encrypted blob needs at least one recipient")
    if len(recipients) > MAX_RECIPIENTS:
        raise StoreUsageError(f"{len(recipients)} recipients exceed limit {MAX_RECIPIENTS}")
    if len(set(recipients)) != len(recipients):
        raise StoreUsageError("duplicate recipient")
    return [_curve_public(r) for r in recipients]


class EncryptingWriter:
    """Push-style encryptor: ``write`` plaintext, ciphertext goes to ``sink``.

    Buffers at most one segment. ``close`` must be called to emit the final
    segment; without it the envelope is (detectably) truncated.
    """

    def __init__(self, sink: Sink, recipients: Sequence[bytes], *,
                 segment_size: int = SEGMENT_SIZE) -> None:
        if not MIN_SEGMENT_SIZE <= segment_size <= MAX_SEGMENT_SIZE:
            raise StoreUsageError(f"segment size {segment_size} outside limits")
        curves = _check_recipients(recipients)
        key = sodium.crypto_secretstream_xchacha20poly1305_keygen()
        self._state = sodium.crypto_secretstream_xchacha20poly1305_state()
        stream_header = sodium.crypto_secretstream_xchacha20poly1305_init_push(self._state, key)
        sealed = [[r, nacl.public.SealedBox(c).encrypt(key)] for r, c in zip(recipients, curves,
                                                                             strict=True)]
        header = encode([segment_size, sealed, stream_header])
        self._ad = hashlib.sha256(header).digest()
        self._sink = sink
        self._segment_size = segment_size
        self._buf = bytearray()
        self._closed = False
        sink(_PREFIX.pack(MAGIC, VERSION, len(header)) + header)

    def write(self, data: bytes) -> int:
        """Take plaintext; emit every full segment that is not known to be the last."""
        if self._closed:
            raise StoreUsageError("write after close")
        self._buf += data
        # keep at least one byte back: the final segment must carry TAG_FINAL,
        # and only close() knows which segment is the last
        while len(self._buf) > self._segment_size:
            segment = bytes(self._buf[: self._segment_size])
            del self._buf[: self._segment_size]
            self._push(segment, _TAG_MESSAGE)
        return len(data)

    def close(self) -> None:
        """Emit the final segment (possibly empty) with TAG_FINAL."""
        if self._closed:
            return
        self._push(bytes(self._buf), _TAG_FINAL)
        self._buf = bytearray()
        self._closed = True

    def _push(self, segment: bytes, tag: int) -> None:
        self._sink(
            sodium.crypto_secretstream_xchacha20poly1305_push(self._state, segment, self._ad, tag)
        )


def _read_exact(source: BinaryIO, n: int) -> bytes:
    """Read up to ``n`` bytes, looping over short reads; fewer only at EOF."""
    parts: list[bytes] = []
    got = 0
    while got < n:
        part = source.read(n - got)
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)


def _parse_header(source: BinaryIO) -> tuple[bytes, int, list[tuple[bytes, bytes]], bytes]:
    """Read and check the envelope prefix and header; returns (raw header,
    segment size, recipients with their sealed keys, stream header)."""
    prefix = _read_exact(source, _PREFIX.size)
    if len(prefix) != _PREFIX.size:
        raise BadCiphertext("not an encrypted blob: too short for the envelope prefix")
    magic, version, header_len = _PREFIX.unpack(prefix)
    if magic != MAGIC:
        raise BadCiphertext("not an encrypted blob: bad magic")
    if version != VERSION:
        raise BadCiphertext(f"unsupported envelope version {version}")
    if header_len > MAX_HEADER_BYTES:
        raise BadCiphertext(f"envelope header of {header_len} bytes exceeds limit")
    raw = _read_exact(source, header_len)
    if len(raw) != header_len:
        raise BadCiphertext("truncated envelope header")
    try:
        fields = expect_list(decode(raw, MAX_HEADER_BYTES), 3, what="envelope header")
        segment_size = expect_int(fields[0], what="segment size", lo=MIN_SEGMENT_SIZE,
                                  hi=MAX_SEGMENT_SIZE)
        entries = expect_list(fields[1], what="recipients", max_length=MAX_RECIPIENTS)
        recipients = []
        for entry in entries:
            pair = expect_list(entry, 2, what="recipient")
            recipients.append((expect_bytes(pair[0], what="recipient key", size=PUBKEY_SIZE),
                               expect_bytes(pair[1], what="sealed key", size=SEALED_KEY_SIZE)))
        stream_header = expect_bytes(fields[2], what="stream header", size=STREAM_HEADER_SIZE)
    except DecodeError as exc:
        raise BadCiphertext(f"malformed envelope header: {exc}") from None
    if not recipients:
        raise BadCiphertext("envelope has no recipients")
    return raw, segment_size, recipients, stream_header


def recipients_of(source: BinaryIO) -> list[bytes]:
    """The Ed25519 public keys an envelope is sealed to (reads only the header)."""
    return [pub for pub, _ in _parse_header(source)[2]]


def _open_key(recipients: list[tuple[bytes, bytes]], seed: bytes) -> bytes:
    if not isinstance(seed, bytes) or len(seed) != 32:
        raise StoreUsageError("an Ed25519 seed is 32 bytes")
    signing = nacl.signing.SigningKey(seed)
    mine = bytes(signing.verify_key)
    for pub, sealed in recipients:
        if pub == mine:
            box = nacl.public.SealedBox(signing.to_curve25519_private_key())
            try:
                return box.decrypt(sealed)
            except nacl.exceptions.CryptoError:
                raise BadCiphertext("the key sealed to this account does not open") from None
    names = ", ".join(address_of(pub).hex() for pub, _ in recipients)
    raise NotARecipient(
        f"this blob is encrypted to {names}; account {address_of(mine).hex()} is not a recipient"
    )


class DecryptingReader(io.RawIOBase):
    """Pull-style decryptor over a readable envelope; yields the plaintext.

    Holds one segment in memory. Raises ``NotARecipient`` at construction if
    ``seed`` is not a recipient, ``BadCiphertext`` on read if the stream does
    not authenticate, is truncated or has trailing bytes.
    """

    def __init__(self, source: BinaryIO, seed: bytes) -> None:
        super().__init__()
        raw, self._segment_size, recipients, stream_header = _parse_header(source)
        key = _open_key(recipients, seed)
        self._ad = hashlib.sha256(raw).digest()
        self._state = sodium.crypto_secretstream_xchacha20poly1305_state()
        try:
            sodium.crypto_secretstream_xchacha20poly1305_init_pull(
                self._state, stream_header, key)
        except nacl.exceptions.CryptoError:
            raise BadCiphertext("bad secretstream header") from None
        self._source = source
        self._buf = b""
        self._pos = 0
        self._final = False

    def readable(self) -> bool:
        return True

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        while self._pos >= len(self._buf):
            if self._final:
                return 0
            self._next_segment()
        n = min(len(target), len(self._buf) - self._pos)
        target[:n] = self._buf[self._pos:self._pos + n]
        self._pos += n
        return n

    def _next_segment(self) -> None:
        wire = _read_exact(self._source, self._segment_size + ABYTES)
        if not wire:
            raise BadCiphertext("encrypted blob is truncated: no final segment")
        try:
            plain, tag = sodium.crypto_secretstream_xchacha20poly1305_pull(
                self._state, wire, self._ad)
        except nacl.exceptions.CryptoError:
            raise BadCiphertext("encrypted segment does not authenticate "
                                "(tampered, reordered or truncated)") from None
        if tag == _TAG_FINAL:
            if self._source.read(1):
                raise BadCiphertext("bytes after the final encrypted segment")
            self._final = True
        elif tag != _TAG_MESSAGE or len(plain) != self._segment_size:
            raise BadCiphertext("unexpected short or oddly tagged segment")
        self._buf = plain
        self._pos = 0


def encrypt_bytes(data: bytes, recipients: Sequence[bytes], *,
                  segment_size: int = SEGMENT_SIZE) -> bytes:
    """Whole-buffer convenience for small payloads and tests."""
    out = bytearray()
    writer = EncryptingWriter(out.extend, recipients, segment_size=segment_size)
    writer.write(data)
    writer.close()
    return bytes(out)


def decrypt_bytes(data: bytes, seed: bytes) -> bytes:
    """Whole-buffer convenience for small payloads and tests."""
    return DecryptingReader(io.BytesIO(data), seed).read()
