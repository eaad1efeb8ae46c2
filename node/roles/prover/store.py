"""The prover's durable state: key sets, registered endpoints, probes, claims, burned indices.

One LMDB environment (:class:`node.roles.cursor.RoleDB`) under
``roles/prover``. Values are JSON (hex for bytes): this is local
bookkeeping an operator may want to read, not consensus data. Every probe
is appended before the decision that uses it, and a claim's salt, items and
signed transaction bytes are written before the transaction is submitted,
so a restarted prover re-submits exactly what it signed.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from ..cursor import RoleDB

KEYSETS = b"keysets"
"""model_id | host | u64 generation -> KeySet JSON."""
ENDPOINTS = b"endpoints"
"""model_id | host -> {"endpoint", "height"} of the host's registered endpoint."""
PROBES = b"probes"
"""u64 sequence -> Probe JSON (every probe, in the order made)."""
OUTPUTS = b"outputs"
"""sha256(endpoint, served model, key) -> {"ok": [outputs], "failed": n} (the decision's input)."""
CLAIMS = b"claims"
"""u64 local id -> ClaimRecord JSON."""
USED = b"used"
"""model_id | host | u64 generation | u32 index -> local claim id (named in a claim, or burned)."""
META = b"meta"
TABLES = (KEYSETS, ENDPOINTS, PROBES, OUTPUTS, CLAIMS, USED, META)

_U64 = struct.Struct(">Q")
_U32 = struct.Struct(">I")


def set_key(model_id: bytes, host: bytes, generation: int) -> bytes:
    return model_id + host + _U64.pack(generation)


def used_key(model_id: bytes, host: bytes, generation: int, index: int) -> bytes:
    return set_key(model_id, host, generation) + _U32.pack(index)


def outputs_key(endpoint: str, served: str, key: str) -> bytes:
    return hashlib.sha256(json.dumps([endpoint, served, key]).encode()).digest()


@dataclass
class KeySet:
    """One host's keys dealt to this prover (indices and key texts; never responses)."""

    model_id: str
    host: str
    generation: int
    omlizer_peer: str
    keys: list[list[Any]]
    """[[fp_index, key text], ...] ascending by index."""
    fetched_ms: int = 0


