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

Which files: every ``*.safetensors`` file directly in the directory (one
``model.safetensors`` or the shards a ``model.safetensors.index.json``
names; the hash is over tensors by name, so how they are sharded does not
matter, and a tensor found in two files is an error). Safetensors are read
without torch or pickle: the header is parsed here and tensor bytes are
streamed, so hashing a multi-gigabyte model needs little memory.

Only when there is no safetensors file, PyTorch pickles are hashed:
``pytorch_model.bin``, or the shards ``pytorch_model.bin.index.json`` names.
They are opened with ``torch.load(weights_only=True)`` (memory-mapped), which
refuses any pickle that would run code (:class:`UnsafeWeightsError`), and
each tensor is hashed exactly as a safetensors tensor would be: its name,
its safetensors dtype code, its shape and its raw little-endian bytes. So a
``.bin`` and its faithful safetensors conversion hash alike, as long as they
hold the same tensor names (``save_pretrained`` drops tied duplicates such
as ``lm_head.weight`` from safetensors, which a ``.bin`` may keep).
"""

from __future__ import annotations

import hashlib
import json
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

WEIGHTS_DOMAIN = b"oml/weights/v1\x00"
_MAX_HEADER = 100 * 1024 * 1024  # the safetensors spec's own limit
_CHUNK = 1 << 20


class WeightsFileError(ValueError):
    """A weights directory or safetensors file is missing or malformed."""


class UnsafeWeightsError(WeightsFileError):
    """A ``.bin`` weights file is a pickle that ``torch.load(weights_only=True)`` refuses."""


# torch dtype name -> safetensors dtype code
_TORCH_DTYPES = {"float64": "F64", "float32": "F32", "float16": "F16", "bfloat16": "BF16",
                 "int64": "I64", "int32": "I32", "int16": "I16", "int8": "I8", "uint8": "U8",
                 "bool": "BOOL", "float8_e4m3fn": "F8_E4M3", "float8_e5m2": "F8_E5M2"}


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


def torch_weight_files(model_dir: Path | str) -> list[Path]:
    """``pytorch_model.bin``, or the shards its index names, directly inside ``model_dir``.

    Raises:
        WeightsFileError: neither exists, or the index is malformed or names a missing file.
    """
    model_dir = Path(model_dir)
    single = model_dir / "pytorch_model.bin"
    if single.is_file():
        return [single]
    index = model_dir / "pytorch_model.bin.index.json"
    if not index.is_file():
        raise WeightsFileError(f"{model_dir}: no *.safetensors or pytorch_model.bin weights")
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        names = sorted(set(weight_map.values()))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError,
            AttributeError) as exc:
        raise WeightsFileError(f"{index}: not a weights index: {exc}") from exc
    files = []
    for name in names:
        if not isinstance(name, str) or "/" in name or "\\" in name or name.startswith("."):
            raise WeightsFileError(f"{index}: bad shard name {name!r}")
        if not (model_dir / name).is_file():
            raise WeightsFileError(f"{index}: shard {name} is missing")
        files.append(model_dir / name)
    return files


def load_torch_weights(path: Path | str) -> dict[str, object]:
    """A ``.bin`` state dict loaded with ``torch.load(weights_only=True)`` on the CPU.

    Raises:
        UnsafeWeightsError: the pickle needs more than tensors and plain containers.
        WeightsFileError: unreadable, truncated, or not a name -> tensor mapping.
    """
    import pickle

    import torch

    path = Path(path)
    try:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # a legacy (non-zip) file cannot be memory-mapped
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UnsafeWeightsError(f"{path}: refusing an unsafe pickle (torch.load with "
                                 f"weights_only=True failed): {str(exc)[:300]}") from exc
    except (OSError, EOFError, RuntimeError, ValueError) as exc:
        raise WeightsFileError(f"{path}: cannot load: {str(exc)[:300]}") from exc
    if not isinstance(state, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise WeightsFileError(f"{path}: not a state dict of named tensors")
    return state


def weights_hash(model_dir: Path | str) -> bytes:
    """The layout-independent SHA-256 of every tensor in ``model_dir``'s weights.

    Safetensors files when there are any, else ``pytorch_model.bin`` (or its
    shards), loaded safely; see the module docstring for the exact rule.

    Raises:
        UnsafeWeightsError: a ``.bin`` pickle that would run code.
        WeightsFileError: no weights, a malformed file, or one tensor name in two shards.
    """
    model_dir = Path(model_dir)
    if model_dir.is_dir() and not any(p.is_file() for p in model_dir.glob("*.safetensors")):
        return _torch_weights_hash(model_dir)
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


def _torch_weights_hash(model_dir: Path) -> bytes:
    """:func:`weights_hash` over ``.bin`` weights: the same bytes a safetensors file would give."""
    import torch

    if sys.byteorder != "little":
        raise WeightsFileError("hashing .bin weights needs a little-endian machine")
    tensors: dict[str, torch.Tensor] = {}
    for path in torch_weight_files(model_dir):
        for name, t in load_torch_weights(path).items():
            if name in tensors:
                raise WeightsFileError(f"tensor {name!r} appears in two weight files")
            tensors[name] = t  # type: ignore[assignment]
    h = hashlib.sha256(WEIGHTS_DOMAIN)
    for name in sorted(tensors, key=lambda n: n.encode("utf-8")):
        t = tensors[name]
        code = _TORCH_DTYPES.get(str(t.dtype).removeprefix("torch."))
        if code is None:
            raise WeightsFileError(f"tensor {name!r} has unsupported dtype {t.dtype}")
        raw = t.detach().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        _field(h, name.encode("utf-8"))
        _field(h, code.encode("ascii"))
        h.update(struct.pack(">I", t.dim()))
        for dim in t.shape:
            h.update(struct.pack(">Q", dim))
        h.update(struct.pack(">Q", len(raw)))
        h.update(raw)
    return h.digest()


def _field(h: hashlib._Hash, data: bytes) -> None:
    h.update(struct.pack(">Q", len(data)))
    h.update(data)
