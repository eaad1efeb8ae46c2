"""What the ledger returns: mempool checks, per-transaction and per-block results."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import Code
from .state import Event


@dataclass(frozen=True, slots=True)
class TxCheck:
    """Outcome of :meth:`Ledger.check_tx` / :meth:`Ledger.stateless_check`.

    ``sender`` and ``nonce`` are set whenever the bytes decoded, so a mempool
    can order and evict by sender even for rejected transactions.
    """

    code: Code
    log: str
    tx_hash: bytes
    sender: bytes = b""
    nonce: int = 0

    @property
    def ok(self) -> bool:
        return self.code == Code.OK

    def to_json(self) -> dict[str, Any]:
        return {"code": int(self.code), "codespace": self.code.name.lower(), "log": self.log,
                "hash": self.tx_hash.hex(), "sender": self.sender.hex(), "nonce": self.nonce}


@dataclass(frozen=True, slots=True)
class TxResult:
    """Outcome of one transaction in a block (CometBFT's ExecTxResult)."""

    code: Code
    log: str
    tx_hash: bytes
    events: tuple[Event, ...] = ()
    kind: str = ""

    @property
    def ok(self) -> bool:
        return self.code == Code.OK

    def to_json(self) -> dict[str, Any]:
        return {"code": int(self.code), "codespace": self.code.name.lower(), "log": self.log,
                "hash": self.tx_hash.hex(), "kind": self.kind,
                "events": [e.to_json() for e in self.events]}


@dataclass(frozen=True, slots=True)
class BlockResult:
    """Outcome of :meth:`Ledger.apply_block`: the new app hash and every result."""

    height: int
    app_hash: bytes
    tx_results: tuple[TxResult, ...]
    end_block_events: tuple[Event, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {"height": self.height, "app_hash": self.app_hash.hex(),
                "tx_results": [r.to_json() for r in self.tx_results],
                "end_block_events": [e.to_json() for e in self.end_block_events]}
