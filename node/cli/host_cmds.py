"""``oml-node host serve|url|engine``: run and find the host gateway.

* ``serve``: run the node with its ``[roles.host]`` gateway (``start`` does the
  same; ``serve`` refuses a home whose config does not enable the role, and
  prints the gateway URL once it listens).
* ``url``: the running gateway's OpenAI base URL, from the node's listen.json.
* ``engine``: a model folder served bare over the OpenAI API -- no chain, no
  keys, no permissions -- as the upstream of a gateway in proxy mode (or to
  compare a model with its gateway, as ``bench/gateway.py`` does).
"""

from __future__ import annotations

import functools
import sys
import time
from pathlib import Path

import click

from ..config import ConfigError
from .home_cmds import HOME_OPTION


@click.group("host")
def host_group() -> None:
    """Serve a model behind permission strings (the host gateway)."""


def _data_dir(home: Path) -> Path:
    from ..home import Home, HomeError

    try:
        h = Home(home)
        return h.data_dir(h.config())
    except (HomeError, ConfigError) as exc:
        raise click.ClickException(str(exc)) from None


def _wait_url(data_dir: Path, timeout: float, pid: int | None = None) -> str | None:
    from ..listenfile import read_listen_file

    deadline = time.monotonic() + timeout
    while True:
        info = read_listen_file(data_dir, pid=pid)
        if info is not None and info.gateway:
            return info.gateway[0]
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.2)


@host_group.command("url")
@HOME_OPTION
@click.option("--wait", type=click.FloatRange(0, 3600), default=0.0, show_default=True,
              help="seconds to wait for the gateway to listen")
def url_cmd(home: Path, wait: float) -> None:
    """Print the running gateway's OpenAI base URL (http://HOST:PORT/v1)."""
    url = _wait_url(_data_dir(home), wait)
    if url is None:
        raise click.ClickException("no gateway is listening for this home (is the node "
                                   "running with [roles.host] enabled = true?)")
    click.echo(url)


@host_group.command("serve")
@HOME_OPTION
def serve_cmd(home: Path) -> None:
    """Run the node with its host gateway; prints the gateway URL once it listens.

    The gateway is configured in ``[roles.host]`` of the home's config.toml
    (docs/gateway.md). Stops cleanly on SIGINT or SIGTERM.
    """
    import os
    import threading

    from ..home import Home, HomeError

    try:
        cfg = Home(home).config()
    except (HomeError, ConfigError) as exc:
        raise click.ClickException(str(exc)) from None
    if not cfg.roles.host.enabled:
        raise click.ClickException("[roles.host] enabled = false in this home's config.toml; "
                                   "set it, model_id and model_dir (or upstream_url)")
    data_dir = _data_dir(home)

    def announce() -> None:
        url = _wait_url(data_dir, 24 * 3600, pid=os.getpid())
        if url is not None:
            click.echo(f"gateway: {url}")
            sys.stdout.flush()

    threading.Thread(target=announce, daemon=True).start()
    from .node_cmds import start_cmd

    start_cmd.callback(home)  # type: ignore[misc]


@host_group.command("engine")
@click.option("--model-dir", required=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="a transformers model folder (e.g. from oml-node model fetch)")
@click.option("--name", default=None, help="model name clients use (default: the folder name)")
@click.option("--laddr", default="127.0.0.1:0", show_default=True,
              help="host:port to listen on (port 0: any free port)")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda")
@click.option("--max-new-tokens", type=click.IntRange(1, 1 << 20), default=256,
              show_default=True)
@click.option("--max-prompt-tokens", type=click.IntRange(1, 1 << 24), default=2048,
              show_default=True)
def engine_cmd(model_dir: Path, name: str | None, laddr: str, device: str,
               max_new_tokens: int, max_prompt_tokens: int) -> None:
    """Serve MODEL_DIR over the OpenAI API with no permission layer (an upstream).

    Prints the base URL (http://HOST:PORT/v1) on stdout once it listens. For a
    gateway's upstream_url, or to measure what the gateway adds.
    """
    import trio

    from oml.modelio import DeviceError, ModelDirError

    from ..roles.host.apikeys import KeyRing, UsageBook
    from ..roles.host.app import Gateway, Limits
    from ..roles.host.engine import TransformersEngine
    from ..rpc.server import serve_app

    async def run() -> None:
        engine = await TransformersEngine.load(model_dir, device=device,
                                               max_prompt_tokens=max_prompt_tokens)
        gateway = Gateway(engine=engine, model_name=name or model_dir.name, permits=None,
                          keys=KeyRing([], require=False), usage=UsageBook(None),
                          limits=Limits(max_new_tokens=max_new_tokens))
        async with trio.open_nursery() as nursery:
            urls = await nursery.start(functools.partial(serve_app, gateway.app(), laddr))
            click.echo(urls[0].rstrip("/") + "/v1")
            sys.stdout.flush()

    try:
        trio.run(run)
    except (ModelDirError, DeviceError) as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        pass
