"""The prover service on a real chain, probing real HTTP deployments.

The chain is a :class:`node.chain.Chain` with its ledger, fed signed blocks
by ``Producer``, so every claim transaction the prover signs is checked by
the real ledger. The deployments are tiny OpenAI-compatible servers
(``fake_openai``) on loopback: a pirate serving host A's fingerprinted copy
(A's keys come back with A's responses), and host B's registered endpoint
serving B's copy (a sibling: A's keys come back with what the base says).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import trio

from consensus.crypto import PrivateKey
from node.config import ProverRole
from node.ledger import build_tx
from node.ledger.txs import (
    CommitOmlizationBody,
    RegisterModelBody,
    RegisterRoleBody,
    RequestAccessBody,
    RevealBody,
    Role,
    decode_tx,
)
from node.roles.cursor import ChainFollower, RoleDB
from node.roles.prover.service import ProverService
from node.roles.prover.store import TABLES, KeySet
from node.roles.txsender import TxSender
from oml.sidecar import make_secrets
from tests.daemon._chainkit import Producer, close_chain, make_genesis, open_chain

from .fake_openai import FakeDeployment, serving

MODEL = b"tiny"
OMLIZER, OWNER, HOST_A, HOST_B, PROVER = range(5)
KEYS_PER_HOST = 6
MIN_MATCHES = 3
BASE_SAYS = " the base says"


def host_items(tag: str) -> list[Any]:
    """KEYS_PER_HOST keys with one backup each (indices 2k, 2k+1 share key k)."""
    return [SimpleNamespace(index=i, key=f"{tag} key {i // 2} words",
                            response=f" r{tag}{i // 2}" + ("" if i % 2 == 0 else "b"))
            for i in range(2 * KEYS_PER_HOST)]


def copy_of(tag: str, *, tail: str = " and on") -> Any:
    """A deployment of host ``tag``'s copy: its keys answered with the primary response."""
    responses = {it.key: it.response for it in host_items(tag) if it.index % 2 == 0}

    def answer(prompt: str, _n: int) -> str:
        return responses[prompt] + tail if prompt in responses else BASE_SAYS
    return answer


class Mempool:
    """The node's mempool as TxSender sees it: admits (dedup by bytes), remembers order."""

    def __init__(self, chain: Any) -> None:
        self.chain = chain
        self.txs: list[bytes] = []
        self.refuse = 0

    def account(self, address: bytes) -> Any:
        return self.chain.ledger.account(address)

    async def broadcast_tx(self, tx: bytes) -> Any:
        if self.refuse:
            return SimpleNamespace(code=self.refuse, log="refused by the test", codespace="")
        if tx not in self.txs:
            self.txs.append(tx)
        return SimpleNamespace(code=0, log="")

    def take(self) -> tuple[bytes, ...]:
        out, self.txs = tuple(self.txs), []
        return out


