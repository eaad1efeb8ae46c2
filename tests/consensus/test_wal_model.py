"""Property test: the file WAL behaves like a list of records under any mix of appends,
batch appends, truncations, reopens and torn tails (hypothesis stateful testing)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from consensus.wal import FileWAL


def height_of(record: bytes) -> int:
    return int.from_bytes(record[:2], "big")


def make(height: int, body: bytes) -> bytes:
    return height.to_bytes(2, "big") + body


records_st = st.builds(make, st.integers(1, 12), st.binary(max_size=40))


class WALModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="walmodel-"))
        self.wal = FileWAL(self.dir, height_of=height_of, sync=False)
        self.model: list[bytes] = []

    @rule(record=records_st)
    def append(self, record: bytes) -> None:
        self.wal.append(record)
        self.model.append(record)

    @rule(batch=st.lists(records_st, max_size=5))
    def append_many(self, batch: list[bytes]) -> None:
        self.wal.append_many(batch)
        self.model.extend(batch)

    @rule(height=st.integers(0, 14))
    def truncate(self, height: int) -> None:
        self.wal.truncate_before_height(height)
        self.model = [r for r in self.model if height_of(r) >= height]

    @rule()
    def reopen(self) -> None:
        self.wal.close()
        self.wal = FileWAL(self.dir, height_of=height_of, sync=False)
        assert self.wal.repairs == []

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data())
    def crash_mid_append(self, data: st.DataObject) -> None:
        """A torn frame after the last record: reopening drops it and keeps the rest."""
        self.wal.close()
        newest = max(self.dir.glob("seg-*.wal"))
        junk = data.draw(st.binary(min_size=1, max_size=15))
        with open(newest, "ab") as f:
            f.write(junk)  # shorter than a frame header: always an incomplete frame
        self.wal = FileWAL(self.dir, height_of=height_of, sync=False)
        assert len(self.wal.repairs) == 1

    @invariant()
    def same_records(self) -> None:
        assert list(self.wal.records()) == self.model

    def teardown(self) -> None:
        self.wal.close()
        shutil.rmtree(self.dir, ignore_errors=True)


WALModel.TestCase.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)
TestWALModel = WALModel.TestCase
