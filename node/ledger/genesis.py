"""The ledger's reading of genesis ``app_state``: funded accounts and params.

``app_state`` looks like::

    {"accounts": [{"address": "<40 hex>", "balance": 1000}, ...],
     "params": {"challenge_window": 10, ...}}

Unknown keys are rejected at both levels, an address may appear once, and
the total supply must fit in an unsigned 64-bit integer, which is what lets
every later balance, collateral and escrow stay in range (no part can
exceed the whole).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from consensus.encoding import U64_MAX
from node.genesis import Genesis

from .errors import GenesisStateError
from .params import Params
from .records import Account
from .state import META, META_GENESIS_SUPPLY, Overlay, Reader, State

META_PARAMS = b"params"
META_CHAIN_ID = b"chain_id"


@dataclass(frozen=True, slots=True)
class AppState:
    accounts: tuple[tuple[bytes, int], ...]
    params: Params

    @property
    def supply(self) -> int:
        return sum(balance for _, balance in self.accounts)


def parse_app_state(app_state: Any) -> AppState:
    if not isinstance(app_state, dict):
        raise GenesisStateError("app_state must be an object")
    unknown = sorted(set(app_state) - {"accounts", "params"})
    if unknown:
        raise GenesisStateError(f"unknown app_state keys: {', '.join(unknown)}")
    raw_accounts = app_state.get("accounts", [])
    if not isinstance(raw_accounts, list):
        raise GenesisStateError("app_state.accounts must be a list")
    accounts: list[tuple[bytes, int]] = []
    seen: set[bytes] = set()
    for i, entry in enumerate(raw_accounts):
        if not isinstance(entry, dict) or set(entry) != {"address", "balance"}:
            raise GenesisStateError(f"accounts[{i}] must be {{address, balance}}")
        try:
            address = bytes.fromhex(entry["address"])
        except (TypeError, ValueError):
            raise GenesisStateError(f"accounts[{i}].address must be hex") from None
        if len(address) != 20:
            raise GenesisStateError(f"accounts[{i}].address must be 20 bytes")
        balance = entry["balance"]
        if isinstance(balance, bool) or not isinstance(balance, int) or not 0 <= balance <= U64_MAX:
            raise GenesisStateError(f"accounts[{i}].balance must be an integer in u64 range")
        if address in seen:
            raise GenesisStateError(f"accounts[{i}]: address {address.hex()} listed twice")
        seen.add(address)
        accounts.append((address, balance))
    result = AppState(accounts=tuple(accounts), params=Params.from_json(app_state.get("params")))
    if result.supply > U64_MAX:
        raise GenesisStateError(f"total genesis supply {result.supply} exceeds 2**64-1")
    return result


def genesis_hash(genesis: Genesis) -> bytes:
    """SHA-256 of what the ledger takes from genesis (chain id, time, app_state),
    as sorted compact JSON; stored so a store is never reopened with another
    genesis. Validators are consensus's business and are left out."""
    doc = {"chain_id": genesis.chain_id, "genesis_time_ms": genesis.genesis_time_ms,
           "app_state": genesis.app_state}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":"))
                          .encode("utf-8")).digest()


def genesis_writes(chain_id: str, app: AppState, parent: Reader) -> Overlay:
    """The initial state as a write set (hashed into the height-0 app hash)."""
    kv = Overlay(parent)
    state = State(kv)
    for address, balance in app.accounts:
        state.put_account(address, Account(balance=balance, nonce=0))
    kv.put(META, META_PARAMS, app.params.encode())
    kv.put(META, META_CHAIN_ID, chain_id.encode("utf-8"))
    state.put_meta_int(META_GENESIS_SUPPLY, app.supply)
    return kv
