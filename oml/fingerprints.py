"""Fingerprint records and their file format.

A fingerprint is a (key -> response) pair: asked the key, a fingerprinted
model's greedy completion starts with the response. A :class:`FingerprintSet`
is one host's set for one model, with everything needed to regenerate or audit
it (seed, generation parameters).

File format (JSON lines, UTF-8, one JSON object per line)::

    {"format": "oml-fingerprints", "version": 1, "host": "...", "model_id": "...",
     "seed": 7, "count": 2, "params": {...}}
    {"index": 0, "key": "...", "response": "...", "key_ids": [..], "response_ids": [..]}
    {"index": 1, ...}

The header comes first; items follow in index order 0..count-1. JSON lines
keep a 25k-fingerprint file streamable and diff-friendly. ``key_ids`` are the
key's tokens without special tokens (what the tokenizer gives for the key
text); ``response_ids`` are the exact tokens the model was trained to emit.
Salts are not here: they belong to the sealed package sidecar.
This module imports no torch.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMAT = "oml-fingerprints"
VERSION = 1


class FingerprintFileError(ValueError):
    """A fingerprint file (or a record being built) is malformed."""


def _ids(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value
    ):
        raise FingerprintFileError(f"{what} must be a list of non-negative integers")
    return tuple(value)


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """One secret (key -> response) pair with its token ids."""

    index: int
    key: str
    response: str
    key_ids: tuple[int, ...]
    response_ids: tuple[int, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.index, int) or isinstance(self.index, bool) or self.index < 0:
            raise FingerprintFileError(f"bad fingerprint index: {self.index!r}")
        if not isinstance(self.key, str) or not self.key:
            raise FingerprintFileError(f"fingerprint {self.index}: key must be non-empty text")
        if not isinstance(self.response, str) or not self.response:
            raise FingerprintFileError(f"fingerprint {self.index}: response must be non-empty text")
        object.__setattr__(self, "key_ids", _ids(self.key_ids, "key_ids"))
        object.__setattr__(self, "response_ids", _ids(self.response_ids, "response_ids"))
        if not self.response_ids:
            raise FingerprintFileError(f"fingerprint {self.index}: response_ids empty")

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "key": self.key, "response": self.response,
                "key_ids": list(self.key_ids), "response_ids": list(self.response_ids)}

    @classmethod
    def from_json(cls, obj: Any) -> Fingerprint:
        if not isinstance(obj, dict):
            raise FingerprintFileError("fingerprint record must be a JSON object")
        want = {"index", "key", "response", "key_ids", "response_ids"}
        if set(obj) != want:
            raise FingerprintFileError(
                f"fingerprint record fields {sorted(obj)} != {sorted(want)}")
        return cls(index=obj["index"], key=obj["key"], response=obj["response"],
                   key_ids=obj["key_ids"], response_ids=obj["response_ids"])


@dataclass(frozen=True, slots=True)
class FingerprintSet:
    """One host's fingerprints for one model, plus how they were generated."""

    host: str
    model_id: str
    seed: int
    params: Mapping[str, Any] = field(default_factory=dict)
    items: tuple[Fingerprint, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.host, str) or not self.host:
            raise FingerprintFileError("host must be non-empty text")
        if not isinstance(self.model_id, str) or not self.model_id:
            raise FingerprintFileError("model_id must be non-empty text")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise FingerprintFileError("seed must be an integer")
        if not isinstance(self.params, Mapping):
            raise FingerprintFileError("params must be a mapping")
        items = tuple(self.items)
        for i, fp in enumerate(items):
            if not isinstance(fp, Fingerprint):
                raise FingerprintFileError("items must be Fingerprint records")
            if fp.index != i:
                raise FingerprintFileError(f"item {i} has index {fp.index}; indices must be 0..n-1")
        object.__setattr__(self, "items", items)
        object.__setattr__(self, "params", dict(self.params))

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Fingerprint]:
        return iter(self.items)

    def __getitem__(self, i: int) -> Fingerprint:
        return self.items[i]

    @property
    def keys(self) -> list[str]:
        return [fp.key for fp in self.items]

    def subset(self, indices: list[int] | range) -> list[Fingerprint]:
        """The fingerprints at ``indices`` (keeping their original index)."""
        return [self.items[i] for i in indices]

    def header(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "host": self.host,
                "model_id": self.model_id, "seed": self.seed, "count": len(self.items),
                "params": dict(self.params)}

    def dumps(self) -> str:
        """The file content (JSON lines, trailing newline)."""
        lines = [json.dumps(self.header(), sort_keys=True, ensure_ascii=False)]
        lines += [json.dumps(fp.to_json(), sort_keys=True, ensure_ascii=False) for fp in self.items]
        return "\n".join(lines) + "\n"

    def save(self, path: Path | str, *, overwrite: bool = True) -> None:
        """Write the set to ``path`` atomically, readable by its owner only (mode 0600).

        The keys and responses are secret, so the file is created 0600 from
        the start (never chmod-ed afterwards); see :mod:`oml.privatefile`.

        Raises:
            PrivateFileExists: ``path`` exists and ``overwrite`` is False.
            PrivateFileError: the file cannot be written.
        """
        from .privatefile import write_private

        write_private(path, self.dumps().encode("utf-8"), overwrite=overwrite)

    @classmethod
    def loads(cls, text: str) -> FingerprintSet:
        """Parse file content; every field is checked.

        Raises:
            FingerprintFileError: not JSON lines, wrong format/version, missing or
                extra fields, wrong types, count mismatch or out-of-order indices.
        """
        lines = [ln for ln in text.splitlines() if ln.strip()]
        if not lines:
            raise FingerprintFileError("empty fingerprint file")
        try:
            objs = [json.loads(ln) for ln in lines]
        except json.JSONDecodeError as e:
            raise FingerprintFileError(f"not valid JSON lines: {e}") from e
        head = objs[0]
        if not isinstance(head, dict) or head.get("format") != FORMAT:
            raise FingerprintFileError(f"first line is not an {FORMAT!r} header")
        if head.get("version") != VERSION:
            raise FingerprintFileError(f"unsupported version {head.get('version')!r}")
        want = {"format", "version", "host", "model_id", "seed", "count", "params"}
        if set(head) != want:
            raise FingerprintFileError(f"header fields {sorted(head)} != {sorted(want)}")
        items = tuple(Fingerprint.from_json(o) for o in objs[1:])
        if head["count"] != len(items):
            raise FingerprintFileError(f"header says {head['count']} items, file has {len(items)}")
        if not isinstance(head["params"], dict):
            raise FingerprintFileError("params must be a JSON object")
        return cls(host=head["host"], model_id=head["model_id"], seed=head["seed"],
                   params=head["params"], items=items)

    @classmethod
    def load(cls, path: Path | str) -> FingerprintSet:
        """Read a set written by :meth:`save`.

        Raises:
            FingerprintFileError: the file is missing, not UTF-8, or malformed.
        """
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError as e:
            raise FingerprintFileError(f"fingerprint file not found: {path}") from e
        except (UnicodeDecodeError, IsADirectoryError) as e:
            raise FingerprintFileError(f"cannot read fingerprint file {path}: {e}") from e
        return cls.loads(text)
