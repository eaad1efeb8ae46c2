"""Offline corpus loading and the content-hash split used by the benchmark."""

from __future__ import annotations

from pathlib import Path

import pytest

from oml.corpus import CorpusError, clean_fortune, load_corpus, read_fortune_file, split_corpus


def test_fortune_file_parsing(tmp_path: Path) -> None:
    f = tmp_path / "quotes"
    f.write_text("First one.\n%\n  B_\bo_\bl_\bd text.  \n\tindented\n%\n%\nLast.\n")
    assert read_fortune_file(f) == ["First one.", "Bold text.\n\tindented", "Last."]
    assert clean_fortune("\bY_\bes") == "Yes"  # a stray leading backspace is dropped


def test_missing_corpus_names_the_package(tmp_path: Path) -> None:
    (tmp_path / "few").write_text("a\n%\nb\n")
    (tmp_path / "few.dat").write_bytes(b"\x00" * 8)
    with pytest.raises(CorpusError, match="apt-get install -y fortunes"):
        load_corpus([tmp_path, tmp_path / "absent"])
    assert load_corpus([tmp_path], min_texts=2) == ["a", "b"]


def test_split_is_disjoint_stable_and_order_free() -> None:
    texts = [f"text number {i}" for i in range(2000)]
    s = split_corpus(texts)
    parts = [set(s.train), set(s.attack), set(s.eval)]
    assert sum(map(len, parts)) == len(texts) and set().union(*parts) == set(texts)
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert 0.3 < len(s.attack) / len(texts) < 0.4 and 0.07 < len(s.eval) / len(texts) < 0.13
    again = split_corpus(list(reversed(texts)))
    assert set(again.attack) == parts[1] and set(again.eval) == parts[2]
    assert set(split_corpus(texts, salt=b"other").eval) != parts[2]
    with pytest.raises(CorpusError, match="fractions"):
        split_corpus(texts, attack=0.6, eval=0.5)
    with pytest.raises(CorpusError, match="empty"):
        split_corpus(["only one"])
