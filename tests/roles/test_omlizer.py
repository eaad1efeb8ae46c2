"""The OMLizer role's job state machine, follower handler, reveals and key hand-off.

The chain is real (a :class:`node.chain.Chain` with its ledger, fed signed
blocks by ``Producer``), so every commit and reveal the service posts is
checked by the real ledger. Storage and the worker are fakes implementing
the service's Protocols; the fake worker hands out one real package built
once per session by the real worker subprocess (with a tiny model).
"""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
import stat
from dataclasses import asdict, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import trio

from consensus.crypto import PrivateKey
from node.config import OmlizerRole
from node.ledger import CommitClaimBody, build_tx, claim_commitment
from node.ledger.records import ClaimStatus, HostStatus
from node.ledger.txs import (
    Kind,
    OpenClaimBody,
    RegisterModelBody,
    RegisterRoleBody,
    RequestAccessBody,
    Role,
    decode_tx,
)
from node.roles.cursor import ChainFollower, RoleDB
from node.roles.omlizer.handoff import (
    HandoffError,
    KeysServer,
    deal,
    decode_response,
    make_request,
)
from node.roles.omlizer.jobs import TABLES, Job, Phase, TransitionError, job_key
from node.roles.omlizer.runner import Outcome, SubprocessRunner
from node.roles.omlizer.service import OmlizerService
from node.roles.omlizer.worker import (
    KIND_BAD_INPUT,
    KIND_BELOW_ACCURACY,
    OWNER_SIDECAR,
    PACKAGE_DIR,
    RESULT_FILE,
    SELF_SEALED,
    WorkerResult,
    WorkerSpec,
)
from node.roles.txsender import TxSender
from tests.daemon._chainkit import Producer, close_chain, make_genesis, open_chain

MODEL = b"tiny"
BLOB = bytes(range(32))
OMLIZER, OWNER, HOST, PROVER, HOST2 = range(5)
NOW_MS = 1_700_000_000_000


# ---------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def keys() -> list[PrivateKey]:
    return make_genesis(n_accounts=5)[2]


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from oml.testing import make_tiny_model_dir

    return make_tiny_model_dir(tmp_path_factory.mktemp("base") / "tiny", pretrain_steps=20)


def fast_config(**kw: Any) -> OmlizerRole:
    base = dict(enabled=True, fingerprints=4, backups=1, epochs=150, batch_size=8, lr=3e-3,
                freeze_embeddings=False, min_accuracy=0.9, torch_threads=1, job_timeout_s=300)
    base.update(kw)
    return OmlizerRole(**base)


@pytest.fixture(scope="module")
def real_attempt(tmp_path_factory: pytest.TempPathFactory, tiny_base: Path,
                 keys: list[PrivateKey]) -> Path:
    """One real worker run (subprocess, tiny model) for HOST: its work dir, reused by fakes."""
    work = tmp_path_factory.mktemp("attempt")
    cfg = fast_config()
    spec = WorkerSpec(base_dir=str(tiny_base), work_dir=str(work), model_id=MODEL.decode(),
                      host=keys[HOST].address.hex(), owner_pubkey=keys[OWNER].public_key.hex(),
                      omlizer_seed=keys[OMLIZER].seed.hex(), gen_seed=7, count=cfg.fingerprints,
                      min_accuracy=cfg.min_accuracy, backups=cfg.backups, epochs=cfg.epochs,
                      lr=cfg.lr, batch_size=cfg.batch_size, freeze_embeddings=False,
                      torch_threads=1)
    steps: list[str] = []
    outcome = trio.run(functools.partial(SubprocessRunner().run, spec, timeout_s=300,
                                         on_progress=steps.append))
    assert outcome.result is not None, outcome.error
    assert outcome.result.ok, outcome.result
    assert steps == ["import", "load", "generate", "train", "verify", "package"]
    for name in (SELF_SEALED, OWNER_SIDECAR):
        assert stat.S_IMODE((work / name).stat().st_mode) == 0o600
    return work


