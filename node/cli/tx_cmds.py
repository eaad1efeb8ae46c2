"""``oml-node tx ...``: build, sign and send ledger transactions.

Every command signs with the home's account key for the home's chain id,
takes the sender's next nonce from the node (RPC ``account``) unless
``--nonce`` is given, sends with ``broadcast_tx_commit`` (waits for the block)
or ``broadcast_tx_sync`` with ``--async``, and prints the JSON result. The
exit status is non-zero if the node rejected the transaction or it failed
in its block, so scripts can rely on it.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from ..config import ConfigError
from ..genesis import Genesis, GenesisError
from ..home import Home, HomeError
from ..keys import KeyFileError
from ..rpc_client import DEFAULT_RPC, RpcClient, RpcClientError, RpcError


def _hex_bytes(size: int | None = None, *, max_size: int | None = None
               ) -> Callable[[click.Context, click.Parameter, str | None], bytes | None]:
    def parse(_ctx: click.Context, param: click.Parameter, value: str | None) -> bytes | None:
        if value is None:
            return None
        try:
            raw = bytes.fromhex(value.lower().removeprefix("0x"))
        except ValueError:
            raise click.BadParameter(f"{param.name} must be hex") from None
        if size is not None and len(raw) != size:
            raise click.BadParameter(f"{param.name} must be {size} bytes ({2 * size} hex digits)")
        if max_size is not None and len(raw) > max_size:
            raise click.BadParameter(f"{param.name} must be at most {max_size} bytes")
        return raw
    return parse


def model_id_bytes(value: str) -> bytes:
    """A model id as the ledger stores it: the UTF-8 bytes of the text, always.

    The OML package puts ``manifest.model_id.encode("utf-8")`` into every
    fingerprint leaf, so the ledger id must be those bytes for reveals to
    open. There is deliberately no hex form: ``0xab`` is the four-byte text
    ``0xab``, exactly as ``oml-node oml fingerprint --model-id 0xab`` takes it.

    Raises:
        click.BadParameter: empty or longer than 64 bytes.
    """
    raw = value.encode("utf-8")
    if not 1 <= len(raw) <= 64:
        raise click.BadParameter(f"model id must be 1-64 bytes of UTF-8 text, got {len(raw)}")
    return raw


def _model_id(_ctx: click.Context, _param: click.Parameter, value: str | None) -> bytes | None:
    """Click callback for ``--model-id``: text, taken as its UTF-8 bytes (see model_id_bytes)."""
    if value is None:
        return None
    return model_id_bytes(value)


def parse_address(value: str, what: str = "address") -> bytes:
    """A 20-byte address from hex (``0x`` optional); BadParameter otherwise."""
    try:
        raw = bytes.fromhex(value.strip().lower().removeprefix("0x"))
    except ValueError:
        raise click.BadParameter(f"{what} {value!r} is not hex") from None
    if len(raw) != 20:
        raise click.BadParameter(f"{what} must be 20 bytes (40 hex digits), got {len(raw)}")
    return raw


def parse_split(value: str) -> tuple[bytes, int]:
    """``ADDRESS:BASIS_POINTS`` -> (address, bp); BadParameter otherwise."""
    addr, sep, bp = value.partition(":")
    if not sep or not bp.strip().isdigit() or not 0 <= int(bp) <= 10000:
        raise click.BadParameter(f"--split {value!r} must be ADDRESS:BASIS_POINTS (0-10000)")
    return parse_address(addr, "--split address"), int(bp)


def tx_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The options every tx command shares."""
    fn = click.option("--home", required=True,
                      type=click.Path(file_okay=False, exists=True, path_type=Path),
                      help="home whose account key signs")(fn)
    fn = click.option("--rpc", default=None, envvar="OML_RPC",
                      help=f"node JSON-RPC URL (default: the home's running node, else "
                           f"its [rpc] laddr, else {DEFAULT_RPC})")(fn)
    fn = click.option("--nonce", type=click.IntRange(0), default=None,
                      help="nonce to use (default: ask the node for the next one)")(fn)
    fn = click.option("--async", "async_", is_flag=True,
                      help="return after the mempool accepts it (broadcast_tx_sync)")(fn)
    return fn


def _rpc_url(home: Home, rpc: str | None) -> str:
    """``--rpc``, else the URL the home's running node reported in ``data/listen.json``
    (the real port when ``[rpc] laddr`` asks for port 0), else ``[rpc] laddr``."""
    from ..listenfile import read_listen_file

    if rpc:
        return rpc
    try:
        config = home.config()
    except (HomeError, ConfigError):
        return DEFAULT_RPC
    running = read_listen_file(home.data_dir(config))
    return running.rpc[0] if running is not None else "http://" + config.rpc.laddr


