"""The node daemon: open the stores, start libp2p, RPC, metrics and consensus; stop cleanly.

Lifecycle (one trio run per process)::

    load config, genesis, keys          (errors -> exit 1 before anything starts)
    open ledger + chain, recover        (re-execute blocks stored but not applied)
    open transport (libp2p)             (listen, redial persistent peers)
    start RPC + metrics servers         (then write data/listen.json: the bound addresses)
    start tx gossip, block-sync server
    validator:  run consensus (it asks for block sync when it sees later heights)
    full node:  follow the chain by block sync (poll peers' heights)
    SIGINT/SIGTERM -> cancel everything -> close the transport -> close the stores

A failure to bind a port, a corrupt WAL or a broken chain invariant ends the
process with a non-zero exit code and a log line naming the cause; a
peer's bad message never does (it is dropped and logged).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import logging
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import trio

from consensus.crypto import Signer

from .backend import Backend, block_view
from .chain import Chain, ChainError, result_fields
from .config import Config
from .genesis import Genesis
from .home import Home
from .keys import AccountKey, NodeKey
from .listenfile import ListenInfo, remove_listen_file, write_listen_file
from .logs import route_library_logs, setup_logging
from .mempool import Mempool, tx_hash
from .rpc.backend import NewBlockEvent, TxResult, TxView
from .sync import SYNC_PROTOCOL, BlockSyncer, follower_committer, serve_request
from .txcheck import CachedCheck
from .txgossip import TX_TOPIC, TxGossip

log = logging.getLogger("node.daemon")

#: How often a full node asks its peers for their heights and new blocks
#: (quickest, and slowest on a quiet chain; see Daemon._follower_loop).
FOLLOW_POLL_S = 0.5
FOLLOW_POLL_MAX_S = 2.0


class DaemonError(Exception):
    """The node cannot start (bad home, port in use) or had to halt."""


class Daemon:
    """Everything one node runs; build with :meth:`from_home`, then ``await run()``."""

    def __init__(self, home: Home, config: Config, genesis: Genesis, account: AccountKey,
                 node_key: NodeKey) -> None:
        self.home = home
        self.config = config
        self.genesis = genesis
        self.account = account
        self.signer = Signer(account.key)
        self.node_key = node_key
        self.exit_code = 0
        self._syncer: BlockSyncer | None = None
        self.chain: Chain | None = None
        self.transport: Any = None

    @classmethod
    def from_home(cls, root: Path) -> Daemon:
        home = Home(root)
        config = home.config()
        setup_logging(config.log, config.node.moniker)
        genesis = Genesis.load(home.genesis_file(config))
        return cls(home, config, genesis, home.account_key(config), home.node_key(config))

    @property
    def is_validator(self) -> bool:
        if not self.config.roles.validator:
            return False
        return any(v.pub_key == self.account.public_key for v in self.genesis.validators)

    # --- lifecycle ----------------------------------------------------------------

    async def run(self) -> int:
        """Run until SIGINT/SIGTERM (exit code 0) or a fatal error (non-zero)."""
        from .ledger import Ledger

        data_dir = self.home.data_dir(self.config)
        data_dir.mkdir(parents=True, exist_ok=True)
        with _exclusive(data_dir / "node.lock"), _listen_file_cleared(data_dir), \
                trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            ledger = Ledger.open(data_dir / "state", self.genesis)
            try:
                chain = Chain(data_dir, self.genesis, ledger)
                self.chain = chain
                try:
                    replayed = chain.recover()
                    if replayed:
                        log.info("re-executed %d stored blocks", replayed)
                    log.info("opened chain %s at height %d (app hash %s)", self.genesis.chain_id,
                             chain.height, ledger.app_hash.hex()[:16])
                    await self._run_network(chain, signals)
                finally:
                    chain.close()
            finally:
                ledger.close()
        log.info("stopped")
        return self.exit_code

    async def _run_network(self, chain: Chain, signals: Any) -> None:
        from net import NetConfig, open_transport

        p2p = self.config.p2p
        netcfg = NetConfig(seed=self.node_key.seed, listen_addr=p2p.listen_addr,
                           persistent_peers=tuple(p2p.persistent_peers),
                           redial_interval_s=p2p.redial_interval_ms / 1000,
                           stream_timeout_s=p2p.stream_timeout_ms / 1000,
                           max_msg_bytes=p2p.max_msg_bytes,
                           msg_id="peer_seqno" if p2p.msg_id == "peer_seqno" else "content")
        self.check = CachedCheck(chain.ledger)
        mempool = Mempool(self.config.mempool, self.check)
        async with open_transport(netcfg) as transport:
            route_library_logs()  # libp2p is imported by now
            self.transport = transport
            log.info("libp2p listening on %s", ", ".join(transport.listen_addrs))
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._watch_signals, signals, nursery.cancel_scope)
                await self._run_services(nursery, chain, mempool, transport)

    async def _watch_signals(self, signals: Any, scope: trio.CancelScope) -> None:
        async for sig in signals:
            log.info("received %s, shutting down", signal.Signals(sig).name)
            scope.cancel()
            return

    async def _run_services(self, nursery: trio.Nursery, chain: Chain, mempool: Mempool,
                            transport: Any) -> None:
        from .metrics import NodeMetrics, serve_metrics
        from .roles import RoleContext, build_services
        from .roles.txsender import TxSender
        from .rpc import EventBus, build_methods, serve_rpc

        gossip = TxGossip(self.config.mempool, mempool, transport,
                          max_msg_bytes=transport.max_gossip_bytes)
        events = EventBus()
        backend = Backend(chain=chain, mempool=mempool, gossip=gossip,
                          peer_id=transport.peer_id, moniker=self.config.node.moniker,
                          listen_addr=self.config.p2p.listen_addr,
                          pub_key=self.account.public_key,
                          catching_up=self._catching_up,
                          peers=transport.connected_peers,
                          listeners=lambda: transport.listen_addrs, metrics=None,
                          add_peers=transport.add_peers)
        commit_listeners: list[Any] = []
        txs = TxSender(signer=self.signer, address=self.account.address,
                       chain_id=self.genesis.chain_id, backend=backend, index=chain,
                       mempool_txs=lambda: iter(mempool))
        services = build_services(RoleContext(
            config=self.config, data_dir=self.home.data_dir(self.config),
            account_seed=self.account.key.seed, account_pub=self.account.public_key,
            chain=chain, transport=transport, backend=backend,
            on_committed=commit_listeners.append, txs=txs))
        role_methods = [m for service in services for m in service.rpc_methods()]
        metrics = NodeMetrics(method_names=tuple(build_methods(role_methods)))
        backend.metrics = metrics

        def on_committed(block: Any, _commit: Any, result: Any) -> None:
            mempool.update(block.height, block.txs)
            txs = tx_views(chain, block, result)
            events.publish(NewBlockEvent(block=block_view(block), txs=txs))
            metrics.observe_block(height=block.height, time_ms=block.header.time_ms,
                                  num_txs=len(block.txs),
                                  failed_txs=sum(1 for t in txs if t.result.code != 0))
            for listener in commit_listeners:
                listener()

        chain.on_committed.append(on_committed)

        # servers first, so `health` answers while we catch up
        rpc_urls = await nursery.start(functools.partial(
            serve_rpc, backend, events, self.config.rpc, observer=metrics.observe_rpc,
            extra_methods=role_methods))
        metrics_urls = await nursery.start(serve_metrics, self.config.metrics, metrics)
        write_listen_file(self.home.data_dir(self.config), ListenInfo(
            pid=os.getpid(), peer_id=transport.peer_id, p2p=tuple(transport.listen_addrs),
            rpc=tuple(rpc_urls), metrics=tuple(metrics_urls)))
        nursery.start_soon(self._update_gauges, metrics, mempool, transport)

        async def handle_sync(_peer: str, data: bytes) -> bytes:
            return serve_request(chain.blocks, data)

        transport.set_handler(SYNC_PROTOCOL, handle_sync)
        txs_in = transport.subscribe(TX_TOPIC, gossip.validate)
        nursery.start_soon(gossip.run_receiver, txs_in)
        nursery.start_soon(gossip.run_publisher)

        for service in services:
            await nursery.start(service.run)
            log.info("role %s started", service.name)
        timeout_s = self.config.p2p.stream_timeout_ms / 1000
        if self.is_validator:
            from .driver import ConsensusDriver

            driver = ConsensusDriver(config=self.config, chain=chain, mempool=mempool,
                                     signer=self.signer, transport=transport, syncer=None,
                                     wal_dir=self.home.data_dir(self.config) / "cs.wal",
                                     metrics=metrics,
                                     max_gossip_bytes=transport.max_gossip_bytes,
                                     check=self.check)
            syncer = BlockSyncer(transport, lambda: chain.height, driver.commit_fetched,
                                 request_timeout=timeout_s,
                                 max_msg_bytes=self.config.p2p.max_msg_bytes)
            driver.syncer = syncer
            self._syncer = syncer
            nursery.start_soon(driver.run)
        else:
            log.info("not a validator: following the chain by block sync")
            syncer = BlockSyncer(transport, lambda: chain.height,
                                 follower_committer(chain), request_timeout=timeout_s,
                                 max_msg_bytes=self.config.p2p.max_msg_bytes)
            self._syncer = syncer
            nursery.start_soon(self._follower_loop, syncer)

    def _catching_up(self) -> bool:
        """True while a peer reports a height more than one block above ours."""
        if self._syncer is None or self.chain is None:
            return True
        return self._syncer.best_peer_height() > self.chain.height + 1

    async def _follower_loop(self, syncer: BlockSyncer) -> None:
        """Follow the chain by block sync: every 0.5 s while blocks arrive; on a quiet
        chain the pause doubles up to 2 s (each poll is a stream to every peer, and
        at 0.5 s they were most of an idle full node's CPU and a share of its peers')."""
        pause = FOLLOW_POLL_S
        while True:
            await syncer.poll_status()
            got = await syncer.sync_once()
            pause = FOLLOW_POLL_S if got else min(pause * 2, FOLLOW_POLL_MAX_S)
            await trio.sleep(pause)

    async def _update_gauges(self, metrics: Any, mempool: Mempool, transport: Any) -> None:
        while True:
            metrics.observe_mempool(len(mempool), mempool.size_bytes)
            metrics.observe_net(transport.stats())
            metrics.observe_catching_up(self._catching_up())
            await trio.sleep(1.0)


def tx_views(chain: Chain, block: Any, result: Any) -> tuple[TxView, ...]:
    """Every transaction of a committed block with its result, for events and metrics.

    ``result`` is the ledger's BlockResult, or None when the block was
    executed before a crash; then the results come from the tx index, which
    was written together with that execution.
    """
    results = list(getattr(result, "tx_results", ()) or ())
    out = []
    for i, tx in enumerate(block.txs):
        h = tx_hash(tx)
        if result is None and (found := chain.indexed_tx(h)) is not None:
            code, text, codespace, evs = found.code, found.log, found.codespace, found.events
        else:
            code, text, codespace, evs = result_fields(results[i] if i < len(results)
                                                        else None)
        out.append(TxView(hash=h, height=block.height, index=i, tx=tx,
                          result=TxResult(code=code, log=text, codespace=codespace, events=evs)))
    return tuple(out)


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` so two processes never run one home.

    Two daemons on one data directory would both write the stores and could
    both sign votes; the lock is taken before anything is opened.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise DaemonError(f"{path.parent} is in use by another oml-node process") from None
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def _listen_file_cleared(data_dir: Path) -> Iterator[None]:
    """No ``listen.json`` but ours: remove a stale one now, and ours when we stop."""
    remove_listen_file(data_dir)
    try:
        yield
    finally:
        remove_listen_file(data_dir)


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in _leaves(sub)]
    return [exc]


def _fatal_exit_code(exc: BaseException) -> tuple[int, str] | None:
    """Exit code and message for the errors that end a node without being bugs."""
    from consensus.errors import InvariantError as ConsensusInvariant
    from consensus.wal import WALCorruptError, WALError

    from .ledger import InvariantError as LedgerInvariant
    from .ledger import LedgerUsageError

    for leaf in _leaves(exc):
        if isinstance(leaf, (ChainError, WALCorruptError, ConsensusInvariant, LedgerInvariant)):
            return 2, f"halting: {leaf}"
        if isinstance(leaf, (OSError, WALError, LedgerUsageError, DaemonError)):
            return 1, f"cannot start: {leaf}"
    return None


def run_daemon(root: Path) -> int:
    """``oml-node start``: run the node in the foreground; returns the exit code.

    0 after SIGINT/SIGTERM; 1 when the node cannot start (port in use, the
    home already running, data from another chain); 2 when it had to halt
    on a broken invariant (corrupt WAL, inconsistent stores). Anything else
    is a bug and propagates with its traceback.
    """
    daemon = Daemon.from_home(root)
    try:
        return trio.run(daemon.run)
    except BaseException as exc:
        verdict = _fatal_exit_code(exc)
        if verdict is None:
            raise
        code, message = verdict
        log.critical("%s", message)
        return code


__all__ = ["Daemon", "DaemonError", "run_daemon"]
