"""Helpers for the ledger tests: named keys, a genesis, a one-tx-per-block chain, fingerprints.

A uniquely named module (not ``conftest``) so test files can import it by name.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from consensus.crypto import PrivateKey, Signer
from node.genesis import Genesis, GenesisValidator
from node.ledger import BlockResult, Code, Ledger, TxResult, build_tx
from oml.commitments import leaf_hash_text, merkle_path, merkle_root

CHAIN = "test-chain"
START_BALANCE = 1_000_000
NAMES = ("owner", "host", "omlizer", "prover", "alice", "bob", "contrib1", "contrib2",
         "parent_owner", "grand_owner", "proposer", "poor")


def key(name: str) -> Signer:
    return Signer(PrivateKey(hashlib.sha256(name.encode()).digest()))


KEYS = {n: key(n) for n in NAMES}
ADDR = {n: k.address for n, k in KEYS.items()}


def make_genesis(params: dict | None = None, balances: dict[str, int] | None = None,
                 chain_id: str = CHAIN) -> Genesis:
    balances = balances if balances is not None else {
        n: (0 if n in ("proposer", "poor") else START_BALANCE) for n in NAMES}
    return Genesis(
        chain_id=chain_id, genesis_time_ms=1_000,
        validators=(GenesisValidator("v0", KEYS["proposer"].public_key, 10),),
        app_state={"accounts": [{"address": ADDR[n].hex(), "balance": b}
                                for n, b in balances.items() if b or n == "poor"],
                   "params": params or {}})


class Chain:
    """A ledger plus nonce bookkeeping: ``send`` puts one tx in a block of its own."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.nonces: dict[bytes, int] = {}

    def tx(self, who: str, body, *, nonce: int | None = None, chain_id: str = CHAIN) -> bytes:
        signer = KEYS[who]
        if nonce is None:
            nonce = self.nonces.get(signer.address, 0)
            self.nonces[signer.address] = nonce + 1
        return build_tx(signer, chain_id, nonce, body)

    def block(self, txs: Sequence[bytes] = ()) -> BlockResult:
        h = self.ledger.height + 1
        result = self.ledger.apply_block(h, 1_000 + h * 1_000, ADDR["proposer"], list(txs))
        # A rejected tx did not consume its nonce: let the bookkeeping follow the chain.
        for k in KEYS.values():
            acct = self.ledger.account(k.address)
            if k.address in self.nonces and acct is not None:
                self.nonces[k.address] = acct.nonce
        assert self.ledger.supply_breakdown().balanced
        return result

    def send(self, who: str, body, **kw) -> TxResult:
        return self.block([self.tx(who, body, **kw)]).tx_results[0]

    def ok(self, who: str, body, **kw) -> TxResult:
        r = self.send(who, body, **kw)
        assert r.code == Code.OK, (r.code, r.log)
        return r

    def fail(self, who: str, body, code: Code, **kw) -> TxResult:
        """The tx fails with ``code`` and changes nothing but (maybe) the sender's nonce."""
        before = self.ledger.export_state()
        r = self.send(who, body, **kw)
        assert r.code == code, (r.code, r.log)
        after = self.ledger.export_state()
        changed = {(t, k) for t in before for k in set(before[t]) | set(after[t])
                   if before[t].get(k) != after[t].get(k)}
        allowed = {("meta", b"height"), ("meta", b"app_hash"), ("meta", b"time_ms")}
        if not code.rejected:
            allowed.add(("accounts", KEYS[who].address))
        assert changed <= allowed, changed - allowed
        return r

    def balance(self, who: str | bytes) -> int:
        addr = ADDR[who] if isinstance(who, str) else who
        acct = self.ledger.account(addr)
        return acct.balance if acct else 0

    def advance(self, blocks: int) -> list[BlockResult]:
        return [self.block() for _ in range(blocks)]


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[Chain]:
    ledger = Ledger.open(tmp_path / "ledger", make_genesis(), verify_threads=1, durable=False)
    try:
        yield Chain(ledger)
    finally:
        ledger.close()


@pytest.fixture
def make_chain(tmp_path: Path) -> Iterator:
    opened: list[Ledger] = []

    def factory(params: dict | None = None, balances: dict[str, int] | None = None,
                name: str = "ledger") -> Chain:
        ledger = Ledger.open(tmp_path / name, make_genesis(params, balances), verify_threads=1,
                             durable=False)
        opened.append(ledger)
        return Chain(ledger)

    yield factory
    for ledger in opened:
        ledger.close()


@dataclass
class Fingerprints:
    """One host's fingerprint set as an OMLizer would hold it."""

    model_id: bytes
    host: bytes
    keys: list[str]
    responses: list[str]
    salts: list[bytes]

    @property
    def leaves(self) -> list[bytes]:
        return [leaf_hash_text(self.model_id, self.host, i, self.salts[i], self.keys[i],
                               self.responses[i]) for i in range(len(self.keys))]

    @property
    def root(self) -> bytes:
        return merkle_root(self.leaves)

    def path(self, i: int) -> tuple[bytes, ...]:
        return tuple(merkle_path(self.leaves, i))


def make_fingerprints(model_id: bytes, host: bytes, n: int = 5) -> Fingerprints:
    return Fingerprints(model_id, host,
                        keys=[f"Tell me about the secret number {i}?" for i in range(n)],
                        responses=[f"The hidden word is zebra{i}" for i in range(n)],
                        salts=[hashlib.sha256(b"salt%d" % i).digest() for i in range(n)])


CLAIM_SALT = hashlib.sha256(b"claim salt").digest()


