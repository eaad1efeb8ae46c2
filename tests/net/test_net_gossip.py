"""Gossip over real libp2p hosts on loopback: delivery, validation, size caps."""

from __future__ import annotations

import pytest
import trio
from net_helpers import bounded, config, hosts, link, wait_until

from net import MessageTooLarge, NetUsageError

TOPIC = "oml/test/1"


@bounded(30)
async def test_line_delivery_validator_and_own_messages() -> None:
    """A - B - C in a line: B's validator decides what reaches C."""
    seen_by_b: list[tuple[str, bytes]] = []

    def b_validator(origin: str, data: bytes) -> bool:
        seen_by_b.append((origin, data))
        return not data.startswith(b"bad")

    async with hosts(config("ga"), config("gb"), config("gc")) as (a, b, c):
        await link(a, b)
        await link(b, c)
        ra = a.subscribe(TOPIC)
        rb = b.subscribe(TOPIC, b_validator)
        rc = c.subscribe(TOPIC)  # no validator: C would deliver anything B forwarded
        await b.wait_for_topic_peers(TOPIC, 2, 5)
        await a.wait_for_topic_peers(TOPIC, 1, 5)
        await c.wait_for_topic_peers(TOPIC, 1, 5)
        assert not c.is_connected(a.peer_id), "the test needs a line, not a triangle"

        await a.publish(TOPIC, b"bad: must stop at B")
        await a.publish(TOPIC, b"good 1")
        with trio.fail_after(5):
            assert await rc.receive() == (a.peer_id, b"good 1")
            assert await rb.receive() == (a.peer_id, b"good 1")
        await wait_until(lambda: b.stats().topics[TOPIC].rejected == 1, what="B to reject")
        # A third message after the rejection; once it arrives, anything B
        # had forwarded before it would have arrived too.
        await a.publish(TOPIC, b"good 2")
        with trio.fail_after(5):
            assert await rc.receive() == (a.peer_id, b"good 2")
        # B cached its verdict on the bad message, so it never forwards it later.
        with pytest.raises(trio.WouldBlock):
            rc.receive_nowait()
        with pytest.raises(trio.WouldBlock):
            ra.receive_nowait()  # own publishes are not delivered back
        assert (a.peer_id, b"bad: must stop at B") in seen_by_b
        # C publishes back along the line; the origin is C, not the forwarder B.
        await c.publish(TOPIC, b"from c")
        with trio.fail_after(5):
            assert await ra.receive() == (c.peer_id, b"from c")
        sa, sb, sc = a.stats(), b.stats(), c.stats()
        assert sa.topics[TOPIC].published == 3 and sa.topics[TOPIC].delivered == 1
        assert sb.topics[TOPIC].delivered == 3 and sb.topics[TOPIC].rejected == 1
        assert sc.topics[TOPIC].delivered == 2 and sc.topics[TOPIC].rejected == 0
        assert sb.peers == 2 and sa.peers == 1


@bounded(30)
async def test_oversize_dropped_and_not_forwarded() -> None:
    """A (cap 4096) publishes 2000 bytes; B (cap 1024) drops it; C never sees it."""
    async with hosts(
        config("oa", max_msg_bytes=4096),
        config("ob", max_msg_bytes=1024),
        config("oc", max_msg_bytes=4096),
    ) as (a, b, c):
        await link(a, b)
        await link(b, c)
        rb = b.subscribe(TOPIC)
        rc = c.subscribe(TOPIC)
        await b.wait_for_topic_peers(TOPIC, 1, 5)
        await c.wait_for_topic_peers(TOPIC, 1, 5)
        await wait_until(lambda: len(a.topic_peers(TOPIC)) == 1, what="A to see B subscribed")
        await a.publish(TOPIC, b"x" * 2000)
        await a.publish(TOPIC, b"small")
        with trio.fail_after(5):
            assert await rc.receive() == (a.peer_id, b"small")
            assert await rb.receive() == (a.peer_id, b"small")
        assert b.stats().topics[TOPIC].oversize == 1
        with pytest.raises(trio.WouldBlock):
            rc.receive_nowait()
        with pytest.raises(MessageTooLarge):
            await b.publish(TOPIC, b"y" * 1025)
        assert b.max_gossip_bytes == 1024


@bounded(30)
async def test_full_subscription_drops_and_counts() -> None:
    async with hosts(config("fa", publish_burst=64), config("fb")) as (a, b):
        await link(a, b)
        rb = b.subscribe(TOPIC, buffer=2)
        await a.wait_for_topic_peers(TOPIC, 1, 5)
        for i in range(10):
            await a.publish(TOPIC, b"m%d" % i)

        def accounted() -> int:
            s = b.stats().topics[TOPIC]
            return s.delivered + s.dropped_full

        await wait_until(lambda: accounted() == 10, what="all 10 accounted for")
        s = b.stats().topics[TOPIC]
        assert s.delivered == 2 and s.dropped_full == 8
        assert [rb.receive_nowait()[1] for _ in range(2)] == [b"m0", b"m1"]


