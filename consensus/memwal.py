"""An in-memory WAL with the file WAL's interface, for the simulator and tests.

"Durable" here means "kept in this object": the simulator models a crash by
dropping the node's core and in-flight actions while keeping its MemWAL,
which is exactly what survives a crash with a real fsynced log.
"""

from __future__ import annotations

from collections.abc import Iterator

from .wal_api import record_height


class MemWAL:
    __slots__ = ("_records", "appends")

    def __init__(self) -> None:
        self._records: list[bytes] = []
        self.appends = 0

    def append(self, record: bytes) -> None:
        self._records.append(bytes(record))
        self.appends += 1

    def records(self) -> Iterator[bytes]:
        return iter(list(self._records))

    def truncate_before_height(self, height: int) -> None:
        self._records = [r for r in self._records if record_height(r) >= height]

    def __len__(self) -> int:
        return len(self._records)
