"""File WAL: round trip, durability across reopen, torn-tail repair, mid-log corruption,
truncation by height, locking, and a real SIGKILL of a writing process."""

from __future__ import annotations

import os
import random
import signal
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from consensus.wal import (
    MAGIC,
    FileWAL,
    WALCorruptError,
    WALLockedError,
    WALUsageError,
    _frame,
)


def height_of(record: bytes) -> int:
    """Test records are b"<height>:<anything>"."""
    return int(record.split(b":", 1)[0])


def rec(height: int, text: str) -> bytes:
    return f"{height}:{text}".encode()


def open_wal(path: Path, **kw: object) -> FileWAL:
    return FileWAL(path, height_of=height_of, **kw)  # type: ignore[arg-type]


def segments(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.name.startswith("seg-"))


def test_round_trip_and_reopen(tmp_path: Path) -> None:
    records = [rec(h, f"r{i}" * (i % 7)) for i, h in enumerate([1, 1, 1, 2, 2, 3, 5, 5])]
    with open_wal(tmp_path) as wal:
        for r in records[:3]:
            wal.append(r)
        wal.append_many(records[3:])
        assert list(wal.records()) == records
        assert wal.heights() == [(1, 1), (2, 2), (3, 3), (5, 5)]
    with open_wal(tmp_path) as wal:
        assert wal.repairs == []
        assert list(wal.records()) == records
        wal.append(rec(5, "more"))
        wal.append(rec(6, "next"))
        assert list(wal.records()) == records + [rec(5, "more"), rec(6, "next")]
    with open_wal(tmp_path) as wal:
        assert list(wal.records())[-2:] == [rec(5, "more"), rec(6, "next")]


def test_empty_wal_and_empty_record(tmp_path: Path) -> None:
    with open_wal(tmp_path) as wal:
        assert list(wal.records()) == []
    # height_of may accept an empty payload in other formats; the frame allows it.
    with FileWAL(tmp_path / "b", height_of=lambda r: 7) as wal:
        wal.append(b"")
        wal.append(b"x")
    with FileWAL(tmp_path / "b", height_of=lambda r: 7) as wal:
        assert list(wal.records()) == [b"", b"x"]


def test_truncate_before_height_deletes_whole_segments(tmp_path: Path) -> None:
    with open_wal(tmp_path) as wal:
        for h in range(1, 11):
            wal.append_many([rec(h, "prevote"), rec(h, "precommit")])
        assert len(segments(tmp_path)) == 10
        wal.truncate_before_height(8)
        assert len(segments(tmp_path)) == 3
        assert [height_of(r) for r in wal.records()] == [8, 8, 9, 9, 10, 10]
        wal.append(rec(10, "late"))
        wal.append(rec(11, "new"))
    with open_wal(tmp_path) as wal:
        assert [height_of(r) for r in wal.records()] == [8, 8, 9, 9, 10, 10, 10, 11]
        wal.truncate_before_height(100)
        assert list(wal.records()) == []
        wal.append(rec(100, "fresh"))
    with open_wal(tmp_path) as wal:
        assert list(wal.records()) == [rec(100, "fresh")]


def test_truncate_rewrites_a_mixed_segment_exactly(tmp_path: Path) -> None:
    with open_wal(tmp_path) as wal:
        wal.append(rec(4, "a"))
        wal.append(rec(3, "out of order"))  # lower height joins the active segment
        wal.append(rec(4, "b"))
        wal.truncate_before_height(4)
        assert list(wal.records()) == [rec(4, "a"), rec(4, "b")]
        wal.append(rec(4, "c"))
    with open_wal(tmp_path) as wal:
        assert list(wal.records()) == [rec(4, "a"), rec(4, "b"), rec(4, "c")]


@pytest.mark.parametrize("cut", [1, 5, 11, 16, 17, 20, 21, 25, 35, 40])
def test_torn_tail_is_cut_and_reported(tmp_path: Path, cut: int) -> None:
    with open_wal(tmp_path) as wal:
        wal.append(rec(1, "keep me"))
        wal.append(rec(1, "torn record payload"))
    seg = segments(tmp_path)[-1]
    data = seg.read_bytes()
    seg.write_bytes(data[: len(data) - cut])
    with open_wal(tmp_path) as wal:
        assert list(wal.records()) == [rec(1, "keep me")]
        assert len(wal.repairs) == 1
        assert wal.repairs[0].segment == seg.name
        # Appends after the repair land on a clean tail and survive reopening.
        wal.append(rec(1, "after repair"))
    with open_wal(tmp_path) as wal:
        assert wal.repairs == []
        assert list(wal.records()) == [rec(1, "keep me"), rec(1, "after repair")]


