"""Run one fingerprinting attempt in a worker process, bounded in time, killed when cancelled.

The service depends only on the :class:`Runner` Protocol, so unit tests
drive the job state machine with a fake that writes a result file without
torch.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import trio

from .worker import RESULT_FILE, WorkerResult, WorkerSpec

log = logging.getLogger("node.roles.omlizer")

WORKER_MODULE = "node.roles.omlizer.worker"
WORKER_LOG = "worker.log"
_KILL_GRACE_S = 5.0


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one attempt: a result, or why there is none."""

    result: WorkerResult | None
    error: str = ""
    """Set when ``result`` is None: timed out, crashed (with the log's tail)."""


ProgressFn = Callable[[str], None]


class Runner(Protocol):
    async def run(self, spec: WorkerSpec, *, timeout_s: float,
                  on_progress: ProgressFn) -> Outcome: ...


def _source_root() -> str:
    """The directory holding the ``node`` package, so the worker imports this very code."""
    return str(Path(__file__).resolve().parents[3])


def _log_tail(path: Path, lines: int = 8) -> str:
    try:
        text = path.read_text("utf-8", "replace")
    except OSError:
        return ""
    return " | ".join(text.strip().splitlines()[-lines:])


class SubprocessRunner:
    """Starts ``python -m node.roles.omlizer.worker`` with the spec on stdin."""

    def __init__(self, python: str = sys.executable) -> None:
        self._python = python

    async def run(self, spec: WorkerSpec, *, timeout_s: float,
                  on_progress: ProgressFn) -> Outcome:
        work = Path(spec.work_dir)
        result_path = work / RESULT_FILE
        result_path.unlink(missing_ok=True)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (_source_root(), env.get("PYTHONPATH", "")) if p)
        with (work / WORKER_LOG).open("ab") as errlog:
            proc = await trio.lowlevel.open_process(
                [self._python, "-m", WORKER_MODULE], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=errlog, env=env)
            try:
                with trio.move_on_after(timeout_s) as scope:
                    await self._talk(proc, spec, on_progress)
                    await proc.wait()
            finally:
                if proc.returncode is None:
                    proc.kill()
                    with trio.CancelScope(shield=True), trio.move_on_after(_KILL_GRACE_S):
                        await proc.wait()
        if scope.cancelled_caught:
            return Outcome(None, f"attempt ran past job_timeout_s = {timeout_s:g} s; killed")
        if proc.returncode != 0 or not result_path.is_file():
            tail = _log_tail(work / WORKER_LOG)
            return Outcome(None, f"worker exited with status {proc.returncode}: {tail}")
        try:
            return Outcome(WorkerResult.load(result_path))
        except (OSError, ValueError, TypeError) as exc:
            return Outcome(None, f"worker result unreadable: {exc}")

    @staticmethod
    async def _talk(proc: trio.Process, spec: WorkerSpec, on_progress: ProgressFn) -> None:
        assert proc.stdin is not None and proc.stdout is not None
        await proc.stdin.send_all(spec.to_json().encode())
        await proc.stdin.aclose()
        buf = b""
        async for chunk in proc.stdout:
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                try:
                    step = json.loads(line).get("step")
                except (ValueError, AttributeError):
                    continue
                if isinstance(step, str):
                    on_progress(step)


__all__ = ["Outcome", "Runner", "SubprocessRunner"]
