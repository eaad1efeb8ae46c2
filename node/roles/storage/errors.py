"""Typed errors of the blob store.

Every error carries a short machine ``code`` so that RPC and the transfer
protocol can report it without parsing messages. ``BadChunk`` and
``BadManifest`` describe bytes that came from outside (a peer, a file on
disk that changed); ``StoreUsageError`` is our own caller's misuse.
"""

from __future__ import annotations


class StorageError(Exception):
    """Base of all storage errors; catch this one type at a boundary."""

    code: str = "storage_error"


class BlobNotFound(StorageError):
    """Unknown blob id: no manifest for it in this store."""

    code = "not_found"


class ChunkMissing(StorageError):
    """The manifest is known but this chunk is not (yet) on disk."""

    code = "chunk_missing"


class BadChunk(StorageError):
    """Data does not hash to the manifest's chunk hash (or ciphertext was tampered)."""

    code = "bad_chunk"


class BadManifest(StorageError):
    """A manifest is malformed, non-canonical, over the limits or not the wanted id."""

    code = "bad_manifest"


class QuotaExceeded(StorageError):
    """Storing this would take the chunk data over the store's disk quota."""

    code = "quota_exceeded"


class NotARecipient(StorageError):
    """An encrypted blob is not sealed to the key we were given."""

    code = "not_a_recipient"


class StoreUsageError(StorageError):
    """Our own misuse: a path that does not exist, a bad argument, a closed store."""

    code = "usage"


class BadCiphertext(BadChunk):
    """An encrypted blob's envelope is malformed, tampered with or truncated.

    A subclass of ``BadChunk`` because it is the same situation one layer up:
    bytes that do not authenticate. Chunk hashes catch corruption in transit;
    this catches a blob that was built wrong (or maliciously) to begin with.
    """

    code = "bad_ciphertext"


class UnsafeArchive(StorageError):
    """A directory blob's tar holds a member we refuse to unpack (link, device,
    absolute path, ``..``) or is not a valid archive."""

    code = "unsafe_archive"


class UnsupportedFile(StoreUsageError):
    """A directory to store holds something other than regular files and
    directories (a symlink, a device, a socket)."""

    code = "unsupported_file"