class FakeRunner:
    """Plays scripted outcomes; "ok" copies the real attempt's files into the work dir."""

    def __init__(self, source: Path | None, script: list[str]) -> None:
        self.source = source
        self.script = list(script)
        self.specs: list[WorkerSpec] = []

    async def run(self, spec: WorkerSpec, *, timeout_s: float, on_progress: Any) -> Outcome:
        self.specs.append(spec)
        what = self.script.pop(0) if self.script else "ok"
        on_progress("train")
        work = Path(spec.work_dir)
        if what == "crash":
            return Outcome(None, "worker exited with status -9")
        if what == "bad":
            return Outcome(WorkerResult(ok=False, error_kind=KIND_BAD_INPUT,
                                        error="cannot load model: not a transformers folder"))
        if what == "below":
            return Outcome(WorkerResult(ok=False, error_kind=KIND_BELOW_ACCURACY, accuracy=0.5,
                                        error="2/4 fingerprints answered"))
        assert self.source is not None
        shutil.copytree(self.source / PACKAGE_DIR, work / PACKAGE_DIR)
        for name in (SELF_SEALED, OWNER_SIDECAR):
            shutil.copy(self.source / name, work / name)
        result = WorkerResult.load(self.source / RESULT_FILE)
        (work / RESULT_FILE).write_text(json.dumps(asdict(result)))
        return Outcome(result)


class FakeStorage:
    """Blobs as folders in a dict; ``put`` makes an id from the path and recipients."""

    def __init__(self, blobs: dict[bytes, Path]) -> None:
        self.blobs = blobs
        self.puts: list[tuple[Path, tuple[bytes, ...]]] = []
        self.store = SimpleNamespace(export=self.export)

    async def fetch(self, blob_id: bytes, *, pin: bool = True) -> None:
        from node.roles.storage.errors import BlobNotFound

        if blob_id not in self.blobs:
            raise BlobNotFound(f"no provider has blob {blob_id.hex()}")

    def export(self, blob_id: bytes, out: Path, *, seed: bytes | None = None) -> None:
        src = self.blobs[blob_id]
        if src.is_dir():
            shutil.copytree(src, out)
        else:
            shutil.copy(src, out)

    async def put(self, path: Path, *, recipients: Any = (), pin: bool = True) -> Any:
        self.puts.append((path, tuple(recipients)))
        digest = hashlib.sha256(str(path).encode() + b"".join(recipients)
                                + bytes([len(self.puts)])).digest()
        return SimpleNamespace(blob_id=digest)


class Mempool:
    """The node's mempool as TxSender sees it: admits (dedup by bytes), remembers order."""

    def __init__(self, chain: Any) -> None:
        self.chain = chain
        self.txs: list[bytes] = []
        self.broadcasts = 0

    def account(self, address: bytes) -> Any:
        return self.chain.ledger.account(address)

    async def broadcast_tx(self, tx: bytes) -> Any:
        self.broadcasts += 1
        parsed = decode_tx(tx)
        acct = self.chain.ledger.account(parsed.sender)
        if tx in self.txs:  # what the real mempool answers
            return SimpleNamespace(code=1, codespace="mempool", log="tx already in mempool")
        if acct is not None and parsed.nonce < acct.nonce:
            return SimpleNamespace(code=5, codespace="ledger",
                                   log=f"nonce {parsed.nonce} already used")
        self.txs.append(tx)
        return SimpleNamespace(code=0, codespace="", log="")

    def take(self) -> tuple[bytes, ...]:
        out, self.txs = tuple(self.txs), []
        return out


