"""A peer in a separate OS process: round trips, SIGKILL, restart and redial."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
from net_helpers import bounded, config, hosts, seed, wait_until

from net import PeerUnreachable, RequestTimeout

SCRIPT = Path(__file__).with_name("net_peer_proc.py")
ROOT = Path(__file__).resolve().parents[2]


@asynccontextmanager
async def peer_process(seed_hex: str) -> AsyncIterator[tuple[trio.Process, dict]]:
    """Start the child, wait for its ready line (bounded), always kill it on exit."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = await trio.lowlevel.open_process(
        [sys.executable, str(SCRIPT), seed_hex],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        buf = b""
        with trio.fail_after(30):
            while b"\n" not in buf:
                chunk = await proc.stdout.receive_some(4096)
                assert chunk, "peer process exited before it was ready"
                buf += chunk
        yield proc, json.loads(buf.split(b"\n", 1)[0])
    finally:
        if proc.returncode is None:
            proc.kill()
        with trio.move_on_after(10):
            await proc.wait()


@pytest.mark.slow
@bounded(90)
async def test_separate_process_round_trip_kill_and_restart() -> None:
    child_seed = seed("proc-child").hex()
    child_id = config("proc-child").peer_id
    async with hosts(config("proc-parent")) as (me,):
        out = me.subscribe("oml/test/out")
        async with peer_process(child_seed) as (proc, ready):
            assert ready["peer_id"] == child_id
            (first_addr,) = ready["addrs"]  # the port the child bound (it asked for 0)
            await me.add_peers([first_addr], persistent=True)
            await wait_until(lambda: me.is_connected(child_id), timeout=10, what="dial to child")
            assert await me.request(child_id, "/oml/test/echo/1", b"hi") == b"echo:hi"
            await me.wait_for_topic_peers("oml/test/in", 1, 10)
            assert me.topic_peers("oml/test/in") == [child_id]
            await me.publish("oml/test/in", b"ping")
            with trio.fail_after(10):
                assert await out.receive() == (child_id, b"echo:ping")

            proc.send_signal(signal.SIGKILL)
            with trio.fail_after(10):
                await proc.wait()
            await wait_until(lambda: not me.is_connected(child_id), timeout=10, what="disconnect")
            with pytest.raises((PeerUnreachable, RequestTimeout)):
                await me.request(child_id, "/oml/test/echo/1", b"dead", timeout=2)

        # Same seed: same peer id, on whatever port it got; that address replaces the old.
        async with peer_process(child_seed) as (proc, ready):
            assert ready["peer_id"] == child_id
            await me.add_peers(ready["addrs"], persistent=True)
            await wait_until(lambda: me.is_connected(child_id), timeout=10, what="reconnect")
            assert await me.request(child_id, "/oml/test/echo/1", b"back") == b"echo:back"
            assert me.connected_peers()[0].persistent
