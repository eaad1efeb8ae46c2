"""Offline English text for benchmarks and benign data mixing.

Nodes and benchmarks never download data sets, so the corpus comes from a
Debian package that ships plain English text: ``fortunes`` /
``fortunes-min`` (about 15,000 quotations, 2.5 MB, under
``/usr/share/games/fortunes``). If none is installed, :func:`load_corpus`
raises :class:`CorpusError` naming the ``apt-get`` command that fixes it.

:func:`split_corpus` assigns every text to exactly one split by a salted hash
of its content, so the split is the same on every machine, independent of
file order, and a text can never be in two splits: pretraining, fingerprint
insertion (benign mixing), the attacker's fine-tune and the held-out
perplexity each see their own text. This module imports no torch.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

FORTUNE_DIRS = (Path("/usr/share/games/fortunes"), Path("/usr/share/fortunes"))
INSTALL_HINT = ("install an offline English corpus: `apt-get update && apt-get install -y "
                "fortunes` (Debian/Ubuntu; `fortunes-min` is enough for a smaller corpus)")
SPLIT_SALT = b"oml/corpus-split/v1"
_OVERSTRIKE = re.compile(r".\x08")


class CorpusError(RuntimeError):
    """No corpus is available, or a split came out empty."""


@dataclass(frozen=True, slots=True)
class CorpusSplit:
    """Disjoint parts of one corpus.

    Attributes:
        train: pretraining the base model and benign mixing during insertion.
        attack: the attacker's fine-tuning text; never seen by pretraining or insertion.
        eval: held-out text for perplexity; never trained on by anyone.
    """

    train: tuple[str, ...]
    attack: tuple[str, ...]
    eval: tuple[str, ...]


def clean_fortune(text: str) -> str:
    """Undo ``fortune``'s overstrike formatting (``_\\bX``) and trim the entry."""
    while "\x08" in text:
        new = _OVERSTRIKE.sub("", text)
        if new == text:
            text = text.replace("\x08", "")
            break
        text = new
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def read_fortune_file(path: Path) -> list[str]:
    """Entries of one fortune file (separated by lines holding only ``%``)."""
    raw = path.read_bytes().decode("utf-8", errors="replace")
    entries = re.split(r"^%\s*$", raw, flags=re.MULTILINE)
    return [t for t in (clean_fortune(e) for e in entries) if t]


def fortune_files(directories: Iterable[Path] = FORTUNE_DIRS) -> list[Path]:
    """Plain-text fortune files (not the ``.dat`` indexes nor ``.u8`` links), sorted."""
    files: list[Path] = []
    for d in directories:
        if d.is_dir():
            files += [p for p in sorted(d.iterdir())
                      if p.is_file() and not p.is_symlink() and p.suffix not in (".dat", ".u8")]
    return files


def load_corpus(directories: Iterable[Path] = FORTUNE_DIRS, *, min_texts: int = 100) -> list[str]:
    """All distinct fortunes, in a deterministic order.

    Raises:
        CorpusError: fewer than ``min_texts`` texts were found; the message says
            which apt package to install.
    """
    seen: set[str] = set()
    texts: list[str] = []
    for path in fortune_files(directories):
        for t in read_fortune_file(path):
            if t not in seen:
                seen.add(t)
                texts.append(t)
    if len(texts) < min_texts:
        dirs = ", ".join(str(d) for d in directories)
        raise CorpusError(f"no offline English corpus found in {dirs} "
                          f"({len(texts)} texts); {INSTALL_HINT}")
    return texts


def split_corpus(texts: Sequence[str], *, attack: float = 0.35, eval: float = 0.10,
                 salt: bytes = SPLIT_SALT) -> CorpusSplit:
    """Split ``texts`` by a salted hash of each text (stable across machines).

    Raises:
        CorpusError: a fraction is out of range or a split is empty.
    """
    if not (0 < attack < 1 and 0 < eval < 1 and attack + eval < 1):
        raise CorpusError("split fractions must be in (0, 1) and sum below 1")
    parts: dict[str, list[str]] = {"train": [], "attack": [], "eval": []}
    for t in texts:
        u = int.from_bytes(hashlib.sha256(salt + t.encode("utf-8")).digest()[:8], "big") / 2**64
        parts["eval" if u < eval else "attack" if u < eval + attack else "train"].append(t)
    for name, part in parts.items():
        if not part:
            raise CorpusError(f"the {name} split is empty; the corpus is too small")
    return CorpusSplit(train=tuple(parts["train"]), attack=tuple(parts["attack"]),
                       eval=tuple(parts["eval"]))