@dataclass
class Probe:
    """One request to a deployment and what came back."""

    seq: int
    time_ms: int
    endpoint: str
    served_model: str
    model_id: str
    host: str
    fp_index: int
    key: str
    purpose: str
    """"target" (a deployment under test) or "reference" (base model or a sibling copy)."""
    outcome: str
    """"ok", "http_error", "timeout" or "error"."""
    output: str = ""
    error: str = ""
    latency_ms: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ClaimRecord:
    """A claim from plan to outcome.

    ``state``: planned -> commit_signed -> committed -> open_signed -> opened, or
    commit_failed / open_failed / open_expired. ``outcome`` mirrors the ledger's
    claim status once opened.
    """

    local_id: int
    model_id: str
    host: str
    generation: int
    endpoint: str
    served_model: str
    items: list[list[Any]]
    salt: str
    commitment: str
    bond: int
    audit: bool = False
    """Filed from the host's own registered endpoint with its audit keys (else a hunt)."""
    state: str = "planned"
    created_ms: int = 0
    commit_tx: str = ""
    commit_hash: str = ""
    committed_height: int = 0
    claim_id: int | None = None
    open_tx: str = ""
    open_hash: str = ""
    opened_height: int = 0
    outcome: str = ""
    error: str = ""
    history: list[list[Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("salt")  # the salt stays in the database until the claim is opened
        out.pop("commit_tx")
        out.pop("open_tx")
        return out


def _dump(value: dict[str, Any]) -> bytes:
    return json.dumps(value, sort_keys=True).encode()


class ProverStore:
    """Typed access to the prover's tables."""

    def __init__(self, db: RoleDB) -> None:
        self.db = db

    def _next(self, txn: Any, name: bytes) -> int:
        raw = txn.get(name, db=self.db.table(META))
        n = _U64.unpack(raw)[0] if raw is not None else 0
        txn.put(name, _U64.pack(n + 1), db=self.db.table(META))
        return n

    # ------------------------------------------------------------ key sets, endpoints

    def put_keyset(self, ks: KeySet) -> bool:
        """Store a dealt set; False when it was already here (a deal is final)."""
        k = set_key(bytes.fromhex(ks.model_id), bytes.fromhex(ks.host), ks.generation)
        with self.db.write() as txn:
            return bool(txn.put(k, _dump(asdict(ks)), db=self.db.table(KEYSETS),
                                overwrite=False))

    def keysets(self) -> list[KeySet]:
        with self.db.read() as txn:
            return [KeySet(**json.loads(v)) for _, v in txn.cursor(db=self.db.table(KEYSETS))]

    def put_endpoint(self, txn: Any, model_id: bytes, host: bytes, endpoint: str,
                     height: int) -> None:
        txn.put(model_id + host, _dump({"endpoint": endpoint, "height": height}),
                db=self.db.table(ENDPOINTS))

    def endpoints(self) -> dict[tuple[str, str], str]:
        """(model_id hex, host hex) -> the endpoint the host registered (non-empty only)."""
        out = {}
        with self.db.read() as txn:
            for k, v in txn.cursor(db=self.db.table(ENDPOINTS)):
                k = bytes(k)
                endpoint = json.loads(v)["endpoint"]
                if endpoint:
                    out[(k[:-20].hex(), k[-20:].hex())] = endpoint
        return out

    # ------------------------------------------------------------ probes

    def record_probe(self, probe: Probe, *, samples_cap: int) -> Probe:
        """Append ``probe`` (its ``seq`` assigned here) and index a successful output."""
        with self.db.write() as txn:
            probe.seq = self._next(txn, b"probe_seq")
            txn.put(_U64.pack(probe.seq), _dump(probe.to_json()), db=self.db.table(PROBES))
            ok = outputs_key(probe.endpoint, probe.served_model, probe.key)
            raw = txn.get(ok, db=self.db.table(OUTPUTS))
            seen = json.loads(raw) if raw is not None else {"ok": [], "failed": 0}
            if probe.outcome != "ok":
                seen["failed"] += 1
            elif len(seen["ok"]) < samples_cap:
                seen["ok"].append(probe.output)
            txn.put(ok, json.dumps(seen).encode(), db=self.db.table(OUTPUTS))
        return probe

    def _tally(self, endpoint: str, served: str, key: str) -> dict[str, Any]:
        with self.db.read() as txn:
            raw = txn.get(outputs_key(endpoint, served, key), db=self.db.table(OUTPUTS))
        return json.loads(raw) if raw is not None else {"ok": [], "failed": 0}

    def outputs(self, endpoint: str, served: str, key: str) -> list[str]:
        """The successful outputs of ``key`` at that deployment (at most the cap)."""
        return list(self._tally(endpoint, served, key)["ok"])

    def failures(self, endpoint: str, served: str, key: str) -> int:
        """How many probes of ``key`` at that deployment failed."""
        return int(self._tally(endpoint, served, key)["failed"])

    def probes(self, *, after: int = -1, limit: int = 100) -> list[Probe]:
        """Probes with ``seq > after``, oldest first, at most ``limit``."""
        out: list[Probe] = []
        with self.db.read() as txn:
            cur = txn.cursor(db=self.db.table(PROBES))
            if not cur.set_range(_U64.pack(after + 1)):
                return out
            for _, v in cur:
                out.append(Probe(**json.loads(v)))
                if len(out) >= limit:
                    break
        return out

    def probe_count(self) -> int:
        with self.db.read() as txn:
            return int(txn.stat(self.db.table(PROBES))["entries"])

    # ------------------------------------------------------------ claims and used indices

    def new_claim(self, claim: ClaimRecord) -> ClaimRecord:
        """Store a planned claim and mark its indices used, atomically."""
        with self.db.write() as txn:
            claim.local_id = self._next(txn, b"claim_seq")
            txn.put(_U64.pack(claim.local_id), _dump(asdict(claim)), db=self.db.table(CLAIMS))
            for index, _, _ in claim.items:
                txn.put(used_key(bytes.fromhex(claim.model_id), bytes.fromhex(claim.host),
                                 claim.generation, index), _U64.pack(claim.local_id),
                        db=self.db.table(USED))
        return claim

    def save_claim(self, claim: ClaimRecord) -> None:
        with self.db.write() as txn:
            txn.put(_U64.pack(claim.local_id), _dump(asdict(claim)), db=self.db.table(CLAIMS))

    def release(self, claim: ClaimRecord) -> None:
        """A claim that never reached the chain gives its indices back."""
        with self.db.write() as txn:
            for index, _, _ in claim.items:
                txn.delete(used_key(bytes.fromhex(claim.model_id), bytes.fromhex(claim.host),
                                    claim.generation, index), db=self.db.table(USED))

    def mark_burned(self, txn: Any, model_id: bytes, host: bytes, generation: int,
                    index: int) -> None:
        txn.put(used_key(model_id, host, generation, index), _U64.pack(2**64 - 1),
                db=self.db.table(USED), overwrite=False)

    def used(self, model_id: bytes, host: bytes, generation: int) -> frozenset[int]:
        prefix = set_key(model_id, host, generation)
        out = set()
        with self.db.read() as txn:
            cur = txn.cursor(db=self.db.table(USED))
            if cur.set_range(prefix):
                for k, _ in cur:
                    k = bytes(k)
                    if not k.startswith(prefix):
                        break
                    out.add(_U32.unpack(k[len(prefix):])[0])
        return frozenset(out)

    def claims(self) -> list[ClaimRecord]:
        with self.db.read() as txn:
            return [ClaimRecord(**json.loads(v)) for _, v in txn.cursor(db=self.db.table(CLAIMS))]

    def iter_open(self) -> Iterator[ClaimRecord]:
        for c in self.claims():
            if c.state in ("planned", "commit_signed", "committed", "open_signed") or \
                    (c.state == "opened" and c.outcome in ("", "open", "matched")):
                yield c


__all__ = ["TABLES", "ClaimRecord", "KeySet", "Probe", "ProverStore"]
