"""Prover key hand-off: deal each host's keys to registered provers, serve them on request.

Dealing (:func:`deal`): once a host is committed, its fingerprint *keys*
(not indices: backups share their primary's key) are shuffled with a seed
fixed by the commitment and dealt round-robin to the provers registered on
the ledger at that moment, sorted by address. Every key goes to exactly one
prover, so no two provers hold the same key and a claim by one never burns
a key another was going to use. The sets are sealed to each prover's
Ed25519 account key with :func:`oml.sidecar.seal_prover_keys` (keys only:
never responses or salts) and kept in the OMLizer's role database. A host
committed while no prover is registered is dealt when the first one
registers. A deal is final: a prover registering later gets keys of hosts
committed after it registered, because re-dealing would hand the same key
to two provers.

Delivery (``/oml/prover-keys/1``, request/response on the node's libp2p
transport): a prover asks every OMLizer peer it knows. The request is
signed by the prover's account key and names the libp2p peer id it is
sent from and the time, so only the prover itself (not a peer replaying its
request from another connection, nor anyone after :data:`MAX_SKEW_MS`)
learns for which hosts it was dealt keys. The answer lists
``(model_id, host, generation, sealed set)``; the sets are opened only with
the prover's seed. Paged by ``after`` (the last job key seen).

Wire format (canonical msgpack arrays, see :mod:`consensus.encoding`)::

    request  = [prover_pubkey(32), peer_id(utf-8), time_ms, after, signature(64)]
      signature over sign_bytes("oml/prover-keys/v1", chain_id,
                                encode([prover_pubkey, peer_id, time_ms, after]))
    response = [[[model_id, host, generation, sealed], ...], more(0|1)]
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from consensus.crypto import PrivateKey, address_of, verify
from consensus.encoding import (
    DecodeError,
    decode,
    encode,
    expect_bytes,
    expect_int,
    expect_list,
)

from .jobs import JobStore, split_job_key

log = logging.getLogger("node.roles.omlizer")

PROTOCOL = "/oml/prover-keys/1"
DOMAIN = b"oml/prover-keys/v1"
MAX_SKEW_MS = 5 * 60 * 1000
MAX_REQUEST_BYTES = 1024
RESPONSE_BUDGET = 1 << 20
"""Bytes of sealed sets per response page (well under the transport's message cap)."""
ERR_BAD_REQUEST = 400
ERR_FORBIDDEN = 403


class HandoffError(Exception):
    """A prover-keys request or response is malformed, stale or not signed by its prover."""


# ---------------------------------------------------------------------- dealing


def key_groups(entries: Iterable[Any]) -> list[list[int]]:
    """Indices grouped by key text, in first-appearance order (a key and its backups)."""
    groups: dict[str, list[int]] = {}
    for e in entries:
        groups.setdefault(e.key, []).append(e.index)
    return list(groups.values())


def deal(groups: Sequence[Sequence[int]], provers: Sequence[bytes], seed: bytes
         ) -> dict[bytes, list[int]]:
    """Disjoint index sets per prover: key groups shuffled by ``seed``, dealt round-robin.

    Deterministic in its inputs (a redo after a crash deals the same sets).
    Provers beyond the number of keys get nothing.
    """
    order = sorted(set(provers))
    if not order:
        return {}
    shuffled = list(groups)
    random.Random(hashlib.sha256(b"oml/deal/v1" + seed).digest()).shuffle(shuffled)
    out: dict[bytes, list[int]] = {}
    for i, group in enumerate(shuffled):
        out.setdefault(order[i % len(order)], []).extend(group)
    return {p: sorted(ix) for p, ix in out.items()}


# ---------------------------------------------------------------------- wire


@dataclass(frozen=True, slots=True)
class KeysRequest:
    prover_pubkey: bytes
    peer_id: str
    time_ms: int
    after: bytes
    signature: bytes

    def body(self) -> bytes:
        return encode([self.prover_pubkey, self.peer_id.encode(), self.time_ms, self.after])


def make_request(seed: bytes, chain_id: str, peer_id: str, time_ms: int,
                 after: bytes = b"") -> bytes:
    """A signed request from the prover whose account seed is ``seed``, sent from ``peer_id``."""
    key = PrivateKey(seed)
    unsigned = KeysRequest(key.public_key, peer_id, time_ms, after, b"")
    sig = key.sign(DOMAIN, chain_id, unsigned.body())
    return encode([key.public_key, peer_id.encode(), time_ms, after, sig])


def parse_request(data: bytes, *, chain_id: str, from_peer: str, now_ms: int) -> KeysRequest:
    """Check a request: well-formed, signed by its prover, sent by the peer it names, fresh.

    Raises:
        HandoffError: saying which check failed.
    """
    try:
        v = expect_list(decode(data, MAX_REQUEST_BYTES), 5, what="request")
        req = KeysRequest(expect_bytes(v[0], what="prover_pubkey", size=32),
                          expect_bytes(v[1], what="peer_id", max_size=128).decode("utf-8"),
                          expect_int(v[2], what="time_ms"),
                          expect_bytes(v[3], what="after", max_size=128),
                          expect_bytes(v[4], what="signature", size=64))
    except (DecodeError, UnicodeDecodeError) as exc:
        raise HandoffError(f"malformed request: {exc}") from None
    if not verify(req.prover_pubkey, DOMAIN, chain_id, req.body(), req.signature):
        raise HandoffError("signature is not the prover's (or another chain's)")
    if req.peer_id != from_peer:
        raise HandoffError("request names another peer id than the one it came from")
    if abs(now_ms - req.time_ms) > MAX_SKEW_MS:
        raise HandoffError("request is stale (time_ms more than 5 minutes off)")
    return req


Entry = tuple[bytes, bytes, int, bytes]
"""(model_id, host, generation, sealed prover key set)."""


def encode_response(entries: Sequence[Entry], more: bool) -> bytes:
    return encode([[list(e) for e in entries], int(more)])


def decode_response(data: bytes) -> tuple[list[Entry], bool]:
    try:
        v = expect_list(decode(data, 16 << 20), 2, what="response")
        out = []
        for item in expect_list(v[0], what="entries"):
            e = expect_list(item, 4, what="entry")
            out.append((expect_bytes(e[0], what="model_id", max_size=64),
                        expect_bytes(e[1], what="host", size=20),
                        expect_int(e[2], what="generation"),
                        expect_bytes(e[3], what="sealed", max_size=16 << 20)))
        return out, bool(expect_int(v[1], what="more", hi=1))
    except DecodeError as exc:
        raise HandoffError(f"malformed response: {exc}") from None


# ---------------------------------------------------------------------- server


class KeysServer:
    """Answers ``/oml/prover-keys/1`` from the OMLizer's hand-off table."""

    def __init__(self, store: JobStore, *, chain_id: str, clock_ms: Callable[[], int]) -> None:
        self._store = store
        self._chain_id = chain_id
        self._now = clock_ms

    def answer(self, peer: str, data: bytes) -> bytes:
        """The response bytes for one request (raises :class:`HandoffError` on a bad one)."""
        req = parse_request(data, chain_id=self._chain_id, from_peer=peer, now_ms=self._now())
        prover = address_of(req.prover_pubkey)
        entries: list[Entry] = []
        used = 0
        more = False
        for key, sealed in self._store.handoffs_for(prover):
            if req.after and key <= req.after:
                continue
            if entries and used + len(sealed) > RESPONSE_BUDGET:
                more = True
                break
            model_id, host, generation = split_job_key(key)
            entries.append((model_id, host, generation, sealed))
            used += len(sealed)
        return encode_response(entries, more)

    async def handle(self, peer: str, data: bytes) -> bytes:
        from net.errors import HandlerError

        try:
            return self.answer(peer, data)
        except HandoffError as exc:
            raise HandlerError(ERR_BAD_REQUEST, str(exc)) from None


# ---------------------------------------------------------------------- client


@dataclass(frozen=True, slots=True)
class AssignedKeys:
    """One host's keys dealt to this prover, opened."""

    omlizer_peer: str
    model_id: bytes
    host: bytes
    generation: int
    keys: tuple[tuple[int, str], ...]
    """(fingerprint index, key text), ascending by index."""


async def fetch_prover_keys(transport: Any, peers: Sequence[str], *, seed: bytes,
                            chain_id: str, clock_ms: Callable[[], int],
                            timeout: float | None = None
                            ) -> tuple[list[AssignedKeys], dict[str, str]]:
    """Ask each of ``peers`` (OMLizer nodes) for the key sets dealt to this prover.

    For the prover role: ``seed`` is its account seed (it signs the request
    and opens the sets). Returns the opened sets and, per peer that gave
    none, why (``unsupported protocol``, unreachable, a set that does not
    open). A set whose content names another model or host than its entry
    is dropped as a lie.
    """
    from net.errors import NetError
    from oml.package_errors import PackageError
    from oml.sidecar import open_prover_keys

    found: list[AssignedKeys] = []
    failures: dict[str, str] = {}
    for peer in peers:
        after = b""
        try:
            while True:
                req = make_request(seed, chain_id, transport.peer_id, clock_ms(), after)
                raw = await transport.request(peer, PROTOCOL, req, timeout=timeout)
                entries, more = decode_response(raw)
                for model_id, host, generation, sealed in entries:
                    opened = open_prover_keys(sealed, seed)
                    if opened.model_id.encode("utf-8") != model_id or opened.host != host:
                        raise HandoffError("a sealed set names another model or host")
                    found.append(AssignedKeys(peer, model_id, host, generation, opened.keys))
                if not more or not entries:
                    break
                m, h, g, _ = entries[-1]
                from .jobs import job_key

                after = job_key(m, h, g)
        except (NetError, HandoffError, PackageError) as exc:
            failures[peer] = f"{type(exc).__name__}: {exc}"
    return found, failures


__all__ = ["PROTOCOL", "AssignedKeys", "HandoffError", "KeysServer", "deal",
           "fetch_prover_keys", "key_groups", "make_request", "parse_request"]
