"""Blob manifests: what a blob id commits to.

A blob is a byte string split into chunks of ``chunk_size`` bytes (the last
one may be short; an empty blob has no chunks). The manifest lists the
SHA-256 of every chunk; the blob id is::

    sha256(b"oml/blob/v1\\x00" + encode([size, chunk_size, kind, encrypted, merkle_root]))

with ``encrypted`` as 0/1 and ``merkle_root`` the RFC 6962 Merkle tree hash
over the chunk hashes (leaf ``H(0x00 || chunk_hash)``, node
``H(0x01 || left || right)``, the empty tree ``H(b"")``). The id therefore
commits to every field of the manifest, so a peer checks a received manifest
with ``Manifest.decode(data).blob_id == wanted_id`` and then every chunk
against its hash before writing it. The Merkle root (rather than a hash of
the flat list) leaves room for proving one chunk without the whole manifest.

The manifest's wire form is the canonical encoding (``consensus.encoding``)
of ``[size, chunk_size, kind, encrypted, [chunk_hash, ...]]``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from consensus.encoding import (
    DecodeError,
    decode,
    encode,
    expect_bytes,
    expect_int,
    expect_list,
)
from consensus.merkle import merkle_root as merkle_root  # the one RFC 6962 tree of the project

from .errors import BadManifest

#: Default chunk size: big enough that per-chunk overhead is small, small
#: enough that a chunk is a cheap unit to verify, retry and hold in memory.
CHUNK_SIZE = 1 << 20
MIN_CHUNK_SIZE = 1 << 16
MAX_CHUNK_SIZE = 1 << 22
#: Bounds a manifest to about 2.2 MB (34 encoded bytes per chunk hash).
MAX_CHUNKS = 1 << 16
HASH_SIZE = 32

KIND_FILE = 0
#: The plaintext is a deterministic tar of a directory (see ``archive``).
KIND_DIR = 1
KINDS = (KIND_FILE, KIND_DIR)

BLOB_ID_DOMAIN = b"oml/blob/v1\x00"
#: Upper bound of an encoded manifest: the five-field frame plus 34 bytes per hash.
MAX_MANIFEST_BYTES = 64 + (HASH_SIZE + 2) * MAX_CHUNKS



def chunk_hash(data: bytes) -> bytes:
    """The hash a manifest lists for one chunk: plain SHA-256 of its bytes."""
    return hashlib.sha256(data).digest()


def chunk_count(size: int, chunk_size: int) -> int:
    """How many chunks a blob of ``size`` bytes has (0 for an empty blob)."""
    return -(-size // chunk_size)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_chunk_size(chunk_size: object) -> int:
    if not _is_int(chunk_size):
        raise BadManifest(f"chunk_size must be an int, got {type(chunk_size).__name__}")
    assert isinstance(chunk_size, int)
    if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE or chunk_size & (chunk_size - 1):
        raise BadManifest(
            f"chunk_size {chunk_size} is not a power of two in "
            f"[{MIN_CHUNK_SIZE}, {MAX_CHUNK_SIZE}]"
        )
    return chunk_size


@dataclass(frozen=True, slots=True, kw_only=True)
class Manifest:
    """Size, chunking, kind, encryption flag and chunk hashes of one blob.

    Validated on construction, so an invalid manifest cannot exist: every
    consumer may trust the fields.

    Raises:
        BadManifest: a field is of the wrong type or outside the limits, or
            the number of hashes does not match ``size`` and ``chunk_size``.
    """

    size: int
    chunk_size: int
    kind: int
    encrypted: bool
    chunk_hashes: tuple[bytes, ...]

    def __post_init__(self) -> None:
        chunk_size = _check_chunk_size(self.chunk_size)
        if not _is_int(self.size) or self.size < 0:
            raise BadManifest(f"size must be a non-negative int, got {self.size!r}")
        if self.size > MAX_CHUNKS * chunk_size:
            raise BadManifest(
                f"size {self.size} exceeds {MAX_CHUNKS} chunks of {chunk_size} bytes"
            )
        if not _is_int(self.kind) or self.kind not in KINDS:
            raise BadManifest(f"unknown kind {self.kind!r}")
        if not isinstance(self.encrypted, bool):
            raise BadManifest(f"encrypted must be a bool, got {self.encrypted!r}")
        if not isinstance(self.chunk_hashes, tuple):
            raise BadManifest("chunk_hashes must be a tuple")
        want = chunk_count(self.size, chunk_size)
        if len(self.chunk_hashes) != want:
            raise BadManifest(
                f"{len(self.chunk_hashes)} chunk hashes for {self.size} bytes "
                f"in chunks of {chunk_size} (want {want})"
            )
        for i, h in enumerate(self.chunk_hashes):
            if not isinstance(h, bytes) or len(h) != HASH_SIZE:
                raise BadManifest(f"chunk hash {i} is not {HASH_SIZE} bytes")

    @property
    def chunk_count(self) -> int:
        """Number of chunks (0 for an empty blob)."""
        return len(self.chunk_hashes)

    @property
    def merkle_root(self) -> bytes:
        """RFC 6962 root over the chunk hashes."""
        return merkle_root(self.chunk_hashes)

    @property
    def blob_id(self) -> bytes:
        """32-byte id committing to every field (see the module docstring)."""
        header = encode(
            [self.size, self.chunk_size, self.kind, int(self.encrypted), self.merkle_root]
        )
        return hashlib.sha256(BLOB_ID_DOMAIN + header).digest()

    def chunk_len(self, index: int) -> int:
        """Length of chunk ``index``; only the last one may be short.

        Raises:
            IndexError: ``index`` is not a chunk of this blob.
        """
        if not _is_int(index) or not 0 <= index < len(self.chunk_hashes):
            raise IndexError(f"chunk {index!r} outside [0, {len(self.chunk_hashes)})")
        return min(self.chunk_size, self.size - index * self.chunk_size)

    def encode(self) -> bytes:
        """Canonical bytes: ``[size, chunk_size, kind, encrypted, [hash, ...]]``."""
        return encode(
            [self.size, self.chunk_size, self.kind, int(self.encrypted), list(self.chunk_hashes)]
        )

    @classmethod
    def decode(cls, data: bytes) -> Manifest:
        """Parse untrusted bytes.

        Raises:
            BadManifest: not a canonical encoding of a valid manifest.
        """
        try:
            fields = expect_list(decode(data, MAX_MANIFEST_BYTES), 5, what="manifest")
            size = expect_int(fields[0], what="size")
            chunk_size = expect_int(fields[1], what="chunk_size")
            kind = expect_int(fields[2], what="kind")
            encrypted = expect_int(fields[3], what="encrypted", hi=1)
            raw = expect_list(fields[4], what="chunk_hashes", max_length=MAX_CHUNKS)
            hashes = tuple(
                expect_bytes(h, what=f"chunk hash {i}", size=HASH_SIZE) for i, h in enumerate(raw)
            )
        except DecodeError as exc:
            raise BadManifest(f"malformed manifest: {exc}") from None
        return cls(
            size=size, chunk_size=chunk_size, kind=kind, encrypted=bool(encrypted),
            chunk_hashes=hashes,
        )