def test_torn_tail_with_bad_crc_or_zero_fill(tmp_path: Path) -> None:
    with open_wal(tmp_path) as wal:
        wal.append(rec(2, "good"))
        wal.append(rec(2, "flipped"))
    seg = segments(tmp_path)[-1]
    data = bytearray(seg.read_bytes())
    data[-1] ^= 0xFF  # last frame's payload damaged: it was being written
    seg.write_bytes(bytes(data) + b"\x00" * 4096)  # and the filesystem zero-filled past it
    with open_wal(tmp_path) as wal:
        assert list(wal.records()) == [rec(2, "good")]
        assert "CRC" in wal.repairs[0].reason
        assert wal.repairs[0].dropped_bytes == 4096 + len(rec(2, "flipped")) + 20


def test_torn_new_segment_header_is_removed(tmp_path: Path) -> None:
    with open_wal(tmp_path) as wal:
        wal.append(rec(1, "x"))
    (tmp_path / "seg-0000000000000001.wal").write_bytes(MAGIC[:3])
    with open_wal(tmp_path) as wal:
        assert list(wal.records()) == [rec(1, "x")]
        assert len(wal.repairs) == 1
        wal.append(rec(2, "y"))
    with open_wal(tmp_path) as wal:
        assert list(wal.records()) == [rec(1, "x"), rec(2, "y")]


def test_corruption_in_the_middle_halts(tmp_path: Path) -> None:
    with open_wal(tmp_path) as wal:
        for i in range(5):
            wal.append(rec(1, f"vote {i}"))
    seg = segments(tmp_path)[-1]
    data = bytearray(seg.read_bytes())
    data[len(MAGIC) + 20 + 2] ^= 0x01  # inside the first record's payload
    seg.write_bytes(bytes(data))
    before = seg.read_bytes()
    with pytest.raises(WALCorruptError, match="CRC"):
        open_wal(tmp_path)
    assert seg.read_bytes() == before  # nothing "repaired" away
    open_wal(tmp_path / "other").close()  # and the lock was released on failure
    with pytest.raises(WALCorruptError):
        open_wal(tmp_path)


@pytest.mark.parametrize("field_offset", [0, 3, 5, 12])
def test_damaged_header_in_the_middle_halts(tmp_path: Path, field_offset: int) -> None:
    """A flipped bit in a middle frame's length or height must not pass for a torn tail,
    even when the damaged length points past the end of the file."""
    with open_wal(tmp_path) as wal:
        for i in range(4):
            wal.append(rec(1, f"vote {i}"))
    seg = segments(tmp_path)[-1]
    data = bytearray(seg.read_bytes())
    second = len(MAGIC) + 20 + len(rec(1, "vote 0"))
    data[second + field_offset] ^= 0x40  # length (0..3) or height (4..11) or hcrc (12..15)
    seg.write_bytes(bytes(data))
    with pytest.raises(WALCorruptError, match="header CRC"):
        open_wal(tmp_path)


def test_torn_header_with_zero_fill_is_a_tail(tmp_path: Path) -> None:
    with open_wal(tmp_path) as wal:
        wal.append(rec(1, "kept"))
    seg = segments(tmp_path)[-1]
    frame = bytearray(_frame(1, rec(1, "torn")))
    frame[6:] = bytes(len(frame) - 6)  # only 6 header bytes reached the disk
    seg.write_bytes(seg.read_bytes() + bytes(frame))
    with open_wal(tmp_path) as wal:
        assert list(wal.records()) == [rec(1, "kept")]
        assert "header CRC" in wal.repairs[0].reason


def test_damage_in_an_older_segment_halts(tmp_path: Path) -> None:
    with open_wal(tmp_path) as wal:
        wal.append(rec(1, "old"))
        wal.append(rec(2, "new"))
    old = segments(tmp_path)[0]
    old.write_bytes(old.read_bytes()[:-2])  # even a "tail" shape is not torn if not newest
    with pytest.raises(WALCorruptError):
        open_wal(tmp_path)


def test_missing_segment_halts(tmp_path: Path) -> None:
    with open_wal(tmp_path) as wal:
        for h in (1, 2, 3):
            wal.append(rec(h, "v"))
    segments(tmp_path)[1].unlink()
    with pytest.raises(WALCorruptError, match="missing"):
        open_wal(tmp_path)


