"""What a driver does with the core's actions, and in which order: one plan for every driver.

The core returns actions (:mod:`consensus.events`); a driver turns them into
I/O. The rules that make that safe are the same for every driver, so they
live here, once, and the node's driver (``node/driver.py``), the simulator
(``consensus/sim/runner.py``) and the crash-test cluster
(``tests/consensus/_crash_cluster.py``) all run them. They differ only in how
they *perform* an effect (a libp2p send or a simulated delivery, a trio timer
or a virtual one, a file WAL or an in-memory one), so the simulator and the
crash tests check the daemon's ordering, not a copy of it.

The rules, as :meth:`Planner.plan` applies them:

* ``Persist`` records are held, in order, and become one :class:`WriteWAL`
  (one fsync) right before the next effect that lets anything out of the
  node: our own message (``Broadcast``) or a stored block (``CommitBlock``).
  Nothing we signed is seen by a peer, and no block is stored, before the WAL
  holds it (CometBFT syncs its WAL only for its own messages too). Records
  may wait across batches; a crash loses them (:meth:`Planner.crashed`),
  which is the same as those inputs never arriving: the core's re-sends and
  block sync recover them. Held records are also written once
  ``max_pending`` pile up, and on shutdown (:meth:`Planner.flush`).
* ``CommitBlock`` is followed by :class:`TruncateWAL` of the committed
  height and below: the block and the state are durable by then, and
  ``Core.restore`` skips records at or below the saved height.
* Everything else passes through unchanged, in order: ``Broadcast`` (send to
  the other validators), ``ScheduleTimeout`` (feed ``TimeoutFired`` back
  after the delay), ``RequestSync`` (fetch committed blocks and feed them
  back), ``WaitForTxs`` (feed ``TxsAvailable`` back once the mempool has
  work), ``ReportEvidence`` (record it).

Sans-IO: no clock, no disk, no socket; ``plan`` is a pure function of the
actions and the records held back.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .errors import ConsensusMisuseError
from .events import (
    Action,
    Broadcast,
    CommitBlock,
    Persist,
    ReportEvidence,
    RequestSync,
    ScheduleTimeout,
    WaitForTxs,
)

#: Held-back WAL records are written once this many pile up (records of
#: peers' messages, when we sign nothing for a while).
MAX_PENDING_RECORDS = 256


@dataclass(frozen=True, slots=True)
class WriteWAL:
    """Append ``records`` to the WAL in order and make them durable (one fsync)
    before performing any later effect."""

    records: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if not self.records or not all(isinstance(r, bytes) for r in self.records):
            raise ConsensusMisuseError("WriteWAL needs at least one bytes record")


@dataclass(frozen=True, slots=True)
class TruncateWAL:
    """Drop the WAL's records of heights below ``keep_from_height``."""

    keep_from_height: int

    def __post_init__(self) -> None:
        h = self.keep_from_height
        if isinstance(h, bool) or not isinstance(h, int) or h < 1:
            raise ConsensusMisuseError("keep_from_height must be a positive int")


Effect = (WriteWAL | Broadcast | ScheduleTimeout | CommitBlock | TruncateWAL | RequestSync
          | WaitForTxs | ReportEvidence)

_PASS_THROUGH = (ScheduleTimeout, RequestSync, WaitForTxs, ReportEvidence)


class Planner:
    """Turns batches of the core's actions into effects; holds WAL records back between them.

    One per running core (a restarted node gets a new one, as the held
    records died with the process).
    """

    def __init__(self, *, max_pending: int = MAX_PENDING_RECORDS) -> None:
        if isinstance(max_pending, bool) or not isinstance(max_pending, int) or max_pending < 1:
            raise ConsensusMisuseError("max_pending must be a positive int")
        self.max_pending = max_pending
        self._pending: list[bytes] = []

    @property
    def pending(self) -> tuple[bytes, ...]:
        """Records planned but not yet handed out in a :class:`WriteWAL`."""
        return tuple(self._pending)

    def plan(self, actions: Iterable[Action]) -> list[Effect]:
        """The effects for one batch of actions, in the order to perform them.

        Raises:
            ConsensusMisuseError: something that is not a core action.
        """
        out: list[Effect] = []
        for action in actions:
            if isinstance(action, Persist):
                self._pending.append(action.record)
            elif isinstance(action, (Broadcast, CommitBlock)):
                self._write(out)  # durable before anything leaves the node
                out.append(action)
                if isinstance(action, CommitBlock):
                    out.append(TruncateWAL(action.block.height + 1))
            elif isinstance(action, _PASS_THROUGH):
                out.append(action)
            else:
                raise ConsensusMisuseError(f"not a core action: {type(action).__name__}")
        if len(self._pending) >= self.max_pending:
            self._write(out)
        return out

    def flush(self) -> list[Effect]:
        """What to write before closing the WAL on a clean shutdown (maybe nothing)."""
        out: list[Effect] = []
        self._write(out)
        return out

    def crashed(self) -> None:
        """The process died: the held records are lost (as if never received)."""
        self._pending.clear()

    def _write(self, out: list[Effect]) -> None:
        if self._pending:
            out.append(WriteWAL(tuple(self._pending)))
            self._pending.clear()


__all__ = ["MAX_PENDING_RECORDS", "Effect", "Planner", "TruncateWAL", "WriteWAL"]
