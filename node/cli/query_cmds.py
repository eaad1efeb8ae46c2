"""``oml-node query ...``: read chain state through a node's JSON-RPC."""

from __future__ import annotations

import json
from typing import Any

import click

from ..rpc_client import DEFAULT_RPC, RpcClient, RpcClientError

RPC_OPTION = click.option("--rpc", "rpc", default=DEFAULT_RPC, show_default=True,
                          envvar="OML_RPC", help="JSON-RPC URL of the node to ask")


def _hex(_ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    v = value.lower().removeprefix("0x")
    try:
        bytes.fromhex(v)
    except ValueError:
        raise click.BadParameter(f"{param.name} must be hex") from None
    return v


def _model_id_hex(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    """A model id is text, sent as the hex of its UTF-8 bytes (as the OML package uses it)."""
    raw = value.encode("utf-8")
    if not 1 <= len(raw) <= 64:
        raise click.BadParameter(f"model id must be 1-64 bytes of UTF-8 text, got {len(raw)}")
    return raw.hex()


def _call(rpc: str, method: str, params: dict[str, Any]) -> None:
    try:
        with RpcClient(rpc) as client:
            result = client.call(method, params)
    except RpcClientError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(result, indent=2, sort_keys=True))


@click.group("query")
def query_group() -> None:
    """Query chain state from a node (prints JSON)."""


@query_group.command("status")
@RPC_OPTION
def q_status(rpc: str) -> None:
    """Node info, latest block height/hash/app hash, catching_up."""
    _call(rpc, "status", {})


@query_group.command("account")
@click.argument("address", callback=_hex)
@RPC_OPTION
def q_account(address: str, rpc: str) -> None:
    """Balance and next nonce of ADDRESS (hex)."""
    _call(rpc, "account", {"address": address})


@query_group.command("model")
@click.argument("model_id", callback=_model_id_hex)
@RPC_OPTION
def q_model(model_id: str, rpc: str) -> None:
    """A registered model by MODEL_ID (text, as registered)."""
    _call(rpc, "model", {"model_id": model_id})


@query_group.command("host")
@click.argument("model_id", callback=_model_id_hex)
@click.argument("host", callback=_hex)
@RPC_OPTION
def q_host(model_id: str, host: str, rpc: str) -> None:
    """The record of HOST (address hex) for MODEL_ID (text, as registered)."""
    _call(rpc, "host", {"model_id": model_id, "host": host})


@query_group.command("claim")
@click.argument("claim_id", type=click.IntRange(0))
@RPC_OPTION
def q_claim(claim_id: int, rpc: str) -> None:
    """A claim by its numeric id."""
    _call(rpc, "claim", {"claim_id": claim_id})


@query_group.command("params")
@RPC_OPTION
def q_params(rpc: str) -> None:
    """Ledger parameters."""
    _call(rpc, "params", {})


@query_group.command("block")
@click.argument("height", type=click.IntRange(1), required=False)
@RPC_OPTION
def q_block(height: int | None, rpc: str) -> None:
    """The block at HEIGHT (default: latest)."""
    _call(rpc, "block", {"height": height} if height is not None else {})


@query_group.command("tx")
@click.argument("tx_hash", callback=_hex)
@RPC_OPTION
def q_tx(tx_hash: str, rpc: str) -> None:
    """A committed transaction and its result by hash (hex)."""
    _call(rpc, "tx", {"hash": tx_hash})


@query_group.command("vouchers")
@click.option("--model", "model_id", callback=lambda c, p, v: _model_id_hex(c, p, v)
              if v is not None else None, default=None,
              help="only this model (text, as registered)")
@click.option("--host", "host", callback=_hex, default=None, help="only this host (address hex)")
@RPC_OPTION
def q_vouchers(model_id: str | None, host: str | None, rpc: str) -> None:
    """The owner role's vouchers per model and host: latest held, redeemed, unredeemed.

    Asks the owner's own node (``[roles.owner]`` enabled); a host's escrow and
    redeemed totals on chain are in ``query host``.
    """
    params = {k: v for k, v in (("model_id", model_id), ("host", host)) if v is not None}
    _call(rpc, "owner_vouchers", params)


@query_group.command("roles")
@click.option("--role", type=click.Choice(["omlizer", "prover"]), default=None,
              help="only this role (default: both)")
@RPC_OPTION
def q_roles(role: str | None, rpc: str) -> None:
    """Registered OMLizers and provers with their bonds."""
    _call(rpc, "roles", {"role": role} if role else {})


@query_group.command("omlizer-jobs")
@click.option("--state", default=None,
              help="only jobs in this state: queued, running, committed, failed (or a phase)")
@RPC_OPTION
def q_omlizer_jobs(state: str | None, rpc: str) -> None:
    """The node's OMLizer jobs (phase, progress, accuracy, reason of a failure) and reveals."""
    _call(rpc, "omlizer_jobs", {"state": state} if state else {})


@query_group.command("usage")
@RPC_OPTION
def q_usage(rpc: str) -> None:
    """The host gateway's usage per end-user API key: requests, tokens, refused.

    Asks the host's own node (``[roles.host]`` enabled).
    """
    _call(rpc, "gateway_usage", {})


@query_group.command("permissions")
@RPC_OPTION
def q_permissions(rpc: str) -> None:
    """The host gateway's permission strings held, voucher, escrow, funding and rebuttals.

    Asks the host's own node (``[roles.host]`` enabled).
    """
    _call(rpc, "host_permissions", {})


@query_group.command("probes")
@click.option("--after", type=click.IntRange(-1), default=-1, show_default=True,
              help="list probes with a sequence number above this (page with next_after)")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True,
              help="most probes listed")
@RPC_OPTION
def q_probes(after: int, limit: int, rpc: str) -> None:
    """The node's prover: every probe (endpoint, key, output, outcome), its claims, key sets.

    Asks the prover's own node (``[roles.prover]`` enabled).
    """
    _call(rpc, "prover_probes", {"after": after, "limit": limit})
