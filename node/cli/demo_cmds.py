"""``oml-node demo``: play the whole OML story on a local testnet, narrated, books checked.

Narration goes to stdout (stderr with ``--json``, whose stdout is one JSON
object). Exit status 0 only when every check passes; 1 when a check fails
or a step does not happen in time; 130 on Ctrl-C (or SIGTERM). Every
process the demo started is stopped before it exits, in every case.
"""

from __future__ import annotations

import json
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from types import FrameType

import click


def _interrupt(_sig: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM cleans up like Ctrl-C


@click.command("demo")
@click.option("--json", "as_json", is_flag=True,
              help="print one JSON object (steps, claims, balance changes, checks) on stdout")
@click.option("--keep", "keep", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="run in this folder and keep it (models, node homes and logs); "
                   "default: a temporary folder, removed afterwards")
@click.option("--timeout", "timeout_s", type=click.FloatRange(60, 3600), default=900,
              show_default=True, help="seconds the whole story may take")
def demo_cmd(as_json: bool, keep: Path | None, timeout_s: float) -> None:
    """Publish, access, fingerprint, fetch, serve, pay, probe, claim, reveal, rebut, slash,
    payouts: on five local node processes, with a checked table of every balance change."""
    from ..demo import DemoError, DemoSettings, run_demo
    from ..rpc_client import RpcClientError
    from ..testnet import TestnetError

    signal.signal(signal.SIGTERM, _interrupt)
    if keep is not None and keep.exists() and any(keep.iterdir()):
        raise click.ClickException(f"{keep} is not empty; choose a new --keep folder")
    root = keep or Path(tempfile.mkdtemp(prefix="oml-demo-"))
    narrate = sys.stderr if as_json else sys.stdout
    try:
        report = run_demo(root, DemoSettings(timeout_s=timeout_s), narrate)
    except (DemoError, TestnetError, RpcClientError) as exc:
        click.echo(f"demo failed: {exc}\n(logs: {root})", err=True)
        keep = keep or root  # leave the logs for whoever looks into it
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        click.echo("demo interrupted; every process it started is stopped", err=True)
        raise SystemExit(130) from None
    finally:
        if keep is None:
            shutil.rmtree(root, ignore_errors=True)
    if as_json:
        click.echo(json.dumps(report, indent=2, sort_keys=True))
    else:
        click.echo("\n" + report["table"])
        click.echo("\nall checks passed" if report["ok"] else "\nSOME CHECKS FAILED")
    raise SystemExit(0 if report["ok"] else 1)
