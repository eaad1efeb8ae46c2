"""No answer leaves before its permission string is on disk; the fsync overlaps the model."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest
import trio
import trio.testing

from node.roles.host.durability import Flusher
from node.roles.host.store import HostStore

from .gwkit import KEY, MODEL_ID, MODEL_NAME, FakeOwner, make_gateway, make_permitter, serving

pytestmark = pytest.mark.timeout(120)


class GatedFlush:
    """A flush (run in a worker thread) that blocks until the test opens the gate."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1
        assert self.gate.wait(30), "the test never opened the gate"


async def test_wait_returns_once_a_flush_covers_the_ticket() -> None:
    flush = GatedFlush()
    flusher = Flusher(flush)
    done: list[int] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(flusher.run)
        first = flusher.wrote()

        async def waiter(ticket: int) -> None:
            await flusher.wait(ticket)
            done.append(ticket)

        nursery.start_soon(waiter, first)
        with trio.fail_after(10):
            while flush.calls == 0:  # the first flush is running (blocked on the gate)
                await trio.sleep(0.001)
        second = flusher.wrote()  # written while the first flush is running
        nursery.start_soon(waiter, second)
        await trio.testing.wait_all_tasks_blocked()
        try:
            assert done == [] and flush.calls == 1
        finally:
            flush.gate.set()
        with trio.fail_after(10):
            while len(done) < 2:
                await trio.sleep(0.001)
        assert done == [first, second] and flush.calls == 2  # the second flush covered it
        nursery.cancel_scope.cancel()


async def test_an_answer_waits_for_its_fsync_but_the_model_does_not(engine, tmp_path: Path):
    store = HostStore.open(tmp_path / "host", sync=False)
    flush = GatedFlush()
    flusher = Flusher(lambda: (flush(), store.flush()))
    owner = FakeOwner()
    permitter = make_permitter(store, owner, flusher=flusher)
    gateway = make_gateway(engine, permitter, store)
    got: dict[str, httpx.Response] = {}
    try:
        async with serving(gateway, permitter) as base, httpx.AsyncClient(timeout=60) as http:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(flusher.run)

                async def ask(kind: str, stream: bool) -> None:
                    got[kind] = await http.post(
                        base + "/completions", headers={"authorization": f"Bearer {KEY}"},
                        json={"model": MODEL_NAME, "prompt": kind, "max_tokens": 3,
                              "stream": stream})

                nursery.start_soon(ask, "whole", False)
                nursery.start_soon(ask, "streamed", True)
                with trio.fail_after(30):
                    while engine.runs < 2 or store.permit_count() < 2:
                        await trio.sleep(0.01)
                # both models ran, both permissions are written, no answer has left yet
                await trio.sleep(0.2)  # give a wrong implementation time to answer early
                try:
                    assert got == {}
                finally:
                    flush.gate.set()
                with trio.fail_after(30):
                    while len(got) < 2:
                        await trio.sleep(0.01)
                nursery.cancel_scope.cancel()
        assert flusher.durable >= 1 and store.voucher(MODEL_ID).count == 2
    finally:
        store.close()
    assert got["whole"].status_code == 200 and got["streamed"].status_code == 200
    assert got["streamed"].text.endswith("data: [DONE]\n\n")


async def test_with_a_sync_interval_answers_do_not_wait(engine, tmp_path: Path):
    store = HostStore.open(tmp_path / "host", sync=False)
    flush = GatedFlush()
    flusher = Flusher(flush, interval_s=0.1)
    permitter = make_permitter(store, FakeOwner(), flusher=flusher, wait_durable=False)
    gateway = make_gateway(engine, permitter, store)
    try:
        async with serving(gateway, permitter) as base, httpx.AsyncClient(timeout=60) as http:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(flusher.run)
                with trio.fail_after(30):
                    resp = await http.post(
                        base + "/completions", headers={"authorization": f"Bearer {KEY}"},
                        json={"model": MODEL_NAME, "prompt": "x", "max_tokens": 2})
                assert resp.status_code == 200 and flusher.durable == 0
                flush.gate.set()
                nursery.cancel_scope.cancel()
    finally:
        store.close()