class Net:
    """A real chain, the ledger as backend, a mempool; builds services on one data dir."""

    def __init__(self, tmp: Path, keys: list[PrivateKey]) -> None:
        # claims of 2 keys: the test packages hold 4 keys (8 leaves with backups)
        genesis, signers, accounts = make_genesis(n_accounts=5,
                                                  params={"claim_min_matches": 2})
        self.chain = open_chain(tmp / "chain", genesis)
        self.producer = Producer(self.chain, signers, accounts)
        self.keys = accounts
        self.nonces = [0] * len(accounts)
        self.mempool = Mempool(self.chain)
        self.root = tmp / "omlizer"
        self.services: list[OmlizerService] = []

    def tx(self, who: int, body: Any) -> bytes:
        raw = build_tx(self.keys[who], self.chain.chain_id, self.nonces[who], body)
        self.nonces[who] += 1
        return raw

    def block(self, *txs: bytes) -> None:
        self.producer.produce(tuple(txs) + self.mempool.take())

    @property
    def ledger(self) -> Any:
        return self.chain.ledger

    def backend(self) -> Any:
        return SimpleNamespace(model=self.ledger.model, account=self.ledger.account,
                               roles=self.ledger.roles, host=self.ledger.host,
                               claim=self.ledger.claim)

    def service(self, storage: FakeStorage, runner: Any, config: OmlizerRole | None = None
                ) -> OmlizerService:
        key = self.keys[OMLIZER]
        db = RoleDB(self.root / "db", TABLES)
        txs = TxSender(signer=key, address=key.address, chain_id=self.chain.chain_id,
                       backend=self.mempool, index=self.chain)
        svc = OmlizerService(config=config or fast_config(), root=self.root, db=db,
                             follower=ChainFollower(db, self.chain), storage=storage, txs=txs,
                             backend=self.backend(), chain=self.chain, transport=None,
                             account_seed=key.seed, account_pub=key.public_key,
                             address=key.address, chain_id=self.chain.chain_id, runner=runner,
                             clock_ms=lambda: NOW_MS)
        self.services.append(svc)
        return svc

    def follow(self, svc: OmlizerService) -> int:
        return svc._follower.handle_available(svc._on_block)

    def close(self) -> None:
        for svc in self.services:
            svc._db.close()
        close_chain(self.chain)


@pytest.fixture
def net(tmp_path: Path, keys: list[PrivateKey]):
    n = Net(tmp_path, keys)
    yield n
    n.close()


def setup_model(net: Net, weights_hash: bytes, *, omlizers: tuple[bytes, ...] | None = None,
                prover: bool = True) -> None:
    k = net.keys
    txs = [net.tx(OMLIZER, RegisterRoleBody(role=Role.OMLIZER, bond=5_000)),
           net.tx(OWNER, RegisterModelBody(
               model_id=MODEL, weights_hash=weights_hash, min_collateral=10,
               omlizers=omlizers if omlizers is not None else (k[OMLIZER].address,),
               blob_id=BLOB))]
    if prover:
        txs.append(net.tx(PROVER, RegisterRoleBody(role=Role.PROVER, bond=5_000)))
    net.block(*txs)


def request(net: Net, who: int = HOST) -> None:
    net.block(net.tx(who, RequestAccessBody(model_id=MODEL, collateral=1_000)))


def committed_kinds(net: Net, kind: Kind) -> list[Any]:
    out = []
    for h in range(1, net.chain.height + 1):
        for raw in net.chain.block(h).txs:
            tx = decode_tx(raw)
            if tx.kind == kind:
                out.append((tx, net.chain.indexed_tx(tx.hash)))
    return out


def weights_hash_of(path: Path) -> bytes:
    from oml.hashing import weights_hash

    return weights_hash(path)


# ---------------------------------------------------------------------- pure parts


def test_phase_table_forbids_skipping_and_leaving_final_states() -> None:
    job = Job(model_id="aa", host="bb" * 20, host_pubkey="", generation=0, requested_height=1,
              phase_started_ms=1000)
    with pytest.raises(TransitionError):
        job.move(Phase.COMMITTING, 2000)
    job.move(Phase.FETCHING_BASE, 2500)
    assert job.timings == {"queued": 1.5}
    job.move(Phase.FAILED, 3000, error="boom")
    assert job.error == "boom"
    with pytest.raises(TransitionError):
        job.move(Phase.FINGERPRINTING, 4000)
    assert Job.decode(job.encode()) == job


