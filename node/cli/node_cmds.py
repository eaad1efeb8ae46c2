"""``oml-node start``: run the node daemon in the foreground."""

from __future__ import annotations

from pathlib import Path

import click

from ..config import ConfigError
from ..genesis import GenesisError
from ..home import HomeError
from ..keys import KeyFileError
from .home_cmds import HOME_OPTION


@click.command("start")
@HOME_OPTION
def start_cmd(home: Path) -> None:
    """Run the node: ledger, consensus, libp2p, JSON-RPC and metrics.

    Stops cleanly on SIGINT (Ctrl-C) or SIGTERM.
    """
    from ..daemon import DaemonError, run_daemon  # heavy imports (libp2p) only here

    try:
        code = run_daemon(home)
    except ConfigError as exc:
        # One line naming the setting (e.g. "config error: [p2p] listen_addr: ..."),
        # not a traceback: the operator has a file to fix, not a bug to report.
        click.echo(f"config error: {exc}", err=True)
        raise SystemExit(1) from None
    except (HomeError, KeyFileError, GenesisError, DaemonError) as exc:
        raise click.ClickException(str(exc)) from None
    raise SystemExit(code)