def test_bad_magic_halts(tmp_path: Path) -> None:
    with open_wal(tmp_path) as wal:
        wal.append(rec(1, "v"))
    seg = segments(tmp_path)[0]
    seg.write_bytes(b"NOTAWAL!" + seg.read_bytes()[len(MAGIC):])
    with pytest.raises(WALCorruptError, match="magic"):
        open_wal(tmp_path)


def test_lock_excludes_second_writer(tmp_path: Path) -> None:
    wal = open_wal(tmp_path)
    with pytest.raises(WALLockedError):
        open_wal(tmp_path)
    wal.close()
    open_wal(tmp_path).close()


def test_misuse_is_typed_and_changes_nothing(tmp_path: Path) -> None:
    wal = open_wal(tmp_path)
    wal.append(rec(1, "a"))
    with pytest.raises(WALUsageError):
        wal.append("1:text")  # type: ignore[arg-type]
    with pytest.raises(WALUsageError):
        wal.truncate_before_height(-1)
    bad = FileWAL(tmp_path / "neg", height_of=lambda r: -5)
    with pytest.raises(WALUsageError):
        bad.append(b"x")
    bad.close()
    assert list(wal.records()) == [rec(1, "a")]
    wal.close()
    with pytest.raises(WALUsageError):
        wal.append(rec(1, "b"))
    with pytest.raises(WALUsageError):
        list(wal.records())


def test_random_truncation_points_always_yield_a_prefix(tmp_path: Path) -> None:
    """Cut the newest segment at every kind of offset: reopen yields a prefix, never garbage."""
    rng = random.Random(1234)
    records = [rec(1, "x" * rng.randrange(0, 40)) for _ in range(30)]
    src = tmp_path / "src"
    with open_wal(src) as wal:
        wal.append_many(records)
    full = segments(src)[0].read_bytes()
    for trial in range(60):
        cut = rng.randrange(0, len(full) + 1)
        d = tmp_path / f"t{trial}"
        d.mkdir()
        (d / segments(src)[0].name).write_bytes(full[:cut])
        with open_wal(d) as wal:
            got = list(wal.records())
        assert got == records[: len(got)]
        assert cut == len(full) or len(got) < len(records)


WRITER = textwrap.dedent("""
    import sys
    from consensus.wal import FileWAL
    wal = FileWAL(sys.argv[1], height_of=lambda r: int(r.split(b":")[0]))
    i = 0
    while True:
        wal.append(b"%d:%d:" % (i // 50, i) + b"p" * (i % 300))
        print(i, flush=True)  # acknowledged: durable before this line is printed
        i += 1
""")


def test_sigkill_during_appends_keeps_every_acknowledged_record(tmp_path: Path) -> None:
    """A real process crash: every record acknowledged before SIGKILL is there on reopen."""
    rng = random.Random(7)
    root = Path(__file__).resolve().parents[2]
    for trial in range(3):
        d = tmp_path / f"w{trial}"
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(d)], cwd=root,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONPATH": str(root)})
        try:
            target = rng.randrange(20, 200)
            acked = -1
            deadline = time.monotonic() + 20
            assert proc.stdout is not None
            while acked < target and time.monotonic() < deadline:
                line = proc.stdout.readline()
                if not line:
                    break
                acked = int(line)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        assert acked >= target, proc.stderr.read() if proc.stderr else ""
        with open_wal(d) as wal:
            got = list(wal.records())
        idx = [int(r.split(b":")[1]) for r in got]
        assert idx == list(range(len(idx)))  # a gapless prefix
        assert len(idx) >= acked + 1  # nothing acknowledged was lost


def test_frame_layout_is_documented(tmp_path: Path) -> None:
    """The on-disk format is what the module docstring says (ops tools rely on it)."""
    import zlib

    with FileWAL(tmp_path, height_of=lambda r: 9) as wal:
        wal.append(b"abc")
    data = segments(tmp_path)[0].read_bytes()
    assert data[:8] == MAGIC
    length, height, hcrc, crc = struct.unpack(">IQII", data[8:28])
    assert (length, height, data[28:]) == (3, 9, b"abc")
    assert hcrc == zlib.crc32(struct.pack(">IQ", 3, 9))
    assert crc == zlib.crc32(struct.pack(">IQ", 3, 9) + b"abc")