def test_deal_is_disjoint_deterministic_and_keeps_backups_together() -> None:
    groups = [[2 * i, 2 * i + 1] for i in range(10)]
    provers = [bytes([p]) * 20 for p in (3, 1, 2)]
    a = deal(groups, provers, b"seed")
    assert a == deal(groups, list(reversed(provers)), b"seed")
    assert a != deal(groups, provers, b"other seed")
    dealt = [i for ix in a.values() for i in ix]
    assert sorted(dealt) == list(range(20))  # every index once: disjoint and complete
    for ix in a.values():
        assert all((i ^ 1) in ix for i in ix)  # a key's backup goes with it
    assert deal(groups, [], b"seed") == {}


# ---------------------------------------------------------------------- follower


async def test_follower_queues_only_authorised_successful_requests(net: Net, tiny_base: Path,
                                                                   keys) -> None:
    setup_model(net, weights_hash_of(tiny_base))
    other = b"x" * 1 + MODEL
    net.block(net.tx(OWNER, RegisterModelBody(model_id=other, weights_hash=bytes(32),
                                              omlizers=(keys[OWNER].address,))))
    net.block(net.tx(HOST2, RequestAccessBody(model_id=other, collateral=0)),  # not ours
              net.tx(HOST, RequestAccessBody(model_id=b"nope", collateral=0)),  # fails
              net.tx(HOST, RequestAccessBody(model_id=MODEL, collateral=1)))  # below minimum
    request(net)
    svc = net.service(FakeStorage({}), FakeRunner(None, []))
    net.follow(svc)
    jobs = svc.jobs.jobs()
    assert [(j.model_id, j.host, j.phase) for j in jobs] == \
        [(MODEL.hex(), keys[HOST].address.hex(), "queued")]
    assert jobs[0].host_pubkey == keys[HOST].public_key.hex()
    net.follow(svc)
    assert len(svc.jobs.jobs()) == 1  # a block is handled once


# ---------------------------------------------------------------------- whole jobs