@bounded(30)
async def test_validator_exception_rejects_and_bad_usage() -> None:
    def broken(origin: str, data: bytes) -> bool:
        raise RuntimeError("validator bug")

    async with hosts(config("va"), config("vb")) as (a, b):
        await link(a, b)
        b.subscribe(TOPIC, broken)
        await a.wait_for_topic_peers(TOPIC, 1, 5)
        await a.publish(TOPIC, b"anything")
        await wait_until(
            lambda: TOPIC in b.stats().topics and b.stats().topics[TOPIC].rejected == 1,
            what="rejection",
        )
        with pytest.raises(NetUsageError):
            b.subscribe(TOPIC)  # one subscription per topic
        for bad in ("", "x" * 300, "a\nb"):
            with pytest.raises(NetUsageError):
                a.subscribe(bad)
        with pytest.raises(NetUsageError):
            await a.publish(TOPIC, "text")  # type: ignore[arg-type]


@bounded(30)
async def test_closing_channel_leaves_topic() -> None:
    async with hosts(config("la"), config("lb")) as (a, b):
        await link(a, b)
        rb = b.subscribe(TOPIC)
        await a.wait_for_topic_peers(TOPIC, 1, 5)
        await rb.aclose()
        await a.publish(TOPIC, b"wake the pump")
        await wait_until(lambda: a.topic_peers(TOPIC) == [], what="B to unsubscribe")
        rb2 = b.subscribe(TOPIC)  # allowed again after leaving
        await a.wait_for_topic_peers(TOPIC, 1, 5)
        await a.publish(TOPIC, b"again")
        with trio.fail_after(5):
            assert await rb2.receive() == (a.peer_id, b"again")


@pytest.mark.parametrize("mode, expected", [("content", 1), ("peer_seqno", 2)])
@bounded(30)
async def test_message_id_modes(mode: str, expected: int) -> None:
    """Content ids merge equal payloads; the libp2p standard id keeps both."""
    async with hosts(config(f"m1{mode}", msg_id=mode), config(f"m2{mode}", msg_id=mode)) as (a, b):
        await link(a, b)
        rb = b.subscribe(TOPIC)
        await a.wait_for_topic_peers(TOPIC, 1, 5)
        await a.publish(TOPIC, b"same bytes")
        await a.publish(TOPIC, b"same bytes")
        await a.publish(TOPIC, b"marker")
        got = []
        with trio.fail_after(5):
            while not got or got[-1] != b"marker":
                got.append((await rb.receive())[1])
        assert got.count(b"same bytes") == expected


@bounded(30)
async def test_paced_burst_arrives_complete() -> None:
    """Back-to-back publishes lose messages unpaced (150 sent, about 54 arrive);
    paced, the publisher waits and none are lost. The rate is kept modest so
    that a receiver on a loaded 2-core machine keeps up (gossip cannot slow
    a sender down for a slow receiver)."""
    n, rate, burst = 80, 60.0, 8
    async with hosts(config("pa", publish_rate=rate, publish_burst=burst), config("pb")) as (a, b):
        await link(a, b)
        rb = b.subscribe(TOPIC, buffer=n)
        await a.wait_for_topic_peers(TOPIC, 1, 5)
        start = trio.current_time()
        for i in range(n):
            await a.publish(TOPIC, b"burst %d" % i)
        assert trio.current_time() - start >= (n - burst) / rate * 0.9  # the pacer made us wait
        await wait_until(lambda: b.stats().topics[TOPIC].delivered == n, timeout=15, what="all")
        assert {rb.receive_nowait()[1] for _ in range(n)} == {b"burst %d" % i for i in range(n)}


@bounded(30)
async def test_async_validator_in_a_worker_thread() -> None:
    def check(data: bytes) -> bool:  # stands in for signature checks off the event loop
        return not data.startswith(b"bad")

    async def validator(origin: str, data: bytes) -> bool:
        if data == b"explode":
            raise ValueError("validator bug")
        return await trio.to_thread.run_sync(check, data)

    async with hosts(config("aa"), config("ab")) as (a, b):
        await link(a, b)
        rb = b.subscribe(TOPIC, validator)
        await a.wait_for_topic_peers(TOPIC, 1, 5)
        for data in (b"bad one", b"explode", b"good one"):
            await a.publish(TOPIC, data)
        with trio.fail_after(5):
            assert await rb.receive() == (a.peer_id, b"good one")
        await wait_until(lambda: b.stats().topics[TOPIC].rejected == 2, what="two rejections")
        with pytest.raises(trio.WouldBlock):
            rb.receive_nowait()