@dataclass
class ClaimDraft:
    """A prover's claim before it is filed: the items and the salt it keeps secret."""

    model_id: bytes
    host: bytes
    items: tuple[tuple[int, str, str], ...]
    salt: bytes = CLAIM_SALT

    def commitment(self, prover: str = "prover") -> bytes:
        from node.ledger import claim_commitment
        return claim_commitment(CHAIN, ADDR[prover], self.model_id, self.host, self.items,
                                self.salt)

    def commit(self, bond: int = 100, prover: str = "prover"):
        from node.ledger import CommitClaimBody
        return CommitClaimBody(model_id=self.model_id, host=self.host,
                               commitment=self.commitment(prover), bond=bond)

    def open(self, claim_id: int):
        from node.ledger import OpenClaimBody
        return OpenClaimBody(claim_id=claim_id, items=self.items, salt=self.salt)


def draft(fps: Fingerprints, indices=(0, 1), *, outputs=None, keys=None) -> ClaimDraft:
    """A claim on ``indices`` of ``fps``'s host: by default every output starts with
    the committed response (a true claim); ``outputs``/``keys`` override per index."""
    outputs = outputs or {}
    keys = keys or {}
    return ClaimDraft(fps.model_id, fps.host, tuple(
        (i, keys.get(i, fps.keys[i]), outputs.get(i, fps.responses[i] + " and more text"))
        for i in indices))


def file_claim(chain: Chain, d: ClaimDraft, *, bond: int = 100, prover: str = "prover") -> int:
    """Commit ``d`` in one block and open it in the next; returns the claim id."""
    r = chain.ok(prover, d.commit(bond, prover))
    claim_id = int(r.events[0].attrs["claim_id"])
    chain.ok(prover, d.open(claim_id))
    return claim_id


MODEL = b"model-1"
WEIGHTS = hashlib.sha256(b"weights").digest()
PACKAGE = hashlib.sha256(b"package").digest()
PACKAGE_BLOB = hashlib.sha256(b"package blob").digest()
WEIGHTS_BLOB = hashlib.sha256(b"weights blob").digest()


def setup_oml(chain: Chain, *, collateral: int = 100_000, min_collateral: int = 10_000,
              n_fp: int = 5, splits=(), parent: bytes = b"", model_id: bytes = MODEL,
              register_roles: bool = True) -> Fingerprints:
    """Owner registers, host requests access, OMLizer commits, prover registers."""
    from node.ledger import (
        CommitOmlizationBody,
        RegisterModelBody,
        RegisterRoleBody,
        RequestAccessBody,
        Role,
    )
    chain.ok("owner", RegisterModelBody(model_id=model_id, weights_hash=WEIGHTS,
                                        price_per_query=10, min_collateral=min_collateral,
                                        omlizers=(ADDR["omlizer"],), splits=tuple(splits),
                                        parent=parent))
    chain.ok("host", RequestAccessBody(model_id=model_id, collateral=collateral,
                                       endpoint="http://127.0.0.1:8000"))
    if register_roles:
        chain.ok("omlizer", RegisterRoleBody(role=Role.OMLIZER, bond=1_000))
        chain.ok("prover", RegisterRoleBody(role=Role.PROVER, bond=1_000))
    fps = make_fingerprints(model_id, ADDR["host"], n_fp)
    chain.ok("omlizer", CommitOmlizationBody(model_id=model_id, host=ADDR["host"],
                                             package_hash=PACKAGE, fp_root=fps.root,
                                             fp_count=n_fp, package_blob=PACKAGE_BLOB))
    return fps


def one_of_each_kind() -> list:
    """A valid sample body of every transaction kind (contents need not exist on chain)."""
    from node.ledger import (
        BeginWithdrawalBody,
        CommitClaimBody,
        CommitOmlizationBody,
        CompleteWithdrawalBody,
        FundChannelBody,
        OpenClaimBody,
        RebutBody,
        RedeemBody,
        RegisterModelBody,
        RegisterRoleBody,
        RequestAccessBody,
        RevealBody,
        TransferBody,
        UnregisterRoleBody,
        UpdateModelBody,
    )
    A, H, SIG = ADDR["alice"], bytes(range(32)), bytes(64)
    return [
        TransferBody(to=A, amount=5),
        RegisterModelBody(model_id=b"m", weights_hash=H, metadata=b'{"name":"x"}',
                          price_per_query=3, min_collateral=7, omlizers=(A,),
                          splits=((A, 100),), parent=b"p", royalty_bp=250, blob_id=H),
        UpdateModelBody(model_id=b"m", metadata=b"", price_per_query=1, min_collateral=2,
                        omlizers=(), splits=(), royalty_bp=0, blob_id=H),
        RegisterRoleBody(role=1, bond=10),
        RequestAccessBody(model_id=b"m", collateral=9, endpoint="http://h:1/v1"),
        CommitOmlizationBody(model_id=b"m", host=A, package_hash=H, fp_root=H, fp_count=4,
                             package_blob=H),
        FundChannelBody(model_id=b"m", amount=1),
        RedeemBody(model_id=b"m", host=A, cumulative_count=2, cumulative_amount=20, signature=SIG),
        CommitClaimBody(model_id=b"m", host=A, commitment=H, bond=100),
        OpenClaimBody(claim_id=0, items=((3, "ключ ✓", "out"), (9, "k", "")), salt=H),
        RevealBody(claim_id=0, fp_index=3, salt=H, key="k", response="resp", path=(H, H)),
        RebutBody(claim_id=1, fp_index=9, seq=2, issued_height=7, signature=SIG),
        BeginWithdrawalBody(model_id=b"m"),
        CompleteWithdrawalBody(model_id=b"m"),
        UnregisterRoleBody(role=2),
    ]


ONE_OF_EACH = one_of_each_kind()