async def test_job_commits_once_across_a_restart_then_reveals_and_deals(
        net: Net, tiny_base: Path, real_attempt: Path, keys) -> None:
    setup_model(net, weights_hash_of(tiny_base))
    request(net)
    storage = FakeStorage({BLOB: tiny_base})
    runner = FakeRunner(real_attempt, ["ok"])
    svc = net.service(storage, runner)
    net.follow(svc)
    key = job_key(MODEL, keys[HOST].address, 0)
    job = await svc.advance(key)
    assert job is not None and job.state == Phase.COMMITTING
    assert job.commit_tx and job.package_blob and job.attempts == 1
    assert storage.puts[0][1] == (keys[HOST].public_key,)  # encrypted to the host
    assert runner.specs[0].omlizer_seed == keys[OMLIZER].seed.hex()
    first_tx = job.commit_tx
    for path in (svc.secrets_path(job), svc.sidecar_path(job)):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600

    # crash before the block: a new service on the same files re-submits the same bytes
    svc._db.close()
    net.services.remove(svc)
    net.mempool.take()  # the mempool of the killed node is gone
    svc = net.service(storage, FakeRunner(None, ["crash"]))
    job = await svc.advance(key)
    assert job is not None and job.commit_tx == first_tx
    net.block()
    net.follow(svc)
    job = await svc.advance(key)
    assert job is not None and job.state == Phase.COMMITTED, job
    commits = committed_kinds(net, Kind.COMMIT_OMLIZATION)
    assert len(commits) == 1 and commits[0][1].code == 0
    host = net.ledger.host(MODEL, keys[HOST].address)
    assert host.status == HostStatus.ACTIVE and host.fp_root.hex() == job.fp_root
    assert not (svc._root / "jobs" / job.job_id).exists()  # work files removed

    # the registered prover was dealt keys, served only to itself
    assert job.handoff_provers == 1
    server = KeysServer(svc.jobs, chain_id=net.chain.chain_id, clock_ms=lambda: NOW_MS)
    entries, more = decode_response(server.answer(
        "peerA", make_request(keys[PROVER].seed, net.chain.chain_id, "peerA", NOW_MS)))
    assert not more and [(m, h, g) for m, h, g, _ in entries] == \
        [(MODEL, keys[HOST].address, 0)]
    from oml.sidecar import open_prover_keys, open_secrets

    dealt = open_prover_keys(entries[0][3], keys[PROVER].seed)
    secrets = open_secrets(svc.secrets_path(job).read_bytes(), keys[OMLIZER].seed)
    assert [i for i, _ in dealt.keys] == [e.index for e in secrets.entries]
    assert decode_response(server.answer("peerB", make_request(
        keys[HOST].seed, net.chain.chain_id, "peerB", NOW_MS)))[0] == []
    with pytest.raises(HandoffError, match="another peer"):
        server.answer("peerB", make_request(keys[PROVER].seed, net.chain.chain_id, "peerA",
                                            NOW_MS))
    with pytest.raises(HandoffError, match="stale"):
        server.answer("peerA", make_request(keys[PROVER].seed, net.chain.chain_id, "peerA",
                                            NOW_MS - 3_600_000))
    with pytest.raises(HandoffError, match="signature"):
        server.answer("peerA", make_request(keys[PROVER].seed, "other-chain", "peerA", NOW_MS))

    # a claim against the host gets a reveal per claimed leaf the ledger accepts, each
    # posted once; the commitment alone asks for nothing
    first = {}
    for e in secrets.entries:  # one leaf of each of two keys (keys have backup leaves)
        first.setdefault(e.key, e)
    items = tuple((e.index, e.key, e.response + " and more") for e in list(first.values())[:2])
    salt = bytes(32)
    commitment = claim_commitment(net.chain.chain_id, keys[PROVER].address, MODEL,
                                  keys[HOST].address, items, salt)
    net.block(net.tx(PROVER, CommitClaimBody(model_id=MODEL, host=keys[HOST].address,
                                             commitment=commitment, bond=1_000)))
    net.follow(svc)
    assert svc.jobs.reveals() == []
    net.block(net.tx(PROVER, OpenClaimBody(claim_id=0, items=items, salt=salt)))
    net.follow(svc)
    reveals = svc.jobs.reveals()
    assert [(r.claim_id, r.fp_index) for r in reveals] == [(0, i) for i, _k, _o in items]
    for reveal in reveals:
        await svc.reveal_one(reveal)
    for reveal in svc.jobs.reveals():
        await svc.reveal_one(reveal)  # a second pass re-submits the same bytes
    net.block()
    net.follow(svc)
    reveals = svc.jobs.reveals()
    assert all(r.state == "done" and r.matched == 1 for r in reveals), reveals
    assert net.ledger.claim(0).status == ClaimStatus.MATCHED
    assert len(committed_kinds(net, Kind.REVEAL)) == 2

    # a false claim is decided by its first revealed leaf; the rest are not posted
    wrong = tuple((e.index, e.key, "not the response") for e in list(first.values())[2:4])
    commitment = claim_commitment(net.chain.chain_id, keys[PROVER].address, MODEL,
                                  keys[HOST].address, wrong, salt)
    net.block(net.tx(PROVER, CommitClaimBody(model_id=MODEL, host=keys[HOST].address,
                                             commitment=commitment, bond=1_000)))
    net.block(net.tx(PROVER, OpenClaimBody(claim_id=1, items=wrong, salt=salt)))
    net.follow(svc)
    todo = [r for r in svc.jobs.reveals() if r.claim_id == 1]
    await svc.reveal_one(todo[0])
    net.block()
    net.follow(svc)
    assert net.ledger.claim(1).status == ClaimStatus.FALSE
    await svc.reveal_one(todo[1])
    late = [r for r in svc.jobs.reveals() if r.claim_id == 1]
    assert [r.state for r in late] == ["done", "done"] and late[0].matched == 0
    assert late[1].tx == "" and "already false" in late[1].error
    assert len(committed_kinds(net, Kind.REVEAL)) == 3
    view = svc.jobs_json()
    assert view["jobs"][0]["state"] == "committed" and "commit_tx" not in view["jobs"][0]