def account_nonce(client: RpcClient, address: bytes) -> int:
    """The sender's next nonce from RPC ``account`` (0 for an account not yet on chain)."""
    try:
        acct = client.call("account", {"address": address.hex()})
    except RpcError as exc:
        if exc.code == -32001:  # not found: a fresh account
            return 0
        raise
    if not acct:
        return 0
    return int(acct.get("nonce", 0))


def send_body(home_dir: Path, rpc: str | None, nonce: int | None, async_: bool,
              body: Any) -> dict[str, Any]:
    """Sign ``body`` with the home's key and broadcast it; returns the RPC result."""
    from ..ledger import build_tx  # the ledger is imported only by commands that need it

    home = Home(home_dir)
    try:
        config = home.config()
        key = home.account_key(config)
        chain_id = Genesis.load(home.genesis_file(config)).chain_id
    except (HomeError, ConfigError, KeyFileError, GenesisError) as exc:
        raise click.ClickException(str(exc)) from None
    url = _rpc_url(home, rpc)
    with RpcClient(url, timeout=60.0) as client:
        try:
            if nonce is None:
                nonce = account_nonce(client, key.address)
            tx = build_tx(key.key, chain_id, nonce, body)
            method = "broadcast_tx_sync" if async_ else "broadcast_tx_commit"
            return client.call(method, {"tx": tx.hex()})
        except RpcClientError as exc:
            raise click.ClickException(str(exc)) from None


def result_failed(result: dict[str, Any]) -> bool:
    """True if the check or the in-block execution reported a non-zero code."""
    if int(result.get("code", 0) or 0) != 0:
        return True
    for part in ("check_tx", "tx_result"):
        sub = result.get(part)
        if isinstance(sub, dict) and int(sub.get("code", 0) or 0) != 0:
            return True
    return False


def _run(home: Path, rpc: str | None, nonce: int | None, async_: bool, body: Any) -> None:
    result = send_body(home, rpc, nonce, async_, body)
    click.echo(json.dumps(result, indent=2, sort_keys=True))
    if result_failed(result):
        raise SystemExit(1)


@dataclass(frozen=True, slots=True)
class NodeRef:
    """Where a body builder may look things up before signing (home and RPC URL)."""

    home: Path
    rpc: str | None

    def url(self) -> str:
        return _rpc_url(Home(self.home), self.rpc)

    def call(self, method: str, params: dict[str, Any]) -> Any:
        """One JSON-RPC call; a ClickException (exit 1) if the node fails or says no."""
        try:
            with RpcClient(self.url(), timeout=30.0) as client:
                return client.call(method, params)
        except RpcClientError as exc:
            raise click.ClickException(f"{method}: {exc}") from None


def home_signer(home_dir: Path) -> tuple[Any, str]:
    """The home's account key and chain id (for offline signing helpers)."""
    home = Home(home_dir)
    try:
        config = home.config()
        return home.account_key(config), Genesis.load(home.genesis_file(config)).chain_id
    except (HomeError, ConfigError, KeyFileError, GenesisError) as exc:
        raise click.ClickException(str(exc)) from None


def _command(name: str, help_text: str, *, needs_node: bool = False
             ) -> Callable[[Callable[..., Any]], click.Command]:
    """Register ``fn(**opts) -> body`` as ``oml-node tx NAME`` with the shared options.

    With ``needs_node`` the builder also gets ``node=NodeRef(...)`` to read
    chain state (a claim's index, a model's current terms) before signing.
    """
    def wrap(fn: Callable[..., Any]) -> click.Command:
        @functools.wraps(fn)
        def cmd(home: Path, rpc: str | None, nonce: int | None, async_: bool,
                **kwargs: Any) -> None:
            if needs_node:
                kwargs["node"] = NodeRef(home, rpc)
            _run(home, rpc, nonce, async_, fn(**kwargs))
        cmd.__doc__ = help_text
        return tx_group.command(name)(tx_options(cmd))
    return wrap


@click.group("tx")
def tx_group() -> None:
    """Sign a transaction with a home's account key and send it to a node."""


@click.option("--to", required=True, callback=_hex_bytes(20), help="recipient address (hex)")
@click.option("--amount", required=True, type=click.IntRange(0, 2**64 - 1))
@_command("transfer", "Send AMOUNT to address TO.")
def transfer(to: bytes, amount: int) -> Any:
    from ..ledger import TransferBody
    return TransferBody(to=to, amount=amount)


