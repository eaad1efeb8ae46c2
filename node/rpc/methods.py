"""The method table: name -> handler, params, result schema, summary.

This one table is what the dispatcher looks methods up in AND what
``rpc.discover`` describes, so the published description cannot list a
method that does not exist or miss one that does. Handlers are small: parse
nothing (the dispatcher already bound and parsed the params), call the
backend, render.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import trio

from node.config import RPCSection

from . import render as R
from .backend import JSON, NodeBackend
from .errors import (
    NODE_UNAVAILABLE,
    NOT_FOUND,
    OVERLOADED,
    TIMEOUT,
    TX_REJECTED,
    BadArgument,
    MethodNotFound,
    NodeUnavailable,
    NotFound,
    Timeout,
)
from .events import EventBus
from .params import Boolean, HexBytes, Integer, Param, Text, TextList

#: Most block metas one ``blockchain`` call returns (CometBFT's limit too).
MAX_BLOCKCHAIN_RANGE = 20
MAX_TX_HEX_BYTES = 1 << 20


@dataclass
class Context:
    """What handlers need: the backend, the event bus, the RPC config and the table itself."""

    backend: NodeBackend
    events: EventBus
    config: RPCSection
    methods: Mapping[str, Method] = field(default_factory=dict)
    server_urls: list[str] = field(default_factory=list)


Handler = Callable[..., Awaitable[JSON]]


@dataclass(frozen=True)
class Method:
    name: str
    handler: Handler
    params: tuple[Param, ...]
    result: dict[str, Any]
    summary: str
    errors: tuple[int, ...] = ()
    websocket_only: bool = False


async def _call(fn: Callable[..., Any], *args: Any) -> Any:
    """Call a backend method that may be sync or async."""
    out = fn(*args)
    if inspect.isawaitable(out):
        out = await out
    return out


def _found(record: Any, what: str) -> Any:
    if record is None:
        raise NotFound(f"{what} not found")
    return R.render_record(record)


# --- handlers ----------------------------------------------------------------

async def _health(ctx: Context) -> JSON:
    return {}


async def _status(ctx: Context) -> JSON:
    return R.render_status(await _call(ctx.backend.status))


async def _net_info(ctx: Context) -> JSON:
    return R.render_net_info(await _call(ctx.backend.net_info))


async def _block(ctx: Context, height: int | None = None) -> JSON:
    return R.render_block(await _call(ctx.backend.block, height))


async def _blockchain(ctx: Context, minHeight: int | None = None,
                      maxHeight: int | None = None) -> JSON:
    if minHeight is not None and maxHeight is not None and minHeight > maxHeight:
        raise BadArgument(f"minHeight {minHeight} is greater than maxHeight {maxHeight}")
    status = await _call(ctx.backend.status)
    last = status.sync_info.latest_block_height
    earliest = max(1, status.sync_info.earliest_block_height)
    hi = last if maxHeight is None else min(maxHeight, last)
    lo = earliest if minHeight is None else max(minHeight, earliest)
    lo = max(lo, hi - MAX_BLOCKCHAIN_RANGE + 1)
    metas = []
    for h in range(hi, lo - 1, -1):  # newest first, like CometBFT
        metas.append(R.render_block_meta(await _call(ctx.backend.block, h)))
    return {"last_height": last, "block_metas": metas}


async def _tx(ctx: Context, hash: bytes) -> JSON:
    return R.render_tx(await _call(ctx.backend.tx, hash))


async def _validators(ctx: Context, height: int | None = None) -> JSON:
    return R.render_validators(await _call(ctx.backend.validators, height))


async def _broadcast_tx_sync(ctx: Context, tx: bytes) -> JSON:
    return R.render_check(await _call(ctx.backend.broadcast_tx, tx))


async def _broadcast_tx_commit(ctx: Context, tx: bytes) -> JSON:
    """Broadcast, then wait for the tx's block through a hash-keyed waiter on the bus.

    No race: the waiter is registered (synchronously) before the backend is
    asked whether the tx is already committed (it may have been, while
    broadcast_tx ran), so a commit at any point after the broadcast is seen
    either by the lookup or by the waiter.
    """
    timeout_s = ctx.config.timeout_broadcast_tx_commit_ms / 1000
    check = await _call(ctx.backend.broadcast_tx, tx)
    out: dict[str, Any] = {"check_tx": R.render_check(check), "tx_result": None,
                           "hash": check.hash.hex(), "height": 0}
    if check.code != 0:
        return out
    with ctx.events.watch_tx(check.hash) as waiter:
        try:
            found = await _call(ctx.backend.tx, check.hash)
        except NotFound:
            with trio.move_on_after(timeout_s):
                await waiter.wait()
            if waiter.tx is None:
                raise Timeout(f"timed out after {timeout_s:g}s waiting for tx "
                              f"{check.hash.hex()} to be committed; it may still be included "
                              "later") from None
            found = waiter.tx
    out["tx_result"] = R.render_tx_result(found.result)
    out["height"] = found.height
    return out


#: Default and largest ``limit`` of ``unconfirmed_txs`` (CometBFT: 30 and 100).
UNCONFIRMED_DEFAULT = 30
UNCONFIRMED_MAX = 100


async def _mempool_view(ctx: Context, limit: int) -> Any:
    fn = getattr(ctx.backend, "unconfirmed_txs", None)
    if fn is None:
        raise NodeUnavailable("this node does not expose its mempool")
    return await _call(fn, limit)


async def _num_unconfirmed_txs(ctx: Context) -> JSON:
    return R.render_unconfirmed(await _mempool_view(ctx, 0), with_txs=False)


async def _unconfirmed_txs(ctx: Context, limit: int = UNCONFIRMED_DEFAULT) -> JSON:
    return R.render_unconfirmed(await _mempool_view(ctx, limit), with_txs=True)


async def _genesis(ctx: Context) -> JSON:
    fn = getattr(ctx.backend, "genesis", None)
    if fn is None:
        raise NodeUnavailable("this node does not serve its genesis document")
    return R.render_record(await _call(fn))


async def _account(ctx: Context, address: bytes) -> JSON:
    return _found(await _call(ctx.backend.account, address), f"account {address.hex()}")


async def _model(ctx: Context, model_id: bytes) -> JSON:
    return _found(await _call(ctx.backend.model, model_id),
                  f"model {R.describe_model_id(model_id)}")


async def _host(ctx: Context, model_id: bytes, host: bytes) -> JSON:
    return _found(await _call(ctx.backend.host, model_id, host),
                  f"host {host.hex()} of model {R.describe_model_id(model_id)}")


async def _claim(ctx: Context, claim_id: int) -> JSON:
    return _found(await _call(ctx.backend.claim, claim_id), f"claim {claim_id}")


async def _params(ctx: Context) -> JSON:
    return R.render_record(await _call(ctx.backend.params))


async def _supply(ctx: Context) -> JSON:
    """Where the genesis supply is now; a full scan of the committed state (audits, tests)."""
    fn = getattr(ctx.backend, "supply", None)
    if fn is None:
        raise NodeUnavailable("this node does not expose its supply breakdown")
    return await _call(fn)


ROLE_NAMES = {"omlizer": 1, "prover": 2}


async def _roles(ctx: Context, role: str | None = None) -> JSON:
    fn = getattr(ctx.backend, "roles", None)
    if fn is None:
        raise NodeUnavailable("this node does not expose role registrations")
    if role is not None and role not in ROLE_NAMES:
        raise BadArgument(f"role must be one of {sorted(ROLE_NAMES)}, got {role!r}")
    records = await _call(fn, ROLE_NAMES[role] if role else None)
    names = {v: k for k, v in ROLE_NAMES.items()}
    out: dict[str, list[JSON]] = {"omlizers": [], "provers": []}
    for rec in records:
        item = R.render_record(rec)
        item["role"] = names.get(int(item["role"]), str(item["role"]))
        out.setdefault(item["role"] + "s", []).append(item)
    return out


#: Hosts an RPC server may listen on and still serve ``dial_peers`` (local callers only).
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
MAX_DIAL_PEERS = 64


def _serves_loopback_only(laddr: str) -> bool:
    return laddr.rsplit(":", 1)[0] in LOOPBACK_HOSTS


async def _dial_peers(ctx: Context, peers: list[str], persistent: bool = False) -> JSON:
    """Like CometBFT's unsafe ``dial_peers``: only served on a loopback listener, since it
    makes the node dial (and with ``persistent``, keep dialling) any address it is given."""
    if not _serves_loopback_only(ctx.config.laddr):
        raise MethodNotFound("dial_peers is served only when rpc.laddr is a loopback address")
    fn = getattr(ctx.backend, "dial_peers", None)
    if fn is None:
        raise NodeUnavailable("this node cannot dial peers")
    connected = await _call(fn, peers, persistent)
    return {"persistent": persistent,
            "peers": [{"id": peer, "connected": ok} for peer, ok in connected.items()]}


async def _discover(ctx: Context) -> JSON:
    from .openrpc import openrpc_document  # late: openrpc imports this module

    return openrpc_document(ctx.methods, servers=ctx.server_urls)


async def _websocket_only(ctx: Context, **_: Any) -> JSON:
    raise MethodNotFound("this method is only available over the websocket at /websocket")


# --- the table -----------------------------------------------------------------

HEIGHT = Integer(1, 2**63 - 1)
ADDRESS = HexBytes(20, 20)
HASH = HexBytes(32, 32)
MODEL_ID = HexBytes(1, 64)
TX = HexBytes(1, MAX_TX_HEX_BYTES)
QUERY_PARAM = Param("query", Text(512),
                    "event query, e.g. tm.event='NewBlock' or tm.event='Tx' AND tx.hash='AB..'")

RECORD = R.ANY_OBJECT


def build_methods(extra: Sequence[Method] = ()) -> dict[str, Method]:
    """A fresh method table (a dict, name -> :class:`Method`).

    ``extra``: methods the node's role services add (``blob_status``, ...).

    Raises:
        ValueError: an extra method reuses a name already in the table.
    """
    table = [
        Method("health", _health, (), R.obj({}), "Empty result while the node answers RPC."),
        Method("status", _status, (), R.STATUS_SCHEMA,
               "Node identity, latest block (height, hash, app hash, time), catching_up, "
               "and this node's validator key and power.", (NODE_UNAVAILABLE,)),
        Method("net_info", _net_info, (), R.NET_INFO_SCHEMA,
               "libp2p listen addresses and connected peers."),
        Method("block", _block,
               (Param("height", HEIGHT, "block height; latest if omitted", False),),
               R.BLOCK_SCHEMA, "A committed block with its header, txs and last commit.",
               (NOT_FOUND,)),
        Method("blockchain", _blockchain,
               (Param("minHeight", HEIGHT, "lowest height (default maxHeight-19)", False),
                Param("maxHeight", HEIGHT, "highest height (default latest)", False)),
               R.BLOCKCHAIN_SCHEMA,
               f"Block metas in [minHeight, maxHeight], newest first, at most "
               f"{MAX_BLOCKCHAIN_RANGE} (the range is cut from the top).", (NOT_FOUND,)),
        Method("tx", _tx, (Param("hash", HASH, "SHA-256 of the transaction bytes"),),
               R.TX_SCHEMA, "A committed transaction with its height, index and result.",
               (NOT_FOUND,)),
        Method("validators", _validators,
               (Param("height", HEIGHT, "block height; latest if omitted", False),),
               R.VALIDATORS_SCHEMA, "The validator set with voting powers.", (NOT_FOUND,)),
        Method("broadcast_tx_sync", _broadcast_tx_sync,
               (Param("tx", TX, "signed transaction bytes"),), R.CHECK_SCHEMA,
               "Check the tx and add it to the mempool; returns the check result without "
               "waiting for a block (code 0 = accepted).",
               (TX_REJECTED, NODE_UNAVAILABLE, OVERLOADED)),
        Method("broadcast_tx_commit", _broadcast_tx_commit,
               (Param("tx", TX, "signed transaction bytes"),), R.BROADCAST_COMMIT_SCHEMA,
               "Check the tx, add it to the mempool and wait until it is committed "
               "(up to rpc.timeout_broadcast_tx_commit_ms). If the check fails, returns at "
               "once with check_tx.code != 0, tx_result null and height 0.",
               (TX_REJECTED, TIMEOUT, NODE_UNAVAILABLE, OVERLOADED)),
        Method("dial_peers", _dial_peers,
               (Param("peers", TextList(MAX_DIAL_PEERS, 512),
                      "libp2p addresses /ip4/H/tcp/P/p2p/PEER_ID"),
                Param("persistent", Boolean(), "keep them connected from now on (redial); "
                      "replaces the address known for the same peer id; default false",
                      False)),
               R.obj({"persistent": R.BOOL, "peers": R.array(R.obj({"id": R.STR,
                                                                    "connected": R.BOOL}))}),
               "Dial peers now (waits at most p2p dial timeout); served only on a loopback "
               "RPC listener. Our own id is left out of the answer.",
               (NODE_UNAVAILABLE,)),
        Method("genesis", _genesis, (), {"type": "object", "description":
                                         "genesis.json: chain_id, genesis_time_ms, "
                                         "validators, app_state"},
               "The genesis document this node started from.", (NODE_UNAVAILABLE,)),
        Method("num_unconfirmed_txs", _num_unconfirmed_txs, (), R.NUM_UNCONFIRMED_SCHEMA,
               "How many transactions (and bytes) wait in the mempool.", (NODE_UNAVAILABLE,)),
        Method("unconfirmed_txs", _unconfirmed_txs,
               (Param("limit", Integer(0, UNCONFIRMED_MAX),
                      f"most txs to list (default {UNCONFIRMED_DEFAULT})", False),),
               R.UNCONFIRMED_SCHEMA,
               "The oldest pending transactions in arrival order, with the mempool totals.",
               (NODE_UNAVAILABLE,)),
        Method("account", _account, (Param("address", ADDRESS, "account address (20 bytes)"),),
               RECORD, "An account record (balance, nonce, ...).", (NOT_FOUND,)),
        Method("model", _model, (Param("model_id", MODEL_ID, "model id"),), RECORD,
               "A registered model.", (NOT_FOUND,)),
        Method("host", _host, (Param("model_id", MODEL_ID, "model id"),
                               Param("host", ADDRESS, "host address (20 bytes)")), RECORD,
               "A host's record for a model (collateral, status, commitment, escrow).",
               (NOT_FOUND,)),
        Method("claim", _claim, (Param("claim_id", Integer(0, 2**64 - 1), "claim id"),),
               RECORD, "A prover's claim and its state.", (NOT_FOUND,)),
        Method("params", _params, (), RECORD, "The ledger parameters."),
        Method("supply", _supply, (), R.obj({
            k: R.INT for k in ("height", "balances", "collateral", "escrow", "role_bonds",
                               "claim_bonds", "burned", "total", "genesis_supply")}
            | {"balanced": {"type": "boolean"}}),
               "Where every unit of the genesis supply is now (balances, collateral, escrow, "
               "role and claim bonds, burned) at the latest committed height; `balanced` is "
               "whether they sum to the genesis supply. Scans the whole state.",
               (NODE_UNAVAILABLE,)),
        Method("roles", _roles,
               (Param("role", Text(16), "omlizer or prover; both if omitted", False),),
               R.obj({"omlizers": R.array(R.ANY_OBJECT), "provers": R.array(R.ANY_OBJECT)}),
               "Registered OMLizers and provers with their bonds (and, for OMLizers, how "
               "many hosts they committed that are not withdrawn).",
               (NODE_UNAVAILABLE,)),
        Method("rpc.discover", _discover, (), {"type": "object", "description":
                                              "OpenRPC 1.2 document"},
               "This API described as an OpenRPC 1.2 document."),
        Method("subscribe", _websocket_only, (QUERY_PARAM,), R.obj({}),
               "Websocket only: push events matching the query to this connection.",
               (OVERLOADED,), websocket_only=True),
        Method("unsubscribe", _websocket_only, (QUERY_PARAM,), R.obj({}),
               "Websocket only: stop a subscription made with the same query.",
               (NOT_FOUND,), websocket_only=True),
        Method("unsubscribe_all", _websocket_only, (), R.obj({}),
               "Websocket only: stop every subscription of this connection.",
               websocket_only=True),
    ]
    methods = {m.name: m for m in table}
    for method in extra:
        if method.name in methods:
            raise ValueError(f"RPC method {method.name!r} is defined twice")
        methods[method.name] = method
    return methods
