"""Test kit for the host gateway: a fake owner and ledger, a tiny model, a served app.

``FakeOwner`` implements :class:`node.roles.host.permits.PermissionSource`
the way the owner's service behaves on the wire: it keeps the latest voucher,
refuses a batch that does not follow it with VOUCHER_STALE (carrying its
count), checks the voucher signature and amount, and signs real permission
strings that :func:`node.ledger.vouchers.verify_permission` accepts.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import trio

from consensus.crypto import PrivateKey, Signer
from node.ledger.vouchers import PERMISSION_DOMAIN, permission_body, verify_voucher
from node.roles.host.apikeys import ApiKey, KeyRing, UsageBook
from node.roles.host.app import Gateway, Limits
from node.roles.host.permits import PermissionRefused, Permitter
from node.roles.host.store import HostStore
from node.roles.owner.protocol import (
    PermissionGrant,
    PermissionRequest,
    Refusal,
    stale_message,
)
from node.rpc.server import serve_app

CHAIN_ID = "gw-test"
MODEL_ID = b"tiny-model"
MODEL_NAME = "tiny-model"
PRICE = 7
OWNER = Signer(PrivateKey(b"\x11" * 32))
HOST = Signer(PrivateKey(b"\x22" * 32))
KEY = "sk-test-alice"


@dataclass
class FakeModel:
    price_per_query: int = PRICE
    owner_pubkey: bytes = OWNER.public_key


@dataclass
class FakeLedger:
    """What the permitter reads of the chain."""

    price: int = PRICE
    height: int = 5

    def model(self, model_id: bytes) -> Any:
        return FakeModel(self.price) if model_id == MODEL_ID else None

    def host(self, model_id: bytes, host: bytes) -> Any:
        return None


@dataclass
class FakeOwner:
    """A permission source that behaves like the owner's service (see module docstring)."""

    ledger: FakeLedger = field(default_factory=FakeLedger)
    count: int = 0
    amount: int = 0
    refuse: int | None = None
    refuse_hash: bytes | None = None
    requests: list[PermissionRequest] = field(default_factory=list)
    signed: dict[int, bytes] = field(default_factory=dict)
    gate: trio.Event | None = None

    async def request(self, req: PermissionRequest) -> PermissionGrant:
        self.requests.append(req)
        if self.gate is not None:
            await self.gate.wait()
        if self.refuse is not None:
            raise PermissionRefused(self.refuse, f"refused ({Refusal(self.refuse).name})")
        if self.refuse_hash is not None and self.refuse_hash in req.query_hashes:
            raise PermissionRefused(Refusal.CLAIM_PENDING, "a claim names this query")
        if req.first_seq != self.count:
            raise PermissionRefused(Refusal.VOUCHER_STALE, stale_message(self.count))
        if not verify_voucher(HOST.public_key, CHAIN_ID, req.model_id, req.host,
                              req.cumulative_count, req.cumulative_amount,
                              req.voucher_signature) \
                or req.cumulative_amount != self.ledger.price * req.cumulative_count:
            raise PermissionRefused(Refusal.BAD_VOUCHER, "bad voucher")
        sigs = []
        for seq, qhash in zip(req.seqs, req.query_hashes, strict=True):
            assert seq not in self.signed, "the owner would sign one seq twice"
            sig = OWNER.sign(PERMISSION_DOMAIN, CHAIN_ID,
                             permission_body(req.model_id, req.host, seq, qhash,
                                             self.ledger.height))
            self.signed[seq] = sig
            sigs.append(sig)
        self.count, self.amount = req.cumulative_count, req.cumulative_amount
        return PermissionGrant(issued_height=self.ledger.height, signatures=tuple(sigs))


def make_permitter(store: HostStore, owner: FakeOwner, *, window_s: float = 0.002,
                   **kw: Any) -> Permitter:
    return Permitter(store=store, source=owner, ledger=owner.ledger, signer=HOST,
                     chain_id=CHAIN_ID, model_id=MODEL_ID, window_s=window_s, **kw)


LIMITS = Limits(max_body_bytes=4096, max_new_tokens=32)


def make_gateway(engine: Any, permits: Any, store: HostStore | None, *, rpm: int = 0,
                 budget: int = 0, limits: Limits = LIMITS) -> Gateway:
    keys = KeyRing([(KEY, ApiKey("alice", rpm, budget)),
                    ("sk-test-bob", ApiKey("bob", 0, 0))])
    return Gateway(engine=engine, model_name=MODEL_NAME, permits=permits, keys=keys,
                   usage=UsageBook(store), limits=limits)


@asynccontextmanager
async def serving(gateway: Gateway, permitter: Permitter | None = None
                  ) -> AsyncIterator[str]:
    """Serve ``gateway`` on 127.0.0.1 port 0; yields the OpenAI base URL (``.../v1``)."""
    async with trio.open_nursery() as nursery:
        if permitter is not None:
            nursery.start_soon(permitter.run)
        urls = await nursery.start(functools.partial(serve_app, gateway.app(),
                                                     "127.0.0.1:0"))
        yield urls[0] + "/v1"
        nursery.cancel_scope.cancel()


class CountingEngine:
    """An engine wrapper that counts how often the model ran."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.runs = 0

    async def prepare(self, req: Any) -> Any:
        return await self.inner.prepare(req)

    async def generate(self, prepared: Any) -> Any:
        self.runs += 1
        return await self.inner.generate(prepared)

    async def stream(self, prepared: Any, emit: Any) -> Any:
        self.runs += 1
        return await self.inner.stream(prepared, emit)

    async def aclose(self) -> None:
        await self.inner.aclose()
