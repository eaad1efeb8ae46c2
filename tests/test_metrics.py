"""Metrics: per-node registry, block interval from header times, scraped over HTTP."""

from __future__ import annotations

from functools import partial

import httpx
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from net import NetStats, TopicStats
from node.config import MetricsSection
from node.metrics import NodeMetrics, serve_metrics


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(text: str, name: str, **labels: str) -> float:
    return samples(text)[(name, tuple(sorted(labels.items())))]


def test_registries_are_per_node() -> None:
    a, b = NodeMetrics(), NodeMetrics()
    a.observe_peers(3)
    assert value(a.render().decode(), "oml_p2p_peers") == 3
    assert value(b.render().decode(), "oml_p2p_peers") == 0


def test_block_interval_uses_header_times_and_skips_gaps() -> None:
    m = NodeMetrics()
    m.observe_block(1, 10_000, 5)
    m.observe_block(2, 11_500, 0, failed_txs=0)
    m.observe_block(3, 12_000, 7, failed_txs=2)
    m.observe_block(10, 99_000, 1)  # a gap (synced from far behind): no interval
    text = m.render().decode()
    assert value(text, "oml_consensus_height") == 10
    assert value(text, "oml_consensus_blocks_total") == 4
    assert value(text, "oml_consensus_txs_committed_total") == 13
    assert value(text, "oml_consensus_txs_failed_total") == 2
    assert value(text, "oml_consensus_block_interval_seconds_count") == 2
    assert value(text, "oml_consensus_block_interval_seconds_sum") == pytest.approx(2.0)
    assert value(text, "oml_consensus_block_interval_seconds_bucket", le="0.5") == 1
    assert value(text, "oml_consensus_block_interval_seconds_bucket", le="1.5") == 2


def test_rpc_and_mempool_labels_are_bounded() -> None:
    m = NodeMetrics(method_names=("status",))
    m.observe_rpc("status", None, 0.01)
    m.observe_rpc("attacker-chosen-name", -32601, 0.0)
    m.observe_mempool_add("accepted")
    with pytest.raises(ValueError):
        m.observe_mempool_add("whatever")
    text = m.render().decode()
    assert value(text, "oml_rpc_requests_total", method="status", outcome="ok") == 1
    assert value(text, "oml_rpc_requests_total", method="unknown", outcome="error") == 1
    assert "attacker" not in text
    assert value(text, "oml_mempool_add_total", result="accepted") == 1


def test_gossip_counters_by_topic_and_result() -> None:
    m = NodeMetrics()
    text = m.render().decode()
    assert value(text, "oml_gossip_heartbeats_total") == 0  # present before any snapshot
    topic = TopicStats(published=3, delivered=5, dropped_full=1, invalid=2, errors=1,
                       timeouts=0, oversize=4)
    m.observe_net(NetStats(peers=2, topics={"oml/txs/1": topic}, gossip_heartbeats=7,
                           gossip_oversize_rpcs=1))
    text = m.render().decode()
    expected = {"published": 3, "delivered": 5, "dropped_full": 1, "invalid": 2, "error": 1,
                "timeout": 0, "oversize": 4}
    for result, count in expected.items():
        got = value(text, "oml_gossip_messages_total", topic="oml/txs/1", result=result)
        assert got == count, result
    assert topic.rejected == 7
    assert value(text, "oml_gossip_heartbeats_total") == 7
    assert value(text, "oml_gossip_oversize_rpcs_total") == 1
    assert value(text, "oml_p2p_peers") == 2
    assert 'oml_gossip_messages_total{result="invalid",topic="oml/txs/1"} 2.0' in text


async def test_scrape_over_http(nursery: trio.Nursery) -> None:
    m = NodeMetrics()
    m.observe_block(1, 1000, 3)
    m.observe_round(2)
    m.observe_peers(4)
    m.observe_mempool(17, 4096)
    m.observe_catching_up(True)
    stop = trio.Event()
    with trio.fail_after(10):
        urls = await nursery.start(partial(serve_metrics, MetricsSection(laddr="127.0.0.1:0"),
                                           m, shutdown_trigger=stop.wait))
        async with httpx.AsyncClient(base_url=urls[0]) as client:
            resp = await client.get("/metrics")
            assert resp.status_code == 200
            assert resp.headers["content-type"].startswith("text/plain")
            text = resp.text
            assert value(text, "oml_consensus_height") == 1
            assert value(text, "oml_consensus_round") == 2
            assert value(text, "oml_p2p_peers") == 4
            assert value(text, "oml_mempool_size") == 17
            assert value(text, "oml_mempool_size_bytes") == 4096
            assert value(text, "oml_consensus_catching_up") == 1
            assert value(text, "oml_consensus_txs_committed_total") == 3
            m.observe_block(2, 2000, 1)  # a second scrape sees new values
            assert value((await client.get("/metrics")).text, "oml_consensus_height") == 2
    stop.set()


async def test_disabled_metrics_serve_nothing(nursery: trio.Nursery) -> None:
    with trio.fail_after(5):
        urls = await nursery.start(partial(serve_metrics, MetricsSection(enabled=False),
                                           NodeMetrics()))
    assert urls == []
