"""node.txgossip: a received batch is admitted in chunks, so consensus is not held up."""

from __future__ import annotations

import pytest
import trio

from node.config import Config
from node.mempool import Mempool
from node.mempool.batch import encode_batch
from node.txgossip import ADMIT_CHUNK, TxGossip

from ._fakes import FakeTransport


class _Ok:
    code = 0
    log = ""
    codespace = ""


async def test_a_big_batch_yields_to_the_event_loop_between_chunks(
        monkeypatch: pytest.MonkeyPatch) -> None:
    order: list[str] = []

    def check(_tx: bytes) -> _Ok:
        order.append("tx")
        return _Ok()

    real_checkpoint = trio.lowlevel.checkpoint

    async def spy() -> None:
        order.append("yield")
        await real_checkpoint()

    mempool = Mempool(Config().mempool, check)
    gossip = TxGossip(Config().mempool, mempool, FakeTransport("me"), max_msg_bytes=1 << 20)
    txs = [b"tx-%04d" % i for i in range(4 * ADMIT_CHUNK + 5)]
    monkeypatch.setattr(trio.lowlevel, "checkpoint", spy)
    added = await gossip.admit_batch("peer", encode_batch(txs))
    assert added == len(txs) == len(mempool)
    runs = "".join("t" if x == "tx" else "|" for x in order).split("|")
    assert max(len(r) for r in runs) <= ADMIT_CHUNK and order.count("yield") >= 5
