"""The demo's cast on disk and in processes: the models, the testnet homes, the pirate's server.

Who is who (every node is its own OS process, every server binds port 0):

=========  ========================================================
node0      the only validator; the child model's owner ([roles.owner])
node1      the OMLizer ([roles.omlizer], a short recipe)
node2      the honest host: its gateway ([roles.host]) serves its copy
node3      the cheater: fetches its copy legitimately, then serves it
           with ``oml-node host engine`` (no chain, no permissions)
node4      the prover ([roles.prover]), started once the pirate's
           address is known (its config names it, like a tip-off)
=========  ========================================================

Every node runs ``[roles.storage]``. Three more accounts have no node: the
parent model's owner (funded at genesis, it registers the parent) and two
contributors of the child, who start at zero and only receive.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from consensus.crypto import PrivateKey
from node.config import load_config, render_config, with_changes
from node.home import Home
from node.testnet import AUTO_PORTS, NodeSpec, init_testnet

from .settings import CONSENSUS, DemoSettings

REPO = Path(__file__).resolve().parents[2]
NODES = {"owner": "node0", "omlizer": "node1", "host": "node2", "cheater": "node3",
         "prover": "node4"}
CHAIN_ID = "oml-demo"


class DemoError(RuntimeError):
    """A step of the story did not happen (in time), or a check failed to run."""


@dataclass(frozen=True)
class Outsiders:
    """Accounts with no node: the parent model's owner and the child's two contributors."""

    parent_owner: PrivateKey
    contributor_a: PrivateKey
    contributor_b: PrivateKey

    @classmethod
    def generate(cls) -> Outsiders:
        return cls(*(PrivateKey(os.urandom(32)) for _ in range(3)))


def build_models(root: Path) -> tuple[Path, Path]:
    """A tiny parent model and a child derived from it (a few more training steps on
    other text), as two transformers folders. Seconds on a CPU."""
    from transformers.utils import logging as hf_logging

    from oml.modelio import load_model, save_model
    from oml.testing import make_tiny_model_dir, pretrain, tiny_corpus

    hf_logging.disable_progress_bar()  # the narration is the demo's output
    parent = make_tiny_model_dir(root / "parent", seed=0, pretrain_steps=20)
    model, tok = load_model(parent, device="cpu")
    pretrain(model, tok, tiny_corpus(200, seed=1), steps=5, seed=1)
    child = root / "child"
    save_model(model, tok, child)
    return parent, child


def write_testnet(out: Path, settings: DemoSettings, outsiders: Outsiders) -> list[NodeSpec]:
    """Five homes sharing one genesis (the demo's ledger parameters), with their roles."""
    specs = init_testnet(out, validators=1, non_validators=4, base_port=AUTO_PORTS,
                         chain_id=CHAIN_ID, consensus=CONSENSUS, force=True,
                         fund=(outsiders.parent_owner.address.hex(),),
                         params=settings.chain_params)
    set_roles(out / NODES["owner"], owner=settings.owner_config())
    set_roles(out / NODES["omlizer"], omlizer={"enabled": True, **settings.omlizer})
    return specs


def set_roles(home_dir: Path, **roles: dict[str, Any]) -> None:
    """Rewrite a home's config with ``[roles.NAME]`` tables changed."""
    home = Home(home_dir)
    config = with_changes(load_config(home.config_file), roles=roles)
    home.config_file.write_text(render_config(config), "utf-8")


def account_key(home_dir: Path) -> PrivateKey:
    return Home(home_dir).account_key().key


def cli(*args: str, timeout: float) -> str:
    """``oml-node ARGS`` as its own process (what an operator types); stdout, or raise."""
    try:
        proc = subprocess.run([sys.executable, "-m", "node", *args], capture_output=True,
                              text=True, timeout=timeout, cwd=REPO, stdin=subprocess.DEVNULL,
                              check=False)
    except subprocess.TimeoutExpired:
        raise DemoError(f"oml-node {' '.join(args[:2])} did not finish in {timeout:.0f}s") \
            from None
    if proc.returncode != 0:
        raise DemoError(f"oml-node {' '.join(args[:2])} failed ({proc.returncode}):\n"
                        f"{proc.stderr.strip()[-2000:]}")
    return proc.stdout


class Pirate:
    """The cheater's server: ``oml-node host engine`` on its fetched copy, outside any gateway."""

    def __init__(self, model_dir: Path, name: str, log_path: Path) -> None:
        self._log: IO[str] = open(log_path, "w", encoding="utf-8")  # noqa: SIM115 - stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "node", "host", "engine", "--model-dir", str(model_dir),
             "--name", name, "--device", "cpu", "--max-new-tokens", "16"],
            stdout=subprocess.PIPE, stderr=self._log, stdin=subprocess.DEVNULL, text=True,
            cwd=REPO, start_new_session=True,
            env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"})
        self.url = ""

    def wait_url(self, timeout: float) -> str:
        """The base URL the engine prints once it listens.

        Raises:
            DemoError: it exited or printed nothing in time.
        """
        lines: queue.Queue[str] = queue.Queue()
        stdout = self.proc.stdout
        assert stdout is not None
        threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
        try:
            line = lines.get(timeout=timeout).strip()
        except queue.Empty:
            line = ""
        if not line.startswith("http"):
            raise DemoError(f"the pirate's engine did not start (exit {self.proc.poll()}); "
                            f"see {self._log.name}")
        self.url = line
        return line

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._log.close()


__all__ = ["CHAIN_ID", "NODES", "DemoError", "Outsiders", "Pirate", "account_key",
           "build_models", "cli", "set_roles", "write_testnet"]
