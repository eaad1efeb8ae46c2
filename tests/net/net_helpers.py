"""Helpers for net tests: real libp2p hosts on 127.0.0.1, each binding port 0."""

from __future__ import annotations

import functools
import hashlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from typing import Any, TypeVar

import trio

from net import NetConfig, Transport, open_transport

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def seed(name: str) -> bytes:
    """A fixed 32-byte node seed per test node name."""
    return hashlib.sha256(b"oml-net-test:" + name.encode()).digest()


def config(name: str, **kw: Any) -> NetConfig:
    kw.setdefault("stream_timeout_s", 3.0)
    kw.setdefault("handler_timeout_s", 3.0)
    kw.setdefault("redial_interval_s", 0.2)
    kw.setdefault("dial_timeout_s", 2.0)
    return NetConfig(seed=seed(name), **kw)


@asynccontextmanager
async def hosts(*configs: NetConfig) -> AsyncIterator[list[Transport]]:
    """Open several transports in one process; all closed on exit."""
    async with AsyncExitStack() as stack:
        out = [await stack.enter_async_context(open_transport(c)) for c in configs]
        yield out


async def link(a: Transport, b: Transport) -> None:
    """Connect ``a`` to ``b`` and wait until both see the connection."""
    await a.connect(b.listen_addrs[0])
    with trio.fail_after(5):
        while not (a.is_connected(b.peer_id) and b.is_connected(a.peer_id)):
            await trio.sleep(0.01)


async def wait_until(pred: Any, timeout: float = 5.0, what: str = "condition") -> None:
    """Poll ``pred()`` every 10 ms until true; fail the test after ``timeout``."""
    with trio.move_on_after(timeout):
        while not pred():
            await trio.sleep(0.01)
        return
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@contextmanager
def closed_port() -> Iterator[int]:
    """A 127.0.0.1 port that refuses connections for the duration of the block.

    The socket is bound but never listens, so a dial there is refused and no
    other process can take the port meanwhile (a port merely probed free can
    be taken between the probe and its use).
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])


def bounded(seconds: float) -> Callable[[F], F]:
    """Run the whole async test under ``trio.fail_after(seconds)``.

    pytest-timeout's global limit would kill the run; this fails one test
    cleanly, with every host in it closed by its ``async with``.
    """

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        async def run(*args: Any, **kwargs: Any) -> Any:
            with trio.fail_after(seconds):
                return await fn(*args, **kwargs)

        return run  # type: ignore[return-value]

    return wrap
