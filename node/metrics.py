"""Prometheus metrics of one node, in a registry of its own.

A per-node :class:`~prometheus_client.CollectorRegistry` (not the global
default) so several nodes in one process (tests, the in-process harness) do
not share or clash on series, and a node exports only its own.

The daemon calls the ``observe_*`` methods from its event loop; they take
values (heights, header times in ms) rather than reading clocks, so the block
interval is the interval between block *header* times, the same figure on
every node. :func:`serve_metrics` serves ``GET /metrics`` on the metrics
``laddr`` with the same Hypercorn setup as the RPC server.

Series (prefix ``oml_``): ``consensus_height``, ``consensus_round``,
``consensus_block_interval_seconds`` (histogram), ``consensus_blocks_total``,
``consensus_txs_committed_total``, ``consensus_txs_failed_total``,
``consensus_block_txs`` (histogram), ``consensus_catching_up``,
``p2p_peers``, ``mempool_size``, ``mempool_size_bytes``,
``mempool_add_total{result}``, ``rpc_requests_total{method,outcome}``,
``rpc_request_seconds`` (histogram), ``gossip_messages_total{topic,result}``,
``gossip_heartbeats_total``, ``gossip_oversize_rpcs_total``.

The gossip series mirror the transport's own monotonic counters
(:class:`net.NetStats`): the daemon hands over a snapshot each second with
:meth:`NodeMetrics.observe_net`, and a custom collector reports the latest
one at scrape time, so nothing is counted twice or lost between snapshots.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator

import trio
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from net.types import NetStats
from node.config import MetricsSection

NAMESPACE = "oml"
BLOCK_INTERVAL_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0)
BLOCK_TXS_BUCKETS = (0, 1, 10, 50, 100, 500, 1000, 2000, 5000, 10000)
RPC_SECONDS_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0)
#: mempool add outcomes accepted as the ``result`` label (AddStatus values).
MEMPOOL_RESULTS = ("accepted", "duplicate", "full", "too_large", "rejected")


class NodeMetrics:
    """All metrics of one node and the small API the daemon feeds them through."""

    def __init__(self, *, method_names: tuple[str, ...] = ()) -> None:
        """``method_names``: RPC methods that get their own label value; any other
        name is counted as ``unknown`` so a client cannot create unbounded series."""
        self.registry = CollectorRegistry(auto_describe=True)
        reg, ns = self.registry, NAMESPACE
        self.height = Gauge("height", "Height of the latest committed block",
                            namespace=ns, subsystem="consensus", registry=reg)
        self.round = Gauge("round", "Consensus round at the current height",
                           namespace=ns, subsystem="consensus", registry=reg)
        self.catching_up = Gauge("catching_up", "1 while the node syncs blocks from peers",
                                 namespace=ns, subsystem="consensus", registry=reg)
        self.block_interval = Histogram(
            "block_interval_seconds", "Time between consecutive block header times",
            namespace=ns, subsystem="consensus", registry=reg, buckets=BLOCK_INTERVAL_BUCKETS)
        self.blocks = Counter("blocks", "Blocks committed by this node",
                              namespace=ns, subsystem="consensus", registry=reg)
        self.txs_committed = Counter("txs_committed", "Transactions in committed blocks",
                                     namespace=ns, subsystem="consensus", registry=reg)
        self.txs_failed = Counter("txs_failed", "Committed transactions with a non-zero code",
                                  namespace=ns, subsystem="consensus", registry=reg)
        self.block_txs = Histogram("block_txs", "Transactions per committed block",
                                   namespace=ns, subsystem="consensus", registry=reg,
                                   buckets=BLOCK_TXS_BUCKETS)
        self.peers = Gauge("peers", "Connected libp2p peers",
                           namespace=ns, subsystem="p2p", registry=reg)
        self.mempool_txs = Gauge("size", "Transactions in the mempool",
                                 namespace=ns, subsystem="mempool", registry=reg)
        self.mempool_bytes = Gauge("size_bytes", "Bytes of transactions in the mempool",
                                   namespace=ns, subsystem="mempool", registry=reg)
        self.mempool_add = Counter("add", "Mempool add attempts by result",
                                   ["result"], namespace=ns, subsystem="mempool", registry=reg)
        self.rpc_requests = Counter("requests", "JSON-RPC requests by method and outcome",
                                    ["method", "outcome"], namespace=ns, subsystem="rpc",
                                    registry=reg)
        self.rpc_seconds = Histogram("request_seconds", "JSON-RPC handler time",
                                     namespace=ns, subsystem="rpc", registry=reg,
                                     buckets=RPC_SECONDS_BUCKETS)
        self._methods = frozenset(method_names)
        self._last_height: int | None = None
        self._last_time_ms: int | None = None
        self._gossip = _GossipCollector()
        reg.register(self._gossip)

    # --- feeding ------------------------------------------------------------------

    def observe_block(self, height: int, time_ms: int, num_txs: int, failed_txs: int = 0) -> None:
        """A block was committed (or synced). The interval is observed only between
        consecutive heights, so the first block after a restart or a gap does not
        record a bogus interval."""
        if self._last_height is not None and height == self._last_height + 1 \
                and self._last_time_ms is not None and time_ms >= self._last_time_ms:
            self.block_interval.observe((time_ms - self._last_time_ms) / 1000)
        self._last_height, self._last_time_ms = height, time_ms
        self.height.set(height)
        self.blocks.inc()
        self.txs_committed.inc(num_txs)
        self.txs_failed.inc(failed_txs)
        self.block_txs.observe(num_txs)

    def observe_round(self, round_: int) -> None:
        self.round.set(round_)

    def observe_peers(self, n: int) -> None:
        self.peers.set(n)

    def observe_net(self, stats: NetStats) -> None:
        """The transport's latest counters (``Transport.stats()``); sets ``p2p_peers`` too."""
        self.peers.set(stats.peers)
        self._gossip.latest = stats

    def observe_catching_up(self, catching_up: bool) -> None:
        self.catching_up.set(1 if catching_up else 0)

    def observe_mempool(self, txs: int, size_bytes: int) -> None:
        self.mempool_txs.set(txs)
        self.mempool_bytes.set(size_bytes)

    def observe_mempool_add(self, result: str) -> None:
        """``result``: one of :data:`MEMPOOL_RESULTS` (``AddStatus.value``)."""
        if result not in MEMPOOL_RESULTS:
            raise ValueError(f"unknown mempool result {result!r}")
        self.mempool_add.labels(result=result).inc()

    def observe_rpc(self, method: str, code: int | None, seconds: float) -> None:
        """Matches :data:`node.rpc.jsonrpc.CallObserver`: pass this as the server's observer."""
        label = method if method in self._methods else "unknown"
        self.rpc_requests.labels(method=label, outcome="ok" if code is None else "error").inc()
        self.rpc_seconds.observe(seconds)

    # --- exposition -----------------------------------------------------------------

    def render(self) -> bytes:
        """The registry in Prometheus text format."""
        return generate_latest(self.registry)


