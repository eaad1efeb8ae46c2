"""Process-wide logging set up from the ``[log]`` config section.

Two formats: ``plain`` for a person watching a terminal, ``json`` (one object
per line) for log shippers. Both carry the node's moniker so the interleaved
output of a local testnet stays readable. Setup is idempotent: calling it
twice replaces our handler instead of doubling every line.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import IO, Any

from .config import LogSection

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR}
_HANDLER_NAME = "oml-node"
#: Noisy third-party loggers kept at WARNING unless we run at debug.
_QUIET = ("multiaddr", "hypercorn.access", "hypercorn.error", "httpx", "httpcore",
          "async_service")
#: libp2p logs every failed redial of a peer that is down at ERROR, every few
#: seconds; the transport reports what matters itself, so below debug these
#: are silenced.
_SILENT = ("libp2p",)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts (ms), level, logger, node, msg, plus extras."""

    def __init__(self, moniker: str) -> None:
        super().__init__()
        self.moniker = moniker

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": int(record.created * 1000),
            "level": record.levelname.lower(),
            "logger": record.name,
            "node": self.moniker,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


class PlainFormatter(logging.Formatter):
    """``HH:MM:SS.mmm LEVEL node logger: message`` in UTC."""

    converter = time.gmtime

    def __init__(self, moniker: str) -> None:
        super().__init__(f"%(asctime)s.%(msecs)03d %(levelname)-7s {moniker} %(name)s: %(message)s",
                         datefmt="%H:%M:%S")


def setup_logging(section: LogSection, moniker: str, *, stream: IO[str] | None = None) -> None:
    """Configure the root logger from ``[log]`` (level and format)."""
    level = _LEVELS[section.level]
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter(moniker) if section.format == "json"
                         else PlainFormatter(moniker))
    if level != logging.DEBUG:
        handler.addFilter(_drop_library_chatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        if old.get_name() == _HANDLER_NAME:
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in _QUIET:
        logging.getLogger(name).setLevel(level if level == logging.DEBUG else logging.WARNING)
    route_library_logs(level)


def _drop_library_chatter(record: logging.LogRecord) -> bool:
    """Below debug, libp2p's records (dial failures, auto-connector status) are dropped:
    some of its modules set their own INFO level, so a logger level alone is not enough."""
    return not (record.name == "libp2p" or record.name.startswith("libp2p."))


def route_library_logs(level: int | None = None) -> None:
    """Send libp2p's records through our handler (call again after importing libp2p).

    py-libp2p detaches its logger at import (``propagate = False``, no
    handler), so its records would reach stderr raw via logging's last-resort
    handler. This re-attaches it, at debug only when we run at debug.
    """
    if level is None:
        level = logging.getLogger().level
    for name in _SILENT:
        lg = logging.getLogger(name)
        lg.propagate = True
        lg.setLevel(logging.DEBUG if level == logging.DEBUG else logging.CRITICAL)


__all__ = ["JsonFormatter", "PlainFormatter", "route_library_logs", "setup_logging"]