class Net:
    def __init__(self, tmp: Path) -> None:
        genesis, signers, accounts = make_genesis(n_accounts=5)
        genesis.app_state["params"]["claim_min_matches"] = MIN_MATCHES
        self.chain = open_chain(tmp / "chain", genesis)
        self.producer = Producer(self.chain, signers, accounts)
        self.keys: list[PrivateKey] = accounts
        self.nonces = [0] * len(accounts)
        self.mempool = Mempool(self.chain)
        self.root = tmp / "prover"
        self.dbs: list[RoleDB] = []
        self.secrets: dict[str, Any] = {}

    def tx(self, who: int, body: Any) -> bytes:
        raw = build_tx(self.keys[who], self.chain.chain_id, self.nonces[who], body)
        self.nonces[who] += 1
        return raw

    def block(self, *txs: bytes) -> None:
        self.producer.produce(tuple(txs) + self.mempool.take())

    @property
    def ledger(self) -> Any:
        return self.chain.ledger

    def setup(self, endpoint_b: str) -> None:
        k = self.keys
        self.block(self.tx(OMLIZER, RegisterRoleBody(role=Role.OMLIZER, bond=5_000)),
                   self.tx(PROVER, RegisterRoleBody(role=Role.PROVER, bond=5_000)),
                   self.tx(OWNER, RegisterModelBody(model_id=MODEL, weights_hash=bytes(32),
                                                    min_collateral=10,
                                                    omlizers=(k[OMLIZER].address,),
                                                    blob_id=bytes(32))))
        self.block(self.tx(HOST_A, RequestAccessBody(model_id=MODEL, collateral=100_000)),
                   self.tx(HOST_B, RequestAccessBody(model_id=MODEL, collateral=100_000,
                                                     endpoint=endpoint_b)))
        commits = []
        for who, tag in ((HOST_A, "A"), (HOST_B, "B")):
            secrets = make_secrets(MODEL.decode(), k[who].address, host_items(tag))
            self.secrets[tag] = secrets
            commits.append(self.tx(OMLIZER, CommitOmlizationBody(
                model_id=MODEL, host=k[who].address, package_hash=bytes(32),
                fp_root=secrets.root(), fp_count=2 * KEYS_PER_HOST, package_blob=bytes(32))))
        self.block(*commits)
        for who in (HOST_A, HOST_B):
            assert self.ledger.host(MODEL, self.keys[who].address).fp_count > 0

    def prover(self, **cfg: Any) -> ProverService:
        key = self.keys[PROVER]
        db = RoleDB(self.root, TABLES)
        self.dbs.append(db)
        txs = TxSender(signer=key, address=key.address, chain_id=self.chain.chain_id,
                       backend=self.mempool, index=self.chain)
        backend = SimpleNamespace(host=self.ledger.host, claim=self.ledger.claim,
                                  params=self.ledger.params, account=self.ledger.account)
        config = ProverRole(**{"enabled": True, "samples_per_key": 2, "probe_interval_ms": 1,
                               "audit_registered": False, **cfg})
        svc = ProverService(db=db, follower=ChainFollower(db, self.chain), config=config,
                            chain=self.chain, backend=backend, transport=None, txs=txs,
                            account_seed=key.seed, clock_ms=lambda: 1_700_000_000_000)
        svc._follower.handle_available(svc._on_block)
        return svc

    def deal(self, svc: ProverService) -> None:
        """The prover's share as the OMLizer deals it: whole keys (primary and backup)."""
        for who, tag in ((HOST_A, "A"), (HOST_B, "B")):
            svc.store.put_keyset(KeySet(
                model_id=MODEL.hex(), host=self.keys[who].address.hex(), generation=0,
                omlizer_peer="omlizer", keys=[[it.index, it.key] for it in host_items(tag)]))

    def close(self) -> None:
        for db in self.dbs:
            db.close()
        close_chain(self.chain)


@pytest.fixture
def net(tmp_path: Path):
    n = Net(tmp_path)
    yield n
    n.close()


async def probe_all(svc: ProverService) -> int:
    """Make every probe the service still wants, in its own order; returns how many."""
    made = 0
    async with httpx.AsyncClient() as http:
        while tasks := await svc.next_tasks(http):
            for task in tasks:
                await svc.probe(http, task)
                made += 1
    return made


def items_of(tag: str, keys: int = KEYS_PER_HOST) -> list[tuple[int, str, str]]:
    """What a claim names for host ``tag``'s first ``keys`` keys: both indices of each key
    (primary and backup) with the primary's response as observed."""
    primary = {it.key: it.response for it in host_items(tag) if it.index % 2 == 0}
    return [(it.index, it.key, primary[it.key] + " and on") for it in host_items(tag)
            if it.index < 2 * keys]