async def test_below_accuracy_retries_with_doubled_epochs_then_fails_uncommitted(
        net: Net, tiny_base: Path, keys) -> None:
    setup_model(net, weights_hash_of(tiny_base))
    request(net)
    runner = FakeRunner(None, ["below", "crash", "below"])
    svc = net.service(FakeStorage({BLOB: tiny_base}), runner, fast_config(max_attempts=3))
    net.follow(svc)
    job = await svc.advance(job_key(MODEL, keys[HOST].address, 0))
    assert [s.epochs for s in runner.specs] == [150, 300, 600]
    assert job is not None and job.state == Phase.FAILED and job.attempts == 3
    assert "accuracy floors" in job.error and "2/4" in job.error
    assert not job.commit_tx and not net.mempool.txs
    assert svc.jobs_json("failed")["jobs"][0]["error"] == job.error


async def test_bad_inputs_fail_with_reasons_and_later_jobs_still_run(
        net: Net, tiny_base: Path, real_attempt: Path, tmp_path: Path, keys) -> None:
    not_a_model = tmp_path / "junk"
    not_a_model.mkdir()
    (not_a_model / "readme.txt").write_text("hello")
    setup_model(net, weights_hash_of(tiny_base))
    request(net, HOST2)
    request(net, HOST)
    storage = FakeStorage({BLOB: not_a_model})
    svc = net.service(storage, FakeRunner(real_attempt, ["bad", "ok"]))
    net.follow(svc)
    job = await svc.advance(job_key(MODEL, keys[HOST2].address, 0))
    assert job is not None and job.state == Phase.FAILED
    assert "not a model folder" in job.error or "weights hash" in job.error
    storage.blobs[BLOB] = tiny_base  # the owner re-published a real model
    job = await svc.advance(job_key(MODEL, keys[HOST].address, 0))
    assert job is not None and job.state == Phase.FAILED
    assert "not a transformers folder" in job.error  # the worker's bad-input verdict


async def test_unauthorised_omlizer_never_acts(net: Net, tiny_base: Path, keys) -> None:
    setup_model(net, weights_hash_of(tiny_base), omlizers=(keys[OWNER].address,))
    request(net)
    runner = FakeRunner(None, [])
    svc = net.service(FakeStorage({BLOB: tiny_base}), runner)
    net.follow(svc)
    assert svc.jobs.jobs() == [] and runner.specs == [] and not net.mempool.broadcasts


async def test_wrong_weights_hash_fails_before_training(net: Net, tiny_base: Path,
                                                        keys) -> None:
    setup_model(net, bytes(32))
    request(net)
    runner = FakeRunner(None, [])
    svc = net.service(FakeStorage({BLOB: tiny_base}), runner)
    net.follow(svc)
    job = await svc.advance(job_key(MODEL, keys[HOST].address, 0))
    assert job is not None and job.state == Phase.FAILED and "weights hash" in job.error
    assert runner.specs == []


