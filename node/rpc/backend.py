"""The boundary between the RPC server and the node: a Protocol and typed views.

The RPC layer never touches the ledger, block store or network directly. It
calls a :class:`NodeBackend`, which the daemon implements over its parts, and
renders the typed views below into CometBFT-shaped JSON. Keeping the views
typed (rather than passing JSON through) means the wire shape is decided in
one place (``node/rpc/render.py``) and the backend cannot drift from it.

Ledger records (accounts, models, hosts, claims, params) are the exception:
their fields belong to the ledger, so the backend returns the ledger's record
objects and the RPC calls their ``to_json()``.

Queries are plain methods (LMDB reads are fast and safe from the event loop);
only :meth:`NodeBackend.broadcast_tx` is async, because admitting a
transaction may have to wait for the node's input queue. A backend may still
make any query ``async``: the dispatcher awaits whatever is awaitable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

JSON = Any


@runtime_checkable
class JSONRecord(Protocol):
    """A ledger record that renders itself (bytes as hex)."""

    def to_json(self) -> JSON: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeInfo:
    id: str
    """libp2p peer id of this node."""
    moniker: str
    network: str
    """Chain id."""
    listen_addr: str
    """libp2p listen multiaddr."""
    version: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncInfo:
    latest_block_hash: bytes
    latest_app_hash: bytes
    latest_block_height: int
    latest_block_time_ms: int
    earliest_block_height: int
    catching_up: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class ValidatorInfo:
    address: bytes
    pub_key: bytes
    voting_power: int
    proposer_priority: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeStatus:
    node_info: NodeInfo
    sync_info: SyncInfo
    validator_info: ValidatorInfo
    """This node's key; voting_power 0 if it is not a validator."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerView:
    node_id: str
    remote_addr: str
    is_outbound: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class NetInfo:
    listening: bool
    listeners: tuple[str, ...]
    peers: tuple[PeerView, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockView:
    """A committed block as the RPC shows it.

    ``header`` and ``last_commit`` are JSON-ready mappings built by the
    daemon from the consensus types (bytes as hex); ``hash``, ``height`` and
    ``time_ms`` are repeated as typed fields because the RPC needs them for
    block metas, events and ``broadcast_tx_commit``.
    """

    hash: bytes
    height: int
    time_ms: int
    header: Mapping[str, JSON]
    txs: tuple[bytes, ...]
    last_commit: Mapping[str, JSON] | None = None
    size_bytes: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class TxResult:
    """The outcome of executing a transaction in a block (CometBFT's ExecTxResult)."""

    code: int
    log: str = ""
    codespace: str = ""
    events: tuple[Mapping[str, JSON], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class TxView:
    """A committed transaction with its position and result."""

    hash: bytes
    height: int
    index: int
    tx: bytes
    result: TxResult


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckResult:
    """The outcome of admitting a transaction to the mempool (CometBFT's CheckTx).

    ``code`` 0 means accepted; anything else is a rejection explained by
    ``log`` (``codespace`` says whose code it is: ``mempool`` or ``ledger``).
    """

    code: int
    hash: bytes
    log: str = ""
    codespace: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ValidatorSetView:
    block_height: int
    validators: tuple[ValidatorInfo, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class NewBlockEvent:
    """Published on the :class:`~node.rpc.events.EventBus` after each commit.

    ``txs`` lists every transaction of ``block`` with its result, in block
    order; ``Tx`` events and ``broadcast_tx_commit`` are derived from it.
    """

    block: BlockView
    txs: tuple[TxView, ...] = field(default=())


@dataclass(frozen=True, slots=True, kw_only=True)
class MempoolView:
    """Pending transactions: the pool's totals and its oldest ``txs`` (arrival order)."""

    total: int
    total_bytes: int
    txs: tuple[bytes, ...] = ()


class MempoolBackend(Protocol):
    """Optional extras of a backend. Without them the matching methods answer -32004."""

    def unconfirmed_txs(self, limit: int) -> MempoolView:
        """Totals, and at most ``limit`` of the oldest pending transactions
        (``num_unconfirmed_txs``, ``unconfirmed_txs``)."""
        ...

    def genesis(self) -> JSONRecord:
        """The genesis document (``node.genesis.Genesis`` has ``to_json``) (``genesis``)."""
        ...


class PeerDialer(Protocol):
    """Optional: dial peers at run time (``dial_peers``). Without it that method answers
    -32004."""

    async def dial_peers(self, addrs: list[str], persistent: bool) -> Mapping[str, bool]:
        """Dial ``addrs``; with ``persistent`` keep them connected. Peer id -> connected.
        BadArgument for a malformed address (then nothing was dialled)."""
        ...


class NodeBackend(Protocol):
    """What the RPC server needs from the node. The daemon implements it.

    Errors: raise the types in :mod:`node.rpc.errors` (``NotFound``,
    ``BadArgument``, ``TxRejected``, ``Timeout``, ``NodeUnavailable``,
    ``Overloaded``); the server maps them to JSON-RPC codes. Anything else is
    treated as a bug (logged, -32603).
    """

    def status(self) -> NodeStatus: ...

    def net_info(self) -> NetInfo: ...

    def block(self, height: int | None) -> BlockView:
        """The block at ``height`` (latest if None); NotFound if absent."""
        ...

    def tx(self, tx_hash: bytes) -> TxView:
        """A committed transaction by hash; NotFound if unknown."""
        ...

    def validators(self, height: int | None) -> ValidatorSetView:
        """The validator set that signs block ``height`` (latest if None)."""
        ...

    async def broadcast_tx(self, tx: bytes) -> CheckResult:
        """Check ``tx`` and add it to the mempool (and gossip it) if it passes."""
        ...

    def account(self, address: bytes) -> JSONRecord | None: ...

    def model(self, model_id: bytes) -> JSONRecord | None: ...

    def host(self, model_id: bytes, host: bytes) -> JSONRecord | None: ...

    def claim(self, claim_id: int) -> JSONRecord | None: ...

    def params(self) -> JSONRecord: ...