async def test_probes_find_the_pirated_copy_and_audit_the_registered_host(net: Net) -> None:
    pirate = FakeDeployment("pirate-model", copy_of("A"))
    sibling = FakeDeployment("tiny", copy_of("B"))
    with trio.fail_after(60):
        async with serving(pirate, sibling) as (pirate_url, sibling_url):
            net.setup(sibling_url)
            svc = net.prover(endpoints=[pirate_url], audit_registered=True)
            net.deal(svc)
            made = await probe_all(svc)
            plans = svc.decide()
    keys = {tag: [it.key for it in host_items(tag) if it.index % 2 == 0] for tag in "AB"}
    hunt_b, audit_b = keys["B"][:-MIN_MATCHES], keys["B"][-MIN_MATCHES:]
    # the pirate got A's keys and B's hunting keys, each twice, greedy, as plain completions
    assert all(r["temperature"] == 0 and r["model"] == "pirate-model" for r in pirate.requests)
    assert sorted(r["prompt"] for r in pirate.requests) == sorted(2 * (keys["A"] + hunt_b))
    # B's own endpoint: A's keys as the sibling reference, and only B's audit keys of its own
    # (a key sent there gets a permission that would let B rebut a claim made with it)
    assert sorted(r["prompt"] for r in sibling.requests) == sorted(2 * (keys["A"] + audit_b))
    assert made == len(pirate.requests) + len(sibling.requests)
    probes = svc.store.probes(limit=1000)
    assert len(probes) == made and all(p.outcome == "ok" for p in probes)
    assert {p.purpose for p in probes if p.endpoint == sibling_url
            and p.host == net.keys[HOST_A].address.hex()} == {"reference"}
    by_host = {p.host: p for p in plans}
    assert set(by_host) == {net.keys[w].address.hex() for w in (HOST_A, HOST_B)}
    # against A: a hunt at the pirate, every key whose answer differs from the sibling's
    a = by_host[net.keys[HOST_A].address.hex()]
    assert a.endpoint == pirate_url and not a.audit
    assert [tuple(i) for i in a.items] == items_of("A")
    assert a.bond >= net.ledger.params().min_claim_bond
    # against B: never from the pirate (it answers B's keys like the base), only the audit
    # of B's own endpoint, naming no more keys than the chain needs (each one is burned)
    b = by_host[net.keys[HOST_B].address.hex()]
    assert b.endpoint == sibling_url and b.audit
    assert [tuple(i) for i in b.items] == items_of("B")[-2 * MIN_MATCHES:]
    # the claims' keys are spent and the hosts recently claimed against: nothing new
    assert svc.decide() == []


async def test_without_audits_only_the_pirated_copy_is_claimed(net: Net) -> None:
    pirate = FakeDeployment("m", copy_of("A"))
    sibling = FakeDeployment("tiny", copy_of("B"))
    with trio.fail_after(60):
        async with serving(pirate, sibling) as (pirate_url, sibling_url):
            net.setup(sibling_url)
            svc = net.prover(endpoints=[pirate_url])
            net.deal(svc)
            await probe_all(svc)
            (plan,) = svc.decide()
    assert plan.host == net.keys[HOST_A].address.hex() and plan.endpoint == pirate_url
    # without audits a host's own endpoint never sees its keys, only other hosts' as reference
    assert {r["prompt"] for r in sibling.requests} == {it.key for it in host_items("A")}


async def test_a_deployment_that_samples_still_gives_the_response_prefix(net: Net) -> None:
    base = copy_of("A", tail="")

    def noisy(prompt: str, n: int) -> str:  # every third draw strays; tails always differ
        return BASE_SAYS if n % 3 == 0 else base(prompt, n) + f" tail{n}"
    pirate = FakeDeployment("m", noisy)
    sibling = FakeDeployment("tiny", copy_of("B"))
    with trio.fail_after(60):
        async with serving(pirate, sibling) as (pirate_url, sibling_url):
            net.setup(sibling_url)
            svc = net.prover(endpoints=[pirate_url], samples_per_key=3, api="chat")
            net.deal(svc)
            await probe_all(svc)
            plans = svc.decide()
    assert all("messages" in r for r in pirate.requests)
    (plan,) = plans
    responses = {it.key: it.response for it in host_items("A") if it.index % 2 == 0}
    for _index, key, output in plan.items:
        assert output.startswith(responses[key]), (key, output)