class _GossipCollector(Collector):
    """Reports the gossip counters of the latest :class:`NetStats` snapshot."""

    def __init__(self) -> None:
        self.latest = NetStats(peers=0)

    def describe(self) -> list[Metric]:
        return list(self.collect())

    def collect(self) -> Iterator[Metric]:
        stats = self.latest
        messages = CounterMetricFamily(
            f"{NAMESPACE}_gossip_messages",
            "Gossip messages by topic and result: published by us; from others delivered, "
            "dropped_full (accepted but the consumer was behind), or rejected as invalid, "
            "error (validator raised), timeout or oversize",
            labels=["topic", "result"])
        for topic, topic_stats in sorted(stats.topics.items()):
            for result, count in topic_stats.results().items():
                messages.add_metric([topic, result], count)
        yield messages
        yield CounterMetricFamily(f"{NAMESPACE}_gossip_heartbeats",
                                  "Gossipsub heartbeats (mesh upkeep) run",
                                  value=stats.gossip_heartbeats)
        yield CounterMetricFamily(f"{NAMESPACE}_gossip_oversize_rpcs",
                                  "Inbound pubsub RPCs over the size cap, skipped whole "
                                  "(the peer's session kept)",
                                  value=stats.gossip_oversize_rpcs)


def metrics_app(metrics: NodeMetrics) -> Starlette:
    """ASGI app: ``GET /metrics`` (Prometheus text format); ``GET /`` points there."""

    async def scrape(_request: Request) -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    async def index(_request: Request) -> Response:
        return PlainTextResponse("metrics at /metrics\n")

    return Starlette(routes=[Route("/metrics", scrape, methods=["GET"]),
                             Route("/", index, methods=["GET"])])


async def serve_metrics(config: MetricsSection, metrics: NodeMetrics, *,
                        shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
                        task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED
                        ) -> None:
    """Serve :func:`metrics_app` on ``config.laddr`` until ``shutdown_trigger`` returns.

    ``task_status.started`` gets the bound URLs. Returns at once (after
    reporting no URLs) when metrics are disabled in config.
    """
    from node.rpc.server import serve_app

    if not config.enabled:
        task_status.started([])
        return
    await serve_app(metrics_app(metrics), config.laddr, shutdown_trigger=shutdown_trigger,
                    task_status=task_status)


__all__ = ["MEMPOOL_RESULTS", "NodeMetrics", "metrics_app", "serve_metrics"]