@click.option("--model-id", required=True, callback=_model_id,
              help="model id: text, stored as its UTF-8 bytes (1-64), as in the OML package")
@click.option("--weights-hash", required=True, callback=_hex_bytes(32),
              help="SHA-256 of the weights (hex)")
@click.option("--metadata", default="", help="free-form metadata (UTF-8, e.g. JSON)")
@click.option("--price-per-query", type=click.IntRange(0, 2**64 - 1), default=0)
@click.option("--min-collateral", type=click.IntRange(0, 2**64 - 1), default=0)
@click.option("--omlizer", "omlizers", multiple=True,
              help="authorised OMLizer address (hex, 20 bytes; repeatable)")
@click.option("--split", "splits", multiple=True, help="ADDRESS:BASIS_POINTS payee share")
@click.option("--parent", default=None, callback=_model_id, help="parent model id (text)")
@click.option("--royalty-bp", type=click.IntRange(0, 10000), default=0,
              help="royalty derived models pay to this one (basis points)")
@click.option("--blob-id", default=None, callback=_hex_bytes(32),
              help="storage blob of the weights, encrypted to the OMLizers (hex, 32 bytes; "
                   "default: none)")
@_command("register-model", "Register a model you own.")
def register_model(model_id: bytes, weights_hash: bytes, metadata: str, price_per_query: int,
                   min_collateral: int, omlizers: tuple[str, ...], splits: tuple[str, ...],
                   parent: bytes | None, royalty_bp: int, blob_id: bytes | None) -> Any:
    from ..ledger import RegisterModelBody
    oml = tuple(parse_address(a, "--omlizer") for a in omlizers)
    spl = tuple(parse_split(s) for s in splits)
    return RegisterModelBody(model_id=model_id, weights_hash=weights_hash,
                             metadata=metadata.encode("utf-8"), price_per_query=price_per_query,
                             min_collateral=min_collateral, omlizers=oml, splits=spl,
                             parent=parent or b"", royalty_bp=royalty_bp,
                             blob_id=blob_id or b"")


@click.option("--role", required=True, type=click.Choice(["omlizer", "prover"]))
@click.option("--bond", required=True, type=click.IntRange(0, 2**64 - 1))
@_command("register-role", "Register as an OMLizer or prover with a bond.")
def register_role(role: str, bond: int) -> Any:
    from ..ledger import RegisterRoleBody, Role
    return RegisterRoleBody(role=int(Role[role.upper()]), bond=bond)


@click.option("--model-id", required=True, callback=_model_id)
@click.option("--collateral", required=True, type=click.IntRange(0, 2**64 - 1))
@click.option("--endpoint", default="", help="URL where you will serve the model")
@_command("request-access", "As a host, lock collateral to get a fingerprinted copy.")
def request_access(model_id: bytes, collateral: int, endpoint: str) -> Any:
    from ..ledger import RequestAccessBody
    return RequestAccessBody(model_id=model_id, collateral=collateral, endpoint=endpoint)


@click.option("--model-id", required=True, callback=_model_id)
@click.option("--amount", required=True, type=click.IntRange(0, 2**64 - 1))
@_command("fund-channel", "As a host, add AMOUNT to the fee escrow for a model.")
def fund_channel(model_id: bytes, amount: int) -> Any:
    from ..ledger import FundChannelBody
    return FundChannelBody(model_id=model_id, amount=amount)


@click.option("--model-id", required=True, callback=_model_id)
@_command("begin-withdrawal", "As a host, start unbonding your collateral for a model.")
def begin_withdrawal(model_id: bytes) -> Any:
    from ..ledger import BeginWithdrawalBody
    return BeginWithdrawalBody(model_id=model_id)


@click.option("--model-id", required=True, callback=_model_id)
@_command("complete-withdrawal", "As a host, take back collateral after the unbonding delay.")
def complete_withdrawal(model_id: bytes) -> Any:
    from ..ledger import CompleteWithdrawalBody
    return CompleteWithdrawalBody(model_id=model_id)


# attach the OML tx commands and the prover's two-phase claim to tx_group
from . import tx_claim_cmds, tx_oml_cmds  # noqa: E402,F401,I001

__all__ = ["NodeRef", "account_nonce", "home_signer", "model_id_bytes", "parse_address",
           "parse_split", "result_failed", "send_body", "tx_group"]