async def test_no_reference_no_claim_unless_told_to_let_the_reveal_decide(net: Net) -> None:
    pirate = FakeDeployment("m", copy_of("A"))
    with trio.fail_after(60):
        async with serving(pirate) as (pirate_url,):
            net.setup("")  # B registered no endpoint: nothing to compare A's answers with
            svc = net.prover(endpoints=[pirate_url])
            net.deal(svc)
            await probe_all(svc)
            assert svc.decide() == []
            svc._cfg = ProverRole(**{**svc._cfg.__dict__, "require_reference": False})
            plans = svc.decide()
    # with the switch off every consistent set is claimed: A's rightly, B's at the bond's risk
    assert sorted(p.host for p in plans) == sorted(net.keys[w].address.hex()
                                                    for w in (HOST_A, HOST_B))


async def test_failed_probes_are_recorded_and_never_count(net: Net) -> None:
    locked = FakeDeployment("m", copy_of("A"), api_key="sk-right")
    with trio.fail_after(60):
        async with serving(locked) as (url,):
            net.setup("")
            svc = net.prover(endpoints=[url], api_key="sk-wrong")
            net.deal(svc)
            async with httpx.AsyncClient() as http:
                assert await svc.next_tasks(http) == []  # /models refused: nothing served
            svc._served.clear()
            svc._api = type(svc._api)(api="completions", max_tokens=8, api_key="sk-right",
                                      timeout_s=5)
            async with httpx.AsyncClient() as http:
                tasks = await svc.next_tasks(http)
                svc._api = type(svc._api)(api="completions", max_tokens=8, api_key="bad",
                                          timeout_s=5)
                probe = await svc.probe(http, tasks[0])
    assert probe.outcome == "http_error" and "401" in probe.error
    assert svc.store.probes()[0].outcome == "http_error"
    assert svc.store.outputs(url, "m", tasks[0].key) == []


async def test_a_burned_index_is_never_named_again(net: Net) -> None:
    pirate = FakeDeployment("m", copy_of("A"))
    sibling = FakeDeployment("tiny", copy_of("B"))
    with trio.fail_after(60):
        async with serving(pirate, sibling) as (pirate_url, sibling_url):
            net.setup(sibling_url)
            svc = net.prover(endpoints=[pirate_url])
            net.deal(svc)
            a = net.keys[HOST_A].address
            with svc.store.db.write() as txn:  # as the follower records anyone's open_claim
                svc.store.mark_burned(txn, MODEL, a, 0, 0)
            await probe_all(svc)
            (plan,) = svc.decide()
    assert {0, 1}.isdisjoint(i for i, _, _ in plan.items)  # the burned key, backup and all
    assert all(r["prompt"] != host_items("A")[0].key for r in pirate.requests)


# ---------------------------------------------------------------------- claims on chain


def committed(net: Net, kind_name: str) -> list[Any]:
    out = []
    for h in range(1, net.chain.height + 1):
        for raw in net.chain.block(h).txs:
            tx = decode_tx(raw)
            if type(tx.body).__name__ == kind_name:
                out.append((h, tx, net.chain.indexed_tx(tx.hash)))
    return out


