"""The blob store: chunk files on disk, an LMDB index beside them.

Layout under ``root``::

    index/                 LMDB environment (its own; the ledger's is separate)
    chunks/<blob-id-hex>/<index:05d>   one file per chunk, exactly its bytes
    tmp/<pid>-<token>[...]  chunks being written (staging), removed on success
    trash/<hex>-<token>     chunk folders of collected blobs, deleted after commit

Index tables: ``manifests`` (blob id -> encoded manifest), ``blobs`` (blob id
-> summary ``[pinned, present, present_bytes, size, chunk_count, kind,
encrypted]``), ``chunks`` (blob id + u32 index -> present) and ``meta``
(``used`` = bytes of chunk data present, what the quota limits).

Several processes may open one store (the CLI writes while the daemon serves).
LMDB serialises write transactions across processes; the rule that keeps the
files and the index in step is: **every change to names under ``chunks/``
(mkdir, rename into place, rename to trash, unlinking a corrupt chunk)
happens inside a write transaction, after re-checking the index; every byte
of chunk data is written, fsynced, read or deleted outside one.** A chunk is
written to a private temp file first and renamed into place inside the
transaction that marks it present, so the index never names a half-written
file, and a reader never sees one. Collection renames a blob's folder to
``trash/`` inside its transaction, so a concurrent writer that re-adds the
blob starts from an empty folder.

Durability (``durable=True``, the default): a chunk file is fsynced before it
is renamed into place, the LMDB commit is synced, and the chunk folder is
fsynced after the commit. A machine crash between the commit and that last
fsync can lose a rename the index already records; ``read_chunk`` notices the
missing (or corrupt) file, drops it from the index and reports
``ChunkMissing`` (``BadChunk``), so a fetch simply gets it again.
``durable=False`` skips all fsyncs (tests, benchmarks).

Within one process, all ``BlobStore`` objects on one root share one LMDB
environment (LMDB forbids opening an environment twice in a process); a
store opened before a fork is refused in the child, which must be started
with ``spawn`` to open its own. The store is thread-safe; its calls block, so
async callers run them in a worker thread.
"""

from __future__ import annotations

import os
import secrets
import shutil
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast

import lmdb

from consensus.crypto import address_of

from .archive import unpack_archive, write_archive
from .crypto import DecryptingReader, EncryptingWriter, recipients_of
from .errors import (
    BadChunk,
    BlobNotFound,
    ChunkMissing,
    NotARecipient,
    QuotaExceeded,
    StorageError,
    StoreUsageError,
)
from .index import USED, Record, SharedEnv, acquire_env, chunk_key, release_env
from .manifest import (
    CHUNK_SIZE,
    KIND_DIR,
    KIND_FILE,
    MAX_CHUNK_SIZE,
    MIN_CHUNK_SIZE,
    Manifest,
    chunk_hash,
)
from .streams import (
    BlobReader,
    Progress,
    Stager,
    chunk_name,
    copy_file,
    export_file,
    write_file,
)

_MANIFEST_CACHE = 8


@dataclass(frozen=True, slots=True, kw_only=True)
class BlobInfo:
    """One blob as ``list`` reports it."""

    blob_id: bytes
    size: int
    kind: int
    encrypted: bool
    chunks: int
    present: int
    present_bytes: int
    pinned: bool

    @property
    def complete(self) -> bool:
        return self.present == self.chunks

    def to_json(self) -> dict[str, Any]:
        """The shape RPC ``blob_status``/``blob_list`` and ``blob ls --json`` show."""
        return {"blob_id": self.blob_id.hex(), "size": self.size,
                "kind": "dir" if self.kind == KIND_DIR else "file",
                "encrypted": self.encrypted, "chunks": self.chunks,
                "chunks_present": self.present, "bytes_present": self.present_bytes,
                "pinned": self.pinned, "complete": self.complete}