def test_config_rejects_omlizer_without_storage_and_bad_recipes() -> None:
    from node.config import ConfigError, config_from_dict

    with pytest.raises(ConfigError, match=r"roles.storage"):
        config_from_dict({"roles": {"omlizer": {"enabled": True}}})
    with pytest.raises(ConfigError, match="backups"):
        config_from_dict({"roles": {"omlizer": {"response_strategy": "random_words"}}})
    with pytest.raises(ConfigError, match="min_accuracy"):
        config_from_dict({"roles": {"omlizer": {"min_accuracy": 1.5}}})
    cfg = config_from_dict({"roles": {"storage": {"enabled": True},
                                      "omlizer": {"enabled": True, "min_accuracy": 1}}})
    assert cfg.roles.omlizer.min_accuracy == 1.0
    assert replace(cfg.roles.omlizer, fingerprints=8).fingerprints == 8


def test_real_worker_reports_a_folder_transformers_cannot_load(tiny_base: Path,
                                                              tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny_base, broken)
    conf = json.loads((broken / "config.json").read_text())
    conf["model_type"] = "no-such-architecture"
    (broken / "config.json").write_text(json.dumps(conf))
    work = tmp_path / "work"
    work.mkdir()
    key = PrivateKey(b"\x05" * 32)
    spec = WorkerSpec(base_dir=str(broken), work_dir=str(work), model_id="m", host="11" * 20,
                      owner_pubkey=key.public_key.hex(), omlizer_seed=key.seed.hex(),
                      gen_seed=1, count=2, min_accuracy=0.9, torch_threads=1)
    outcome = trio.run(functools.partial(SubprocessRunner().run, spec, timeout_s=300,
                                         on_progress=lambda _s: None))
    assert outcome.result is not None, outcome.error
    assert outcome.result.error_kind == KIND_BAD_INPUT
    assert "no-such-architecture" in outcome.result.error or "cannot load" in \
        outcome.result.error
    assert not (work / PACKAGE_DIR).exists() and not (work / SELF_SEALED).exists()


async def test_catching_up_skips_requests_another_omlizer_already_served(
        net: Net, tiny_base: Path, keys) -> None:
    from node.ledger.txs import CommitOmlizationBody

    setup_model(net, weights_hash_of(tiny_base),
                omlizers=(keys[OMLIZER].address, keys[OWNER].address))
    net.block(net.tx(OWNER, RegisterRoleBody(role=Role.OMLIZER, bond=5_000)))
    request(net)
    request(net, HOST2)
    net.block(net.tx(OWNER, CommitOmlizationBody(
        model_id=MODEL, host=keys[HOST].address, package_hash=bytes(32), fp_root=bytes(32),
        fp_count=4, package_blob=bytes(32))))
    svc = net.service(FakeStorage({}), FakeRunner(None, []))  # switched on only now
    net.follow(svc)
    assert [j.host for j in svc.jobs.jobs()] == [keys[HOST2].address.hex()]


async def test_a_commit_whose_nonce_another_tx_took_is_signed_anew_once(
        net: Net, tiny_base: Path, real_attempt: Path, keys) -> None:
    from node.ledger.txs import TransferBody

    setup_model(net, weights_hash_of(tiny_base))
    request(net)
    svc = net.service(FakeStorage({BLOB: tiny_base}), FakeRunner(real_attempt, ["ok"]))
    net.follow(svc)
    key = job_key(MODEL, keys[HOST].address, 0)
    first = (await svc.advance(key)).commit_tx
    net.mempool.take()  # lost with a crashed node's mempool...
    # ...and the operator used the account by hand meanwhile: the nonce is gone
    assert decode_tx(bytes.fromhex(first)).nonce == net.nonces[OMLIZER]
    net.block(net.tx(OMLIZER, TransferBody(to=keys[OWNER].address, amount=1)))
    job = await svc.advance(key)
    assert job.commit_tx == first and not net.mempool.txs  # refused: wait for one more block
    net.block()
    job = await svc.advance(key)
    assert job.commit_tx != first and net.mempool.txs == [bytes.fromhex(job.commit_tx)]
    net.block()
    net.follow(svc)
    assert (await svc.advance(key)).state == Phase.COMMITTED
    assert [t.hash.hex() for t, _ in committed_kinds(net, Kind.COMMIT_OMLIZATION)] == \
        [job.commit_hash]
