"""Word lists for random-word fingerprint keys and responses.

The preferred source is Debian's ``wamerican`` list (``/usr/share/dict/words``),
filtered to plain lowercase ASCII words so every word is easy to type and
tokenises without surprises. Machines without it fall back to a list shipped
in this package. The list actually used is identified by a short digest that
generation records in the fingerprint file, because the same seed over a
different list gives different fingerprints.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ._words import FALLBACK_WORDS

SYSTEM_WORDS = Path("/usr/share/dict/words")
_PLAIN = re.compile(r"^[a-z]{3,10}$")


@dataclass(frozen=True, slots=True)
class WordList:
    """An ordered, duplicate-free word list and where it came from."""

    source: str
    words: tuple[str, ...]

    @property
    def digest(self) -> str:
        """First 16 hex chars of SHA-256 over the newline-joined words."""
        return hashlib.sha256("\n".join(self.words).encode()).hexdigest()[:16]


def _filter(words: list[str]) -> tuple[str, ...]:
    seen: set[str] = set()
    out: list[str] = []
    for w in words:
        w = w.strip()
        if _PLAIN.match(w) and w not in seen:
            seen.add(w)
            out.append(w)
    return tuple(sorted(out))


@lru_cache(maxsize=4)
def load_wordlist(source: str = "auto") -> WordList:
    """The word list to draw from.

    Args:
        source: ``"auto"`` (system list if present, else builtin), ``"system"``,
            ``"builtin"``, or a path to a one-word-per-line file.

    Raises:
        FileNotFoundError: ``"system"`` or a path was asked for and is missing.
        ValueError: the chosen list has fewer than 100 usable words.
    """
    if source == "auto":
        source = "system" if SYSTEM_WORDS.is_file() else "builtin"
    if source == "builtin":
        wl = WordList("builtin", _filter(list(FALLBACK_WORDS)))
    else:
        path = SYSTEM_WORDS if source == "system" else Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"word list not found: {path} (apt-get install wamerican)")
        text = path.read_text(encoding="utf-8", errors="replace")
        wl = WordList("system" if source == "system" else str(path), _filter(text.splitlines()))
    if len(wl.words) < 100:
        raise ValueError(f"word list {wl.source!r} has only {len(wl.words)} usable words")
    return wl