def _info(blob_id: bytes, r: Record) -> BlobInfo:
    return BlobInfo(blob_id=blob_id, size=r.size, kind=r.kind, encrypted=r.encrypted,
                    chunks=r.chunks, present=r.present, present_bytes=r.present_bytes,
                    pinned=r.pinned)


def _fsync_dir(path: Path) -> None:
    with suppress(FileNotFoundError):
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _check_id(blob_id: object) -> bytes:
    if not isinstance(blob_id, bytes) or len(blob_id) != 32:
        raise BlobNotFound(f"{blob_id!r} is not a blob id (32 bytes)")
    return blob_id


class BlobStore:
    """Content-addressed chunk store with pins, a quota and collection.

    Satisfies the transfer protocol's ``ChunkSource`` and ``ChunkSink``.
    """

    def __init__(self, root: Path, shared: SharedEnv, *, quota_bytes: int, durable: bool) -> None:
        self.root = root
        self.quota_bytes = quota_bytes
        self.durable = durable
        self._env: lmdb.Environment | None = shared.env
        self._pid = shared.pid
        self._dbs = shared.dbs
        self._chunks_dir = root / "chunks"
        self._tmp_dir = root / "tmp"
        self._trash_dir = root / "trash"
        self._cache: OrderedDict[bytes, Manifest] = OrderedDict()
        self._lock = threading.Lock()

    # --- lifecycle -----------------------------------------------------------

    @classmethod
    def open(cls, root: Path, *, quota_bytes: int, durable: bool = True) -> BlobStore:
        """Open (creating if needed) the store at ``root``.

        ``quota_bytes`` bounds the chunk data this store holds (manifests and
        the index are not counted). Several stores (threads, processes) may
        share a root; each passes its own quota, checked at its own writes.

        Raises:
            StoreUsageError: ``root`` cannot be used, or the quota is negative.
        """
        if isinstance(quota_bytes, bool) or not isinstance(quota_bytes, int) or quota_bytes < 0:
            raise StoreUsageError(f"quota_bytes must be a non-negative int, got {quota_bytes!r}")
        root = Path(root)
        try:
            for sub in ("index", "chunks", "tmp", "trash"):
                (root / sub).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUsageError(f"cannot create blob store at {root}: {exc}") from None
        store = cls(root, acquire_env(root / "index", durable), quota_bytes=quota_bytes,
                    durable=durable)
        store._sweep()
        return store

    def close(self) -> None:
        """Release this store's handle on the index; further calls raise."""
        if self._env is not None:
            self._env = None
            release_env(self.root / "index")

    def __enter__(self) -> BlobStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # --- transactions --------------------------------------------------------

    def _live_env(self) -> lmdb.Environment:
        if self._env is None:
            raise StoreUsageError("blob store is closed")
        if os.getpid() != self._pid:
            raise StoreUsageError("blob store was opened before a fork; open it in this process")
        return self._env

    @contextmanager
    def _read(self) -> Iterator[lmdb.Transaction]:
        with self._live_env().begin(write=False, buffers=False) as txn:
            yield txn

    @contextmanager
    def _write(self) -> Iterator[lmdb.Transaction]:
        try:
            with self._live_env().begin(write=True) as txn:
                yield txn
        except lmdb.MapFullError:
            raise StorageError(f"blob index at {self.root / 'index'} is full") from None

    def _record(self, txn: lmdb.Transaction, blob_id: bytes) -> Record | None:
        raw = txn.get(blob_id, db=self._dbs[b"blobs"])
        return None if raw is None else Record.decode(raw)

    def _need_record(self, txn: lmdb.Transaction, blob_id: bytes) -> Record:
        rec = self._record(txn, _check_id(blob_id))
        if rec is None:
            raise BlobNotFound(f"no blob {blob_id.hex()} in this store")
        return rec

    def _put_record(self, txn: lmdb.Transaction, blob_id: bytes, rec: Record) -> None:
        txn.put(blob_id, rec.encode(), db=self._dbs[b"blobs"])

    def _used(self, txn: lmdb.Transaction) -> int:
        raw = txn.get(USED, db=self._dbs[b"meta"])
        return 0 if raw is None else int.from_bytes(raw, "big")

    def _set_used(self, txn: lmdb.Transaction, used: int) -> None:
        txn.put(USED, used.to_bytes(8, "big"), db=self._dbs[b"meta"])

    def _present_set(self, txn: lmdb.Transaction, blob_id: bytes) -> set[int]:
        found: set[int] = set()
        with txn.cursor(db=self._dbs[b"chunks"]) as cur:
            if cur.set_range(blob_id):
                for key in cur.iternext(keys=True, values=False):
                    if key[:32] != blob_id:
                        break
                    found.add(int.from_bytes(key[32:], "big"))
        return found

    def _check_quota(self, used: int, adding: int) -> None:
        if used + adding > self.quota_bytes:
            raise QuotaExceeded(
                f"storing {adding} more bytes would exceed the quota of {self.quota_bytes} "
                f"bytes ({used} used)"
            )

    # --- manifests -----------------------------------------------------------

    def add_manifest(self, manifest: Manifest, *, pin: bool = False) -> None:
        """Start (or resume) holding ``manifest``'s blob; idempotent.

        ``pin=True`` also pins it (an existing pin is never removed here).
        """
        if not isinstance(manifest, Manifest):
            raise StoreUsageError("add_manifest needs a Manifest")
        blob_id = manifest.blob_id
        with self._write() as txn:
            rec = self._record(txn, blob_id)
            if rec is None:
                txn.put(blob_id, manifest.encode(), db=self._dbs[b"manifests"])
                self._put_record(txn, blob_id, Record.new(manifest, pin))
            elif pin and not rec.pinned:
                rec.pinned = True
                self._put_record(txn, blob_id, rec)
        self._remember(blob_id, manifest)

    def _remember(self, blob_id: bytes, manifest: Manifest) -> None:
        with self._lock:
            self._cache[blob_id] = manifest
            self._cache.move_to_end(blob_id)
            while len(self._cache) > _MANIFEST_CACHE:
                self._cache.popitem(last=False)

    def manifest(self, blob_id: bytes) -> Manifest:
        """The manifest of a blob this store holds (complete or not).

        Raises:
            BlobNotFound: no such blob here.
        """
        with self._read() as txn:
            self._need_record(txn, blob_id)
            with self._lock:
                cached = self._cache.get(blob_id)
            if cached is not None:
                return cached
            raw = txn.get(blob_id, db=self._dbs[b"manifests"])
        manifest = Manifest.decode(raw)
        self._remember(blob_id, manifest)
        return manifest

    def has_manifest(self, blob_id: bytes) -> bool:
        with self._read() as txn:
            return isinstance(blob_id, bytes) and self._record(txn, blob_id) is not None

    def present_chunks(self, blob_id: bytes) -> int:
        """How many of the blob's chunks are on disk.

        Raises:
            BlobNotFound: no such blob here.
        """
        with self._read() as txn:
            return self._need_record(txn, blob_id).present

    def is_complete(self, blob_id: bytes) -> bool:
        with self._read() as txn:
            rec = self._need_record(txn, blob_id)
        return rec.present == rec.chunks

    def missing_chunks(self, blob_id: bytes) -> list[int]:
        """Indices a fetch still needs, ascending.

        Raises:
            BlobNotFound: no such blob here.
        """
        with self._read() as txn:
            rec = self._need_record(txn, blob_id)
            if rec.present == rec.chunks:
                return []
            present = self._present_set(txn, blob_id)
        return [i for i in range(rec.chunks) if i not in present]

    # --- chunks --------------------------------------------------------------

    def _chunk_path(self, blob_id: bytes, index: int) -> Path:
        return self._chunks_dir / blob_id.hex() / chunk_name(index)

    def _tmp_path(self) -> Path:
        return self._tmp_dir / f"{os.getpid()}-{secrets.token_hex(8)}"

    def write_chunk(self, blob_id: bytes, index: int, data: bytes) -> None:
        """Verify ``data`` as chunk ``index`` of the blob, then store it.

        Nothing touches the disk before the hash is checked. A chunk already
        present is accepted silently (idempotent).

        Raises:
            BlobNotFound: the manifest was never added (or was collected).
            BadChunk: ``data`` is not that chunk (wrong length or hash, or no
                such index).
            QuotaExceeded: storing it would exceed the quota; nothing written.
        """
        manifest = self.manifest(blob_id)
        self._verify(manifest, blob_id, index, data)
        key = chunk_key(blob_id, index)
        with self._read() as txn:
            if txn.get(key, db=self._dbs[b"chunks"]) is not None:
                return
            self._check_quota(self._used(txn), len(data))
        tmp = self._tmp_path()
        write_file(tmp, bytes(data), self.durable)
        try:
            with self._write() as txn:
                rec = self._need_record(txn, blob_id)
                if txn.get(key, db=self._dbs[b"chunks"]) is not None:
                    return
                used = self._used(txn)
                self._check_quota(used, len(data))
                final = self._chunk_path(blob_id, index)
                final.parent.mkdir(exist_ok=True)
                os.replace(tmp, final)
                txn.put(key, b"", db=self._dbs[b"chunks"])
                rec.present += 1
                rec.present_bytes += len(data)
                self._put_record(txn, blob_id, rec)
                self._set_used(txn, used + len(data))
        finally:
            with suppress(FileNotFoundError):
                tmp.unlink()
        if self.durable:
            _fsync_dir(self._chunk_path(blob_id, index).parent)

    @staticmethod
    def _verify(manifest: Manifest, blob_id: bytes, index: int, data: bytes) -> None:
        if isinstance(index, bool) or not isinstance(index, int) \
                or not 0 <= index < manifest.chunk_count:
            raise BadChunk(f"blob {blob_id.hex()} has no chunk {index!r} "
                           f"({manifest.chunk_count} chunks)")
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise StoreUsageError("chunk data must be bytes")
        want = manifest.chunk_len(index)
        if len(data) != want:
            raise BadChunk(f"chunk {index} of {blob_id.hex()} is {len(data)} bytes, "
                           f"the manifest says {want}")
        if chunk_hash(data) != manifest.chunk_hashes[index]:
            raise BadChunk(f"chunk {index} of {blob_id.hex()} does not match its hash")

    def read_chunk(self, blob_id: bytes, index: int) -> bytes:
        """The verified bytes of one chunk.

        Raises:
            BlobNotFound: no such blob here.
            ChunkMissing: the chunk is not on disk (or was lost: then it is
                dropped from the index so a fetch gets it again).
            BadChunk: the file on disk no longer matches its hash; it has been
                removed and dropped from the index.
        """
        manifest = self.manifest(blob_id)
        if isinstance(index, bool) or not isinstance(index, int) \
                or not 0 <= index < manifest.chunk_count:
            raise ChunkMissing(f"blob {blob_id.hex()} has no chunk {index!r} "
                               f"({manifest.chunk_count} chunks)")
        with self._read() as txn:
            if txn.get(chunk_key(blob_id, index), db=self._dbs[b"chunks"]) is None:
                raise ChunkMissing(f"chunk {index} of {blob_id.hex()} is not here")
        try:
            with open(self._chunk_path(blob_id, index), "rb") as f:
                data = f.read(manifest.chunk_size + 1)
        except FileNotFoundError:
            self._forget_chunk(blob_id, index)
            raise ChunkMissing(f"chunk {index} of {blob_id.hex()} was lost from disk; "
                               "dropped from the index") from None
        try:
            self._verify(manifest, blob_id, index, data)
        except BadChunk:
            self._forget_chunk(blob_id, index)
            raise BadChunk(f"chunk {index} of {blob_id.hex()} is corrupt on disk; "
                           "removed (fetch it again)") from None
        return data

    def _forget_chunk(self, blob_id: bytes, index: int) -> None:
        """Drop a lost or corrupt chunk from the index and the disk."""
        key = chunk_key(blob_id, index)
        length = self.manifest(blob_id).chunk_len(index)
        with self._write() as txn:
            rec = self._need_record(txn, blob_id)
            if txn.get(key, db=self._dbs[b"chunks"]) is None:
                return
            txn.delete(key, db=self._dbs[b"chunks"])
            rec.present -= 1
            rec.present_bytes -= length
            self._put_record(txn, blob_id, rec)
            self._set_used(txn, max(self._used(txn) - length, 0))
            with suppress(FileNotFoundError):
                self._chunk_path(blob_id, index).unlink()

    # --- putting files and directories ---------------------------------------

    def put_file(self, path: Path, *, recipients: Sequence[bytes] = (), pin: bool = True,
                 progress: Progress | None = None, chunk_size: int = CHUNK_SIZE) -> Manifest:
        """Store a file, or a directory as one deterministic archive (``KIND_DIR``).

        With ``recipients`` (Ed25519 public keys) the bytes are encrypted
        before chunking (see ``crypto``). Streams: memory stays bounded by a
        couple of chunks whatever the size. ``progress`` gets the number of
        source bytes (file contents) read, as they are read; the total is the
        file's size or ``archive.tree_size(path)``. Storing a blob that is
        already here writes no chunk twice (and pins it if ``pin``).

        Raises:
            StoreUsageError: ``path`` does not exist or is a special file, a
                recipient is not an Ed25519 public key, bad ``chunk_size``.
            UnsupportedFile: a directory holds a symlink or special file.
            QuotaExceeded: the new chunks do not fit; nothing is stored.
        """
        path = Path(path)
        kind = self._kind_of(path)
        _check_chunk_size(chunk_size)
        staging = self._tmp_path()
        staging.mkdir()
        try:
            stager = Stager(staging, chunk_size, self._room, self.durable)
            encryptor = EncryptingWriter(stager.write, list(recipients)) if recipients else None
            sink = cast(BinaryIO, encryptor or stager)
            if kind == KIND_DIR:
                write_archive(path, sink, progress=progress)
            else:
                copy_file(path, sink, progress)
            if encryptor is not None:
                encryptor.close()
            stager.finish()
            manifest = Manifest(size=stager.size, chunk_size=chunk_size, kind=kind,
                                encrypted=encryptor is not None,
                                chunk_hashes=tuple(stager.hashes))
            self._commit_staged(manifest, staging, pin=pin, discarded=stager.discarded)
            return manifest
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    @staticmethod
    def _kind_of(path: Path) -> int:
        if path.is_symlink() and path.is_dir():
            raise StoreUsageError(f"{path} is a symlink to a directory; give the directory")
        if path.is_dir():
            return KIND_DIR
        if path.is_file():
            return KIND_FILE
        if not path.exists():
            raise StoreUsageError(f"{path} does not exist")
        raise StoreUsageError(f"{path} is not a regular file or directory")

    def _room(self) -> int:
        """Bytes of chunk data that still fit under the quota right now."""
        with self._read() as txn:
            return self.quota_bytes - self._used(txn)

    def _commit_staged(self, manifest: Manifest, staging: Path, *, pin: bool,
                       discarded: bool) -> None:
        """Move staged chunks that are not yet here into place and record the blob."""
        blob_id = manifest.blob_id
        final_dir = self._chunks_dir / blob_id.hex()
        with self._write() as txn:
            rec = self._record(txn, blob_id)
            present = set() if rec is None or not rec.present else self._present_set(txn, blob_id)
            needed = [i for i in range(manifest.chunk_count) if i not in present]
            adding = sum(manifest.chunk_len(i) for i in needed)
            used = self._used(txn)
            self._check_quota(used, adding)
            if needed and discarded:  # the stager ran out of room after all
                raise QuotaExceeded(f"storing {adding} more bytes would exceed the quota "
                                    f"of {self.quota_bytes} bytes ({used} used)")
            if rec is None:
                txn.put(blob_id, manifest.encode(), db=self._dbs[b"manifests"])
                rec = Record.new(manifest, pin)
            if needed:
                if not final_dir.exists() and len(needed) == manifest.chunk_count:
                    os.rename(staging, final_dir)
                else:
                    final_dir.mkdir(exist_ok=True)
                    for i in needed:
                        os.replace(staging / chunk_name(i), final_dir / chunk_name(i))
                for i in needed:
                    txn.put(chunk_key(blob_id, i), b"", db=self._dbs[b"chunks"])
            rec.present, rec.present_bytes = manifest.chunk_count, manifest.size
            rec.pinned = rec.pinned or pin
            self._put_record(txn, blob_id, rec)
            self._set_used(txn, used + adding)
        self._remember(blob_id, manifest)
        if self.durable and needed:
            _fsync_dir(final_dir)
            _fsync_dir(self._chunks_dir)

    # --- reading and exporting -----------------------------------------------

    def open_reader(self, blob_id: bytes, *, progress: Progress | None = None) -> BinaryIO:
        """The stored bytes (ciphertext for an encrypted blob), chunk by chunk,
        each verified against the manifest as it is read.

        ``progress`` gets the length of every chunk as it is verified.

        Raises:
            BlobNotFound: no such blob here.
            ChunkMissing: the blob is not complete.
        """
        with self._read() as txn:
            rec = self._need_record(txn, blob_id)
        if rec.present != rec.chunks:
            raise ChunkMissing(f"blob {blob_id.hex()} is incomplete: "
                               f"{rec.present} of {rec.chunks} chunks here")
        reader = BlobReader(lambda i: self.read_chunk(blob_id, i), rec.chunks, progress)
        return cast(BinaryIO, reader)

    def export(self, blob_id: bytes, out: Path, *, seed: bytes | None = None,
               progress: Progress | None = None, raw: bool = False,
               overwrite: bool = False) -> None:
        """Write the blob's content to ``out``: verified, decrypted, unpacked.

        A file blob becomes the file ``out`` (an existing file is replaced
        only with ``overwrite``); a directory blob is unpacked into ``out``,
        which must not exist or be empty. An encrypted blob needs ``seed``,
        the Ed25519 seed of one of its recipients. ``raw=True`` writes the
        stored bytes as they are (ciphertext, tar) instead. The output appears
        only once everything has verified; a failure leaves nothing behind.
        ``progress`` gets each verified chunk's length (total: manifest size).

        Raises:
            BlobNotFound, ChunkMissing: the blob is unknown or incomplete.
            NotARecipient: encrypted, and ``seed`` is missing or not a recipient.
            BadChunk: a chunk or the ciphertext does not verify.
            UnsafeArchive: a directory blob holds a member we refuse to unpack.
            StoreUsageError: ``out`` cannot be written.
        """
        manifest = self.manifest(blob_id)
        out = Path(out)
        with self.open_reader(blob_id, progress=progress) as reader:
            plain: BinaryIO = reader
            if manifest.encrypted and not raw:
                plain = cast(BinaryIO, DecryptingReader(reader, self._need_seed(blob_id, seed)))
            if manifest.kind == KIND_DIR and not raw:
                unpack_archive(plain, out)
            else:
                export_file(plain, out, overwrite=overwrite, durable=self.durable)

    def _need_seed(self, blob_id: bytes, seed: bytes | None) -> bytes:
        if seed is not None:
            return seed
        with self.open_reader(blob_id) as reader:
            names = ", ".join(address_of(pub).hex() for pub in recipients_of(reader))
        raise NotARecipient(f"blob {blob_id.hex()} is encrypted to {names}; "
                            "the key of one of them is needed to export it")

    # --- pins, listing, collection --------------------------------------------

    def _set_pin(self, blob_id: bytes, pinned: bool) -> None:
        with self._write() as txn:
            rec = self._need_record(txn, blob_id)
            if rec.pinned != pinned:
                rec.pinned = pinned
                self._put_record(txn, blob_id, rec)

    def pin(self, blob_id: bytes) -> None:
        """Keep the blob through ``collect`` (BlobNotFound if unknown)."""
        self._set_pin(blob_id, True)

    def unpin(self, blob_id: bytes) -> None:
        """Let ``collect`` delete the blob (BlobNotFound if unknown)."""
        self._set_pin(blob_id, False)

    def is_pinned(self, blob_id: bytes) -> bool:
        with self._read() as txn:
            return self._need_record(txn, blob_id).pinned

    def list(self) -> list[BlobInfo]:
        """Every blob here, complete or not, in blob id order."""
        with self._read() as txn, txn.cursor(db=self._dbs[b"blobs"]) as cur:
            rows = [(bytes(k), Record.decode(v)) for k, v in cur]
        return [_info(k, r) for k, r in rows]

    def info(self, blob_id: bytes) -> BlobInfo:
        """One blob's summary (BlobNotFound if unknown)."""
        with self._read() as txn:
            return _info(blob_id, self._need_record(txn, blob_id))

    def used_bytes(self) -> int:
        """Bytes of chunk data held (what the quota limits)."""
        with self._read() as txn:
            return self._used(txn)

    def collect(self) -> int:
        """Delete every unpinned blob, complete or not; returns the bytes freed.

        Also removes chunk folders that no blob owns (left by a crash) and
        staging files of processes that are gone. A fetch that must survive
        collection adds its manifest with ``pin=True``: an unpinned fetch in
        progress is collected, and its next ``write_chunk`` is ``BlobNotFound``.
        """
        freed = 0
        with self._write() as txn:
            with txn.cursor(db=self._dbs[b"blobs"]) as cur:
                doomed = [(bytes(k), Record.decode(v)) for k, v in cur]
            doomed = [(k, r) for k, r in doomed if not r.pinned]
            for blob_id, rec in doomed:
                self._drop_blob(txn, blob_id)
                freed += rec.present_bytes
            self._set_used(txn, max(self._used(txn) - freed, 0))
            for name in os.listdir(self._chunks_dir):
                if not self._owned(txn, name):
                    os.rename(self._chunks_dir / name,
                              self._trash_dir / f"{name}-{secrets.token_hex(8)}")
        with self._lock:
            for blob_id, _ in doomed:
                self._cache.pop(blob_id, None)
        self._sweep()
        return freed

    def _drop_blob(self, txn: lmdb.Transaction, blob_id: bytes) -> None:
        with txn.cursor(db=self._dbs[b"chunks"]) as cur:
            if cur.set_range(blob_id):
                while bytes(cur.key()[:32]) == blob_id and cur.delete():
                    pass
        txn.delete(blob_id, db=self._dbs[b"manifests"])
        txn.delete(blob_id, db=self._dbs[b"blobs"])

    def _owned(self, txn: lmdb.Transaction, name: str) -> bool:
        try:
            blob_id = bytes.fromhex(name)
        except ValueError:
            return False
        return len(blob_id) == 32 and self._record(txn, blob_id) is not None

    def _sweep(self) -> None:
        """Delete trash, and staging files whose process is gone."""
        for entry in os.scandir(self._trash_dir):
            shutil.rmtree(entry.path, ignore_errors=True)
        for entry in os.scandir(self._tmp_dir):
            pid, _, _ = entry.name.partition("-")
            if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    with suppress(FileNotFoundError):
                        os.unlink(entry.path)




def _check_chunk_size(chunk_size: int) -> None:
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) \
            or not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE \
            or chunk_size & (chunk_size - 1):
        raise StoreUsageError(f"chunk_size {chunk_size!r} is not a power of two in "
                              f"[{MIN_CHUNK_SIZE}, {MAX_CHUNK_SIZE}]")