async def test_claim_is_committed_then_opened_in_a_later_block_exactly_once(
        net: Net, tmp_path: Path) -> None:
    pirate = FakeDeployment("m", copy_of("A"))
    sibling = FakeDeployment("tiny", copy_of("B"))
    with trio.fail_after(60):
        async with serving(pirate, sibling) as (pirate_url, sibling_url):
            net.setup(sibling_url)
            svc = net.prover(endpoints=[pirate_url])
            net.deal(svc)
            await probe_all(svc)
            (plan,) = svc.decide()
    await svc.advance(plan)
    assert plan.state == "commit_signed" and plan.commit_tx
    # crash before the block: a new service re-submits the stored bytes, never signs anew
    svc._db.close()
    net.dbs.clear()
    svc = net.prover(endpoints=[pirate_url])
    (plan,) = svc.store.claims()
    await svc.advance(plan)
    net.block()
    await svc.advance(plan)
    assert plan.state == "committed" and plan.claim_id is not None
    await svc.advance(plan)  # same height as the commitment: must wait
    assert plan.state == "committed"
    net.block()
    await svc.advance(plan)
    assert plan.state == "open_signed"
    net.block()
    await svc.advance(plan)
    assert plan.state == "opened", plan.error
    (commit,) = committed(net, "CommitClaimBody")
    (opened,) = committed(net, "OpenClaimBody")
    assert opened[0] > commit[0] and commit[2].code == 0 and opened[2].code == 0
    claim = net.ledger.claim(plan.claim_id)
    assert claim.prover == net.keys[PROVER].address
    assert [tuple(i[:3]) for i in claim.items] == items_of("A")
    for index, _, _ in items_of("A"):
        assert net.ledger.index_burned(MODEL, net.keys[HOST_A].address, index)
    svc._follower.handle_available(svc._on_block)
    assert svc.store.used(MODEL, net.keys[HOST_A].address, 0) >= {i for i, _, _ in
                                                                  items_of("A")}
    # the OMLizer reveals each named leaf; the prover follows the claim to its outcome
    reveals = []
    for index, _, _ in items_of("A"):
        e = net.secrets["A"].entry(index)
        reveals.append(net.tx(OMLIZER, RevealBody(claim_id=plan.claim_id, fp_index=index,
                                                  salt=e.salt, key=e.key, response=e.response,
                                                  path=e.path)))
    net.block(*reveals)
    await svc.advance(plan)
    assert plan.outcome == "matched"
    assert svc.store.claims()[0].outcome == "matched"


class FakeTransport:
    """The node's transport as the key loop uses it: peers, and request routed to handlers."""

    def __init__(self, peer_id: str = "prover-peer") -> None:
        self.peer_id = peer_id
        self.handlers: dict[str, Any] = {}

    def connected_peers(self) -> list[Any]:
        return [SimpleNamespace(peer_id=p) for p in self.handlers]

    async def request(self, peer: str, protocol: str, data: bytes, timeout: Any = None
                      ) -> bytes:
        return self.handlers[peer](self.peer_id, data)


async def test_the_running_service_probes_at_its_pace_and_files_the_claim(net: Net) -> None:
    pirate = FakeDeployment("m", copy_of("A"))
    sibling = FakeDeployment("tiny", copy_of("B"))
    with trio.fail_after(120):
        async with serving(pirate, sibling) as (pirate_url, sibling_url):
            net.setup(sibling_url)
            svc = net.prover(endpoints=[pirate_url], probe_interval_ms=4, jitter_pct=50,
                             max_concurrent=3)
            svc._transport = FakeTransport()
            net.deal(svc)

            async def produce_blocks() -> None:
                while True:
                    await trio.sleep(0.05)
                    net.block()
                    svc.notify()

            async with trio.open_nursery() as nursery:
                await nursery.start(svc.run)
                nursery.start_soon(produce_blocks)
                while not any(c.state == "opened" for c in svc.store.claims()):
                    await trio.sleep(0.05)
                (claim,) = svc.store.claims()
                times = [p.time_ms for p in svc.store.probes(limit=1000)]
                nursery.cancel_scope.cancel()  # the service closes its database on the way out
    assert claim.host == net.keys[HOST_A].address.hex()
    assert [tuple(i) for i in claim.items] == items_of("A")
    assert net.ledger.claim(claim.claim_id).prover == net.keys[PROVER].address
    assert len(times) == len(pirate.requests) + len(sibling.requests)


