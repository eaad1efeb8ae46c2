"""Keep a running testnet running: what ``oml-node testnet start`` does after start-up.

One node stopping must not stop the others (docs/operator.md), so the
launcher watches each node on its own and decides by exit code:

=====================  ==========================================================
exit                   what the supervisor does
=====================  ==========================================================
0 (SIGTERM, Ctrl-C)    someone stopped it on purpose: leave it stopped (it can be
                       started again by hand with ``oml-node start --home ...``)
2 (halted)             a broken invariant (corrupt WAL, inconsistent stores):
                       restarting would halt again, so leave it for the operator
anything else          a crash (SIGKILL, an exception, cannot start): restart it
                       after a backoff that doubles from ``backoff_s`` up to
                       ``max_backoff_s``, and is forgotten once the node has run
                       ``stable_s`` seconds
=====================  ==========================================================

A restarted node is waited for without blocking the others' supervision
(:meth:`Supervisor.tick` only polls), and once it answers ``health`` it is
wired to the others again (:meth:`node.testnet.Testnet.wire`), since a node
that binds port 0 comes back on new ports. A restart that does not answer
``health`` within ``start_timeout_s`` is killed and counted as a crash.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Protocol

from .testnet import TestnetError

#: Exit code of a node that halted on a broken invariant (``node.daemon.run_daemon``).
HALT_EXIT_CODE = 2


class _Proc(Protocol):
    @property
    def returncode(self) -> int | None: ...


class _Spec(Protocol):
    @property
    def home(self) -> Path: ...

    @property
    def rpc_url(self) -> str: ...


class _NodeProc(Protocol):
    @property
    def alive(self) -> bool: ...

    @property
    def proc(self) -> _Proc: ...

    def close_log(self) -> None: ...

    def log_tail(self, lines: int = 30) -> str: ...


class Nodes(Protocol):
    """What the supervisor needs of a testnet; :class:`node.testnet.Testnet` is one."""

    @property
    def procs(self) -> Mapping[str, _NodeProc]: ...

    def spec(self, name: str) -> _Spec: ...

    def start(self, name: str) -> object: ...

    def poll_ready(self, name: str) -> bool: ...

    def wire(self, names: list[str]) -> None: ...

    def kill(self, name: str) -> None: ...


class State(Enum):
    RUNNING = "running"
    WAITING = "waiting to restart"
    STARTING = "starting"
    STOPPED = "stopped"
    HALTED = "halted"


@dataclass
class _Watch:
    state: State = State.RUNNING
    since: float = 0.0
    """When it entered ``state``."""
    crashes: int = 0
    """Crashes since it last ran ``stable_s`` seconds: sets the next backoff."""
    restart_at: float = 0.0


class Supervisor:
    """Restart crashed nodes of a started testnet with a backoff; never stop the others.

    Call :meth:`tick` every few hundred milliseconds; ``say`` receives one
    line per event (exits, restarts).
    """

    def __init__(self, net: Nodes, *, say: Callable[[str], None],
                 clock: Callable[[], float] = time.monotonic, backoff_s: float = 1.0,
                 max_backoff_s: float = 30.0, stable_s: float = 60.0,
                 start_timeout_s: float = 90.0) -> None:
        self.net = net
        self._say = say
        self._clock = clock
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.stable_s = stable_s
        self.start_timeout_s = start_timeout_s
        now = clock()
        self.watch = {name: _Watch(since=now) for name in net.procs}
        self.restarts = 0

    def state(self, name: str) -> State:
        return self.watch[name].state

    def tick(self) -> None:
        """Look at every node once and act on what changed."""
        now = self._clock()
        for name, w in self.watch.items():
            np = self.net.procs[name]
            if w.state is State.RUNNING:
                if not np.alive:
                    self._exited(name, w, np.proc.returncode, now)
                elif w.crashes and now - w.since >= self.stable_s:
                    w.crashes = 0
            elif w.state is State.WAITING and now >= w.restart_at:
                self._restart(name, w, now)
            elif w.state is State.STARTING:
                self._check_start(name, w, now)

    # --- transitions ----------------------------------------------------------------

    def _exited(self, name: str, w: _Watch, code: int | None, now: float) -> None:
        self.net.procs[name].close_log()
        if code == 0:
            self._enter(w, State.STOPPED, now)
            self._say(f"{name} stopped (exit 0); the others keep running. Start it again "
                      f"with: oml-node start --home {self.net.spec(name).home}")
        elif code == HALT_EXIT_CODE:
            self._enter(w, State.HALTED, now)
            self._say(f"{name} halted (exit {code}); not restarting it:\n"
                      f"{self.net.procs[name].log_tail()}")
        else:
            w.crashes += 1
            delay = min(self.max_backoff_s, self.backoff_s * 2 ** (w.crashes - 1))
            w.restart_at = now + delay
            self._enter(w, State.WAITING, now)
            self._say(f"{name} exited with code {code}; restarting in {delay:g}s:\n"
                      f"{self.net.procs[name].log_tail(10)}")

    def _restart(self, name: str, w: _Watch, now: float) -> None:
        try:
            self.net.start(name)
        except (TestnetError, OSError) as exc:
            self._say(f"{name}: restart failed: {exc}")
            self._exited(name, w, None, now)
            return
        self.restarts += 1
        self._enter(w, State.STARTING, now)

    def _check_start(self, name: str, w: _Watch, now: float) -> None:
        np = self.net.procs[name]
        if not np.alive:
            self._exited(name, w, np.proc.returncode, now)
        elif self.net.poll_ready(name):
            try:
                self.net.wire([name])
            except TestnetError as exc:  # it is up; the next restart wires it again
                self._say(f"{name}: restarted but not wired: {exc}")
            self._enter(w, State.RUNNING, now)
            self._say(f"{name} restarted: {self.net.spec(name).rpc_url}")
        elif now - w.since > self.start_timeout_s:
            self._say(f"{name} not healthy {self.start_timeout_s:g}s after its restart; "
                      "killing it")
            self.net.kill(name)
            self._exited(name, w, None, now)

    @staticmethod
    def _enter(w: _Watch, state: State, now: float) -> None:
        w.state = state
        w.since = now


__all__ = ["HALT_EXIT_CODE", "Nodes", "State", "Supervisor"]
