"""``oml-node testnet init`` and ``oml-node testnet start``: a local multi-process testnet."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import click

from ..genesis import CHAIN_ID_RE
from ..testnet import AUTO_PORTS, DEFAULT_BASE_PORT, Testnet, TestnetError, init_testnet
from ..testnet_supervisor import Supervisor


def _chain_id(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not CHAIN_ID_RE.match(value):
        raise click.BadParameter("1-50 characters: letters, digits, '.', '_' or '-'")
    return value


def _base_port(_ctx: click.Context, _param: click.Parameter, value: int) -> int:
    if value != AUTO_PORTS and not 1024 <= value <= 65000:
        raise click.BadParameter("0 (ports chosen by the kernel) or 1024-65000")
    return value


@click.group("testnet")
def testnet_group() -> None:
    """Create and run a local testnet of several nodes on 127.0.0.1."""


@testnet_group.command("init")
@click.option("--validators", "-v", type=click.IntRange(1, 50), default=4, show_default=True,
              help="number of validator nodes")
@click.option("--non-validators", type=click.IntRange(0, 50), default=0, show_default=True,
              help="number of extra full nodes that follow the chain without voting")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="directory to write node0, node1, ... and testnet.json into")
@click.option("--base-port", type=int, callback=_base_port, default=DEFAULT_BASE_PORT,
              show_default=True, help="node i uses base+10i (p2p), +1 (RPC), +2 (metrics); "
              "0: every node binds free ports and reports them in data/listen.json "
              "(only `testnet start` can run such a testnet: it wires the nodes)")
@click.option("--chain-id", callback=_chain_id, help="chain id (default: oml-local-<random>)")
@click.option("--force", is_flag=True, help="overwrite an existing testnet directory")
def testnet_init(validators: int, non_validators: int, out: Path, base_port: int,
                 chain_id: str | None, force: bool) -> None:
    """Write the homes of a local testnet sharing one genesis."""
    try:
        specs = init_testnet(out, validators=validators, non_validators=non_validators,
                             base_port=base_port, chain_id=chain_id, force=force)
    except TestnetError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"wrote {len(specs)} node homes to {out}")
    for s in specs:
        role = "validator" if s.validator else "full node"
        ports = "ports chosen at start" if s.auto_ports else f"rpc {s.rpc_url}  p2p {s.p2p_port}"
        click.echo(f"  {s.name:8} {role:9}  {ports}  address {s.address}")


@testnet_group.command("start")
@click.argument("out", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--timeout", type=float, default=90.0, show_default=True,
              help="seconds to wait for every node to answer RPC health")
def testnet_start(out: Path, timeout: float) -> None:
    """Run every node of the testnet in OUT as its own process until Ctrl-C/SIGTERM.

    Exits 1 if a node fails to start. Afterwards a node that stops does not
    stop the others: one that exits 0 is left stopped, one that crashes is
    restarted with a backoff, one that halts (exit 2) is left for you.
    """
    stopping = False

    def _stop(_sig: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    try:
        net = Testnet(out)
    except TestnetError as exc:
        raise click.ClickException(str(exc)) from None
    old_term = signal.signal(signal.SIGTERM, _stop)
    old_int = signal.signal(signal.SIGINT, _stop)
    code = 0
    try:
        click.echo(f"starting {len(net.specs)} nodes (logs in <node>/node.log) ...")
        try:
            net.start_all(timeout=timeout)
        except TestnetError as exc:
            click.echo(f"error: {exc}", err=True)
            code = 1
        else:
            for s in net.specs:
                click.echo(f"{s.name}: {net.spec(s.name).rpc_url}")
            click.echo("testnet running; press Ctrl-C to stop")
            sys.stdout.flush()
            supervisor = Supervisor(net, say=_say)
            while not stopping:
                supervisor.tick()
                time.sleep(0.2)
    finally:
        click.echo("stopping nodes ...")
        codes = net.stop_all()
        signal.signal(signal.SIGTERM, old_term)
        signal.signal(signal.SIGINT, old_int)
        click.echo("stopped: " + ", ".join(f"{n}={c}" for n, c in codes.items()))
    sys.exit(code)


def _say(line: str) -> None:
    click.echo(line, err=True)
    sys.stderr.flush()
