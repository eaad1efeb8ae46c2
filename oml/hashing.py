"""A content hash of model weights that does not depend on file layout.

Two copies of the same weights can be stored very differently: one file or
many shards, tensors in any order, different ``__metadata__`` headers. The
ledger's ``register_model`` and every OML package name a model by its
weights, so the hash must see only what the model *is*::

    weights_hash = SHA-256( "oml/weights/v1" || 0x00 ||
                            for each tensor, sorted by name (UTF-8 bytes):
                              field(name) || field(dtype) ||
                              u32(ndim) || u64(dim) for each dim ||
                              field(raw little-endian tensor bytes) )

with ``field(b) = u64_be(len(b)) || b``. ``dtype`` is the safetensors dtype
code (``F32``, ``BF16``, ...), so the same numbers stored as F32 and as BF16
hash differently, as they should: they are different weights.

Only safetensors files are read (no pickle, no torch import): the header is
parsed here and tensor bytes are streamed, so hashing a multi-gigabyte model
needs little memory.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass
from pathlib import Path

WEIGHTS_DOMAIN = b"oml/weights/v1\x00"
_MAX_HEADER = 100 * 1024 * 1024  # the safetensors spec's own limit
_CHUNK = 1 << 20


class WeightsFileError(ValueError):
    """A weights directory or safetensors file is missing or malformed."""


@dataclass(frozen=True, slots=True)
class _Tensor:
    name: str
    dtype: str
    shape: tuple[int, ...]
    file: Path
    start: int  # absolute byte offset in ``file``
    length: int


def _read_header(path: Path) -> list[_Tensor]:
    """Parse one safetensors header and return its tensors with absolute offsets."""
    try:
        with path.open("rb") as f:
            raw = f.read(8)
            if len(raw) != 8:
                raise WeightsFileError(f"{path}: too short for a safetensors header")
            (size,) = struct.unpack("<Q", raw)
            if size > _MAX_HEADER:
                raise WeightsFileError(f"{path}: safetensors header too large ({size} bytes)")
            header_bytes = f.read(size)
            if len(header_bytes) != size:
                raise WeightsFileError(f"{path}: truncated safetensors header")
            f.seek(0, 2)
            file_size = f.tell()
    except OSError as exc:
        raise WeightsFileError(f"{path}: cannot read: {exc}") from exc
    try:
        header = json.loads(header_bytes)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WeightsFileError(f"{path}: safetensors header is not JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise WeightsFileError(f"{path}: safetensors header is not an object")
    base = 8 + size
    tensors: list[_Tensor] = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype = info["dtype"]
            shape = tuple(info["shape"])
            begin, end = info["data_offsets"]
        except (TypeError, KeyError, ValueError) as exc:
            raise WeightsFileError(f"{path}: bad header entry for {name!r}") from exc
        if (not isinstance(dtype, str) or not all(isinstance(d, int) and d >= 0 for d in shape)
                or not isinstance(begin, int) or not isinstance(end, int)
                or not 0 <= begin <= end or base + end > file_size):
            raise WeightsFileError(f"{path}: bad header entry for {name!r}")
        tensors.append(_Tensor(name, dtype, shape, path, base + begin, end - begin))
    return tensors


def weight_files(model_dir: Path | str) -> list[Path]:
    """The ``*.safetensors`` files directly inside ``model_dir``, sorted by name.

    Raises:
        WeightsFileError: ``model_dir`` is not a directory or holds no safetensors file.
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise WeightsFileError(f"{model_dir}: not a directory")
    files = sorted(p for p in model_dir.glob("*.safetensors") if p.is_file())
    if not files:
        raise WeightsFileError(f"{model_dir}: no *.safetensors weights file")
    return files


def weights_hash(model_dir: Path | str) -> bytes:
    """The layout-independent SHA-256 of every tensor in ``model_dir``'s safetensors files.

    Raises:
        WeightsFileError: no weights, a malformed file, or one tensor name in two shards.
    """
    tensors: dict[str, _Tensor] = {}
    for path in weight_files(model_dir):
        for t in _read_header(path):
            if t.name in tensors:
                raise WeightsFileError(f"tensor {t.name!r} appears in two weight files")
            tensors[t.name] = t
    h = hashlib.sha256(WEIGHTS_DOMAIN)
    for name in sorted(tensors, key=lambda n: n.encode("utf-8")):
        t = tensors[name]
        _field(h, name.encode("utf-8"))
        _field(h, t.dtype.encode("ascii", errors="strict"))
        h.update(struct.pack(">I", len(t.shape)))
        for dim in t.shape:
            h.update(struct.pack(">Q", dim))
        h.update(struct.pack(">Q", t.length))
        with t.file.open("rb") as f:
            f.seek(t.start)
            left = t.length
            while left:
                chunk = f.read(min(_CHUNK, left))
                if not chunk:
                    raise WeightsFileError(f"{t.file}: truncated tensor data for {name!r}")
                h.update(chunk)
                left -= len(chunk)
    return h.digest()


def _field(h: hashlib._Hash, data: bytes) -> None:
    h.update(struct.pack(">Q", len(data)))
    h.update(data)