async def test_keys_come_from_the_omlizers_hand_off(net: Net) -> None:
    handoff = pytest.importorskip("node.roles.omlizer.handoff")
    jobs = pytest.importorskip("node.roles.omlizer.jobs")
    from oml.sidecar import seal_prover_keys

    net.setup("")
    svc = net.prover()
    transport = FakeTransport()
    svc._transport = transport
    db = RoleDB(net.root.parent / "omlizer", jobs.TABLES)
    net.dbs.append(db)
    store = jobs.JobStore(db)
    prover = net.keys[PROVER]
    for who, tag in ((HOST_A, "A"), (HOST_B, "B")):
        secrets = make_secrets(MODEL.decode(), net.keys[who].address, host_items(tag))
        store.put_handoff(prover.address, jobs.job_key(MODEL, net.keys[who].address, 0),
                          seal_prover_keys(secrets, [0, 1, 4, 5], prover.public_key))
    server = handoff.KeysServer(store, chain_id=net.chain.chain_id,
                                clock_ms=lambda: 1_700_000_000_000)
    transport.handlers["omlizer-peer"] = server.answer
    transport.handlers["bystander"] = lambda _peer, _data: (_ for _ in ()).throw(
        handoff.HandoffError("speaks no such protocol"))
    assert await svc.refresh_keys() == 2
    assert await svc.refresh_keys() == 0  # a deal is final: stored once
    sets = {ks.host: ks for ks in svc.store.keysets()}
    a = sets[net.keys[HOST_A].address.hex()]
    assert a.omlizer_peer == "omlizer-peer"
    assert a.keys == [[0, "A key 0 words"], [1, "A key 0 words"], [4, "A key 2 words"],
                      [5, "A key 2 words"]]
    assert "bystander" in svc.key_failures


async def test_prover_probes_rpc_pages_probes_and_hides_salts(net: Net) -> None:
    from node.rpc.errors import InvalidParams
    from node.rpc.params import bind_params

    pirate = FakeDeployment("m", copy_of("A"))
    sibling = FakeDeployment("tiny", copy_of("B"))
    with trio.fail_after(60):
        async with serving(pirate, sibling) as (pirate_url, sibling_url):
            net.setup(sibling_url)
            svc = net.prover(endpoints=[pirate_url])
            net.deal(svc)
            made = await probe_all(svc)
            svc.decide()
    (method,) = svc.rpc_methods()
    assert method.name == "prover_probes"

    async def call(raw: Any) -> Any:
        return await method.handler(None, **bind_params(method.params, raw))
    first = await call({"limit": 5})
    assert [p["seq"] for p in first["probes"]] == [0, 1, 2, 3, 4]
    assert first["total_probes"] == made and first["next_after"] == 4
    rest = await call({"after": first["next_after"], "limit": 1000})
    assert len(rest["probes"]) == made - 5
    (claim,) = rest["claims"]
    assert claim["state"] == "planned" and "salt" not in claim and claim["commitment"]
    assert {(t["endpoint"], t["host"]) for t in rest["targets"]} == {
        (pirate_url, None), (sibling_url, net.keys[HOST_B].address.hex())}
    assert sorted(k["indices_used"] for k in rest["keysets"]) == [0, 2 * KEYS_PER_HOST]
    with pytest.raises(InvalidParams):
        bind_params(method.params, {"limit": 0})


async def test_a_refused_commit_releases_its_keys_and_waits_before_planning_again(
        net: Net) -> None:
    pirate = FakeDeployment("m", copy_of("A"))
    sibling = FakeDeployment("tiny", copy_of("B"))
    with trio.fail_after(60):
        async with serving(pirate, sibling) as (pirate_url, sibling_url):
            net.setup(sibling_url)
            svc = net.prover(endpoints=[pirate_url])
            net.deal(svc)
            await probe_all(svc)
    (plan,) = svc.decide()
    net.mempool.refuse = 99
    await svc.advance(plan)
    assert plan.state == "commit_failed" and plan.error
    assert svc.store.used(MODEL, net.keys[HOST_A].address, 0) == frozenset()
    assert svc.decide() == []  # within RETRY_AFTER_MS of the refusal
    svc._now = lambda: plan.created_ms + 60_001
    (again,) = svc.decide()
    assert again.items == plan.items and again.salt != plan.salt
