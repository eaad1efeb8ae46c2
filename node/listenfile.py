"""``DATA_DIR/listen.json``: the addresses a running node actually bound.

A node configured with port 0 (``listen_addr = "/ip4/127.0.0.1/tcp/0"``,
``laddr = "127.0.0.1:0"``) gets its ports from the kernel, so nobody can know
them in advance; a port probed free and bound later can be taken in between
(the tests' old "Address already in use" flake). Instead the daemon writes
this file once its libp2p host, RPC server and metrics server listen, and
whoever started it (``node.testnet.Testnet``, tests, benches) reads it.

The file is replaced atomically (write a temporary file, then rename), so a
reader sees the old file, no file or the whole new one. It carries the
writer's pid: a file left behind by a killed process is recognisable as
stale even before the next start removes it.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LISTEN_FILE = "listen.json"


@dataclass(frozen=True, slots=True, kw_only=True)
class ListenInfo:
    """Where one node process can be reached."""

    pid: int
    """The node process that bound these addresses."""
    peer_id: str
    p2p: tuple[str, ...]
    """libp2p multiaddrs, each ending in ``/p2p/<peer_id>``."""
    rpc: tuple[str, ...]
    """JSON-RPC base URLs (``http://127.0.0.1:PORT``)."""
    metrics: tuple[str, ...] = ()
    """Prometheus endpoint base URLs; empty when metrics are disabled."""
    gateway: tuple[str, ...] = ()
    """The host gateway's OpenAI API base URLs (``http://127.0.0.1:PORT/v1``), once it
    serves; empty without ``[roles.host]``. Added by the role after the daemon wrote
    the rest (:func:`add_listen_urls`)."""

    def to_json(self) -> dict[str, Any]:
        return {"pid": self.pid, "peer_id": self.peer_id, "p2p": list(self.p2p),
                "rpc": list(self.rpc), "metrics": list(self.metrics),
                "gateway": list(self.gateway)}

    @classmethod
    def from_json(cls, data: Any) -> ListenInfo:
        """Raises ValueError when ``data`` does not have the shape :meth:`to_json` writes."""
        try:
            info = cls(pid=int(data["pid"]), peer_id=str(data["peer_id"]),
                       p2p=tuple(str(a) for a in data["p2p"]),
                       rpc=tuple(str(u) for u in data["rpc"]),
                       metrics=tuple(str(u) for u in data.get("metrics", ())),
                       gateway=tuple(str(u) for u in data.get("gateway", ())))
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a listen file: {exc!r}") from None
        if not info.p2p or not info.rpc:
            raise ValueError("listen file lists no p2p address or no RPC URL")
        return info


def write_listen_file(data_dir: Path, info: ListenInfo) -> Path:
    """Atomically (re)write ``data_dir/listen.json``; returns its path."""
    path = data_dir / LISTEN_FILE
    tmp = path.with_name(f".{LISTEN_FILE}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(info.to_json(), indent=2) + "\n", "utf-8")
    os.replace(tmp, path)
    return path


def read_listen_file(data_dir: Path, *, pid: int | None = None) -> ListenInfo | None:
    """The listen file in ``data_dir``, or None if absent, unreadable or (given ``pid``)
    written by another process."""
    try:
        info = ListenInfo.from_json(json.loads((data_dir / LISTEN_FILE).read_text("utf-8")))
    except (OSError, ValueError):
        return None
    if pid is not None and info.pid != pid:
        return None
    return info


def add_listen_urls(data_dir: Path, *, gateway: tuple[str, ...]) -> bool:
    """Add a role's URLs to this process's listen file; False if there is none yet.

    Roles start after the daemon wrote the file, in the same trio thread, so
    this read-modify-write does not race the daemon's write.
    """
    info = read_listen_file(data_dir, pid=os.getpid())
    if info is None:
        return False
    write_listen_file(data_dir, dataclasses.replace(info, gateway=gateway))
    return True


def remove_listen_file(data_dir: Path) -> None:
    """Remove a stale listen file (at start: the old ports are gone; at a clean stop)."""
    (data_dir / LISTEN_FILE).unlink(missing_ok=True)


__all__ = ["LISTEN_FILE", "ListenInfo", "add_listen_urls", "read_listen_file", "remove_listen_file",
           "write_listen_file"]
