"""The genesis document: chain id, start time, validators and initial app state.

JSON, like CometBFT's ``genesis.json``. ``app_state`` (accounts, params) is
interpreted by the ledger (``node.ledger``); this module checks the parts
that consensus needs and keeps ``app_state`` as parsed JSON. Hex strings
carry bytes; amounts and powers are JSON integers.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from consensus.crypto import address_of

CHAIN_ID_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]{0,49}$")


class GenesisError(ValueError):
    """The genesis document is unreadable or inconsistent."""


@dataclass(frozen=True)
class GenesisValidator:
    name: str
    pub_key: bytes
    power: int

    @property
    def address(self) -> bytes:
        return address_of(self.pub_key)


@dataclass(frozen=True)
class Genesis:
    chain_id: str
    genesis_time_ms: int
    validators: tuple[GenesisValidator, ...]
    app_state: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id,
            "genesis_time_ms": self.genesis_time_ms,
            "validators": [
                {"name": v.name, "address": v.address.hex(), "pub_key": v.pub_key.hex(),
                 "power": v.power}
                for v in self.validators
            ],
            "app_state": self.app_state,
        }

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n", "utf-8")

    @classmethod
    def from_json(cls, data: Any) -> Genesis:
        if not isinstance(data, dict):
            raise GenesisError("genesis must be a JSON object")
        chain_id = data.get("chain_id")
        if not isinstance(chain_id, str) or not CHAIN_ID_RE.match(chain_id):
            raise GenesisError(f"invalid chain_id {chain_id!r}")
        time_ms = data.get("genesis_time_ms")
        if isinstance(time_ms, bool) or not isinstance(time_ms, int) or time_ms < 0:
            raise GenesisError("genesis_time_ms must be a non-negative integer")
        raw_vals = data.get("validators")
        if not isinstance(raw_vals, list) or not raw_vals:
            raise GenesisError("validators must be a non-empty list")
        validators = []
        seen: set[bytes] = set()
        for i, v in enumerate(raw_vals):
            if not isinstance(v, dict):
                raise GenesisError(f"validators[{i}] must be an object")
            try:
                pub = bytes.fromhex(v["pub_key"])
            except (KeyError, TypeError, ValueError):
                raise GenesisError(f"validators[{i}].pub_key must be hex") from None
            if len(pub) != 32:
                raise GenesisError(f"validators[{i}].pub_key must be 32 bytes")
            power = v.get("power")
            if isinstance(power, bool) or not isinstance(power, int) or not 0 < power < 2**62:
                raise GenesisError(f"validators[{i}].power must be a positive integer")
            if pub in seen:
                raise GenesisError(f"validators[{i}] is listed twice")
            seen.add(pub)
            name = v.get("name", "")
            if not isinstance(name, str):
                raise GenesisError(f"validators[{i}].name must be a string")
            validators.append(GenesisValidator(name=name, pub_key=pub, power=power))
        app_state = data.get("app_state", {})
        if not isinstance(app_state, dict):
            raise GenesisError("app_state must be an object")
        return cls(chain_id=chain_id, genesis_time_ms=time_ms,
                   validators=tuple(validators), app_state=app_state)

    @classmethod
    def load(cls, path: Path) -> Genesis:
        try:
            data = json.loads(path.read_text("utf-8"))
        except OSError as exc:
            raise GenesisError(f"cannot read {path}: {exc.strerror}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise GenesisError(f"{path}: invalid JSON: {exc}") from None
        return cls.from_json(data)
