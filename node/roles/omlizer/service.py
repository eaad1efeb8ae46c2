"""The OMLizer role: from a host's access request to a committed, delivered package, unattended.

Three loops share the role's LMDB environment (``data/roles/omlizer/db``):

- **follow**: :class:`~.follow.BlockRecorder` records jobs, reveals and
  commit outcomes from committed blocks, atomically with the role's cursor.
- **jobs**: one job at a time (training saturates the machine), phase by
  phase (see :mod:`.jobs`): fetch and decrypt the base blob; fingerprint
  in a worker process (:mod:`.worker`), retried with twice the steps while
  the accuracy on its own keys is below ``min_accuracy``; check the package
  and file its secrets; store it as a blob encrypted to the host; post
  ``commit_omlization`` (signed bytes stored first); deal the host's keys to
  the registered provers (:mod:`.handoff`).
- **reveals**: for each claim against a host it committed, post ``reveal``
  from its own sealed copy of the secrets before the window closes.

Files (``data/roles/omlizer/``, directories mode 0700): ``jobs/<job id>/``
(the decrypted base, the attempts' work dirs; removed once committed or
failed), ``secrets/<job id>.sealed`` (the secrets sealed to this node's
own key, what it reveals from) and ``sidecars/<job id>.owner`` (the owner's
audit: keys, leaf hashes and paths, no responses or salts, sealed to the
model owner), both mode 0600.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import trio

from node.config import OmlizerRole
from node.ledger.errors import Code
from node.ledger.txs import CommitOmlizationBody, RevealBody, Role, tx_hash
from node.rpc.methods import Context, Method
from node.rpc.params import Param, Text

from ..cursor import ChainFollower, RoleDB
from ..txsender import TxSendError
from .follow import BlockRecorder
from .handoff import PROTOCOL as KEYS_PROTOCOL
from .handoff import KeysServer, deal, key_groups
from .jobs import TABLES, Job, JobStore, Phase, Reveal, RevealState
from .runner import Runner, SubprocessRunner
from .worker import (
    KIND_BAD_INPUT,
    OWNER_SIDECAR,
    PACKAGE_DIR,
    SELF_SEALED,
    WorkerResult,
    WorkerSpec,
)

if TYPE_CHECKING:
    from ..base import RoleContext

log = logging.getLogger("node.roles.omlizer")

POLL_S = 2.0
"""How often unfinished commits and reveals are re-checked (and re-submitted)."""
FETCH_TRIES = 3
FETCH_BACKOFF_S = 5.0
_GEN_DOMAIN = b"oml/omlizer/gen-seed/v1"


class JobFailed(Exception):
    """A job cannot succeed (bad input, out of attempts); the message goes into its record."""


class Storage(Protocol):
    """What the OMLizer uses of the node's storage role (StorageService has it)."""

    store: Any

    async def fetch(self, blob_id: bytes, *, pin: bool = True) -> None: ...

    async def put(self, path: Path, *, recipients: Sequence[bytes] = (), pin: bool = True
                  ) -> Any: ...


def _now_ms() -> int:
    return int(time.time() * 1000)


def _private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


class OmlizerService:
    """One node's OMLizer. Build with :meth:`from_context`; the daemon runs :meth:`run`."""

    name = "omlizer"

    def __init__(self, *, config: OmlizerRole, root: Path, db: RoleDB, follower: ChainFollower,
                 storage: Storage, txs: Any, backend: Any, chain: Any, transport: Any,
                 account_seed: bytes, account_pub: bytes, address: bytes, chain_id: str,
                 runner: Runner | None = None, clock_ms: Callable[[], int] = _now_ms) -> None:
        self._cfg = config
        self._root = _private_dir(root)
        self._db = db
        self.jobs = JobStore(db)
        self._follower = follower
        self._storage = storage
        self._txs = txs
        self._backend = backend
        self._chain = chain
        self._transport = transport
        self._seed = account_seed
        self._pub = account_pub
        self._address = address
        self._chain_id = chain_id
        self._runner = runner or SubprocessRunner()
        self._now = clock_ms
        self.recorder = BlockRecorder(self.jobs, me=address, model_of=backend.model,
                                      result_of=chain.indexed_tx, clock_ms=clock_ms,
                                      host_of=getattr(backend, "host", None))
        self.keys_server = KeysServer(self.jobs, chain_id=chain_id, clock_ms=clock_ms)
        self._steps: dict[str, str] = {}
        self._refused_at: dict[bytes, int] = {}
        self._wake_jobs = trio.Event()
        self._wake_reveals = trio.Event()
        self._deal_pending = True

    @classmethod
    def from_context(cls, ctx: RoleContext, storage: Storage) -> OmlizerService:
        root = ctx.role_dir("omlizer")
        db = RoleDB(_private_dir(root / "db"), TABLES)
        follower = ChainFollower(db, ctx.chain)
        ctx.on_committed(follower.notify)
        return cls(config=ctx.config.roles.omlizer, root=root, db=db, follower=follower,
                   storage=storage, txs=ctx.txs, backend=ctx.backend, chain=ctx.chain,
                   transport=ctx.transport, account_seed=ctx.account_seed,
                   account_pub=ctx.account_pub, address=ctx.txs.address,
                   chain_id=ctx.txs.chain_id)

    # ------------------------------------------------------------------ lifecycle

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        try:
            if self._transport is not None:
                self._transport.set_handler(KEYS_PROTOCOL, self.keys_server.handle)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._follower.follow, self._on_block)
                nursery.start_soon(self._job_loop)
                nursery.start_soon(self._reveal_loop)
                task_status.started()
        finally:
            self._db.close()

    def _on_block(self, block: Any, txn: Any) -> None:
        self.recorder(block, txn)
        rec = self.recorder.last
        if rec.jobs:
            self._wake_jobs.set()
        if rec.reveals:
            self._wake_reveals.set()
        if rec.new_prover or rec.commits:
            self._deal_pending = True  # the follower may finish a job: deal and tidy it
            self._wake_jobs.set()

    # ------------------------------------------------------------------ job loop

    async def _job_loop(self) -> None:
        while True:
            self._wake_jobs = trio.Event()
            for job in self.jobs.jobs():
                if not job.state.final:
                    await self.advance(job.key)
            if self._deal_pending:
                self._deal_pending = False
                self._deal_all()
            with trio.move_on_after(POLL_S):
                await self._wake_jobs.wait()

    async def advance(self, key: bytes) -> Job | None:
        """Drive one job as far as it can go now (to the end, or to waiting for its commit)."""
        job = self.jobs.job(key)
        while job is not None and not job.state.final:
            waiting = False
            try:
                waiting = await self._step(job)
            except JobFailed as exc:
                self._fail(job, str(exc))
            job = self.jobs.job(key)  # the follower may have moved it meanwhile
            if waiting:
                break
        if job is not None and job.state.final:
            self._steps.pop(job.job_id, None)
            if job.state == Phase.COMMITTED:
                self._deal(job)
            self._cleanup(job)
            job = self.jobs.job(key)
        return job

    async def _step(self, job: Job) -> bool:
        """Do the work of the job's phase; True when it now waits on the chain."""
        phase = job.state
        if phase == Phase.QUEUED:
            self._move(job, Phase.FETCHING_BASE)
        elif phase == Phase.FETCHING_BASE:
            await self._fetch_base(job)
            self._move(job, Phase.FINGERPRINTING)
        elif phase == Phase.FINGERPRINTING:
            await self._fingerprint(job)
        elif phase == Phase.PACKAGING:
            await trio.to_thread.run_sync(self._package, job)
            self._move(job, Phase.STORING)
        elif phase == Phase.STORING:
            await self._store(job)
            self._move(job, Phase.COMMITTING)
        elif phase == Phase.COMMITTING:
            return await self._commit(job)
        return False

    def _move(self, job: Job, to: Phase, error: str = "") -> None:
        job.move(to, self._now(), error=error)
        self.jobs.save(job)
        log.info("job %s: %s", job.job_id, to.value)

    def _fail(self, job: Job, reason: str) -> None:
        current = self.jobs.job(job.key)
        if current is None or current.state.final:
            return
        current.move(Phase.FAILED, self._now(), error=reason)
        self.jobs.save(current)
        log.error("job %s (model %s, host %s) failed: %s", job.job_id, job.model_id,
                  job.host, reason)

    def _job_dir(self, job: Job) -> Path:
        return _private_dir(self._root / "jobs" / job.job_id)

    def secrets_path(self, job: Job) -> Path:
        return _private_dir(self._root / "secrets") / f"{job.job_id}.sealed"

    def sidecar_path(self, job: Job) -> Path:
        return _private_dir(self._root / "sidecars") / f"{job.job_id}.owner"

    def _cleanup(self, job: Job) -> None:
        path = self._root / "jobs" / job.job_id
        if path.exists():
            shutil.rmtree(path, ignore_errors=True)

    # -- fetching_base

    def _model(self, job: Job) -> Any:
        model = self._backend.model(bytes.fromhex(job.model_id))
        if model is None:
            raise JobFailed(f"model {job.model_id} is not registered")
        return model

    async def _fetch_base(self, job: Job) -> None:
        from ..storage.errors import StorageError

        model = self._model(job)
        if not model.blob_id:
            raise JobFailed("the model has no base blob (the owner must publish the model "
                            "folder as a blob encrypted to this OMLizer and register its id)")
        base = self._job_dir(job) / "base"
        last = ""
        for attempt in range(FETCH_TRIES):
            try:
                await self._storage.fetch(bytes(model.blob_id), pin=True)
                break
            except StorageError as exc:
                last = str(exc)
                log.warning("job %s: fetching base blob %s failed (%s); try %d of %d",
                            job.job_id, bytes(model.blob_id).hex()[:16], exc,
                            attempt + 1, FETCH_TRIES)
                await trio.sleep(FETCH_BACKOFF_S * (attempt + 1))
        else:
            raise JobFailed(f"cannot fetch the base blob {bytes(model.blob_id).hex()}: {last}")
        if base.exists():
            shutil.rmtree(base)
        try:
            await trio.to_thread.run_sync(functools.partial(
                self._storage.store.export, bytes(model.blob_id), base, seed=self._seed))
        except StorageError as exc:
            raise JobFailed(f"cannot open the base blob {bytes(model.blob_id).hex()}: "
                            f"{exc}") from None
        if not base.is_dir():
            raise JobFailed("the base blob is a single file, not a model folder")
        self._check_weights_hash(base, bytes(model.weights_hash))

    @staticmethod
    def _check_weights_hash(base: Path, registered: bytes) -> None:
        from oml.hashing import WeightsFileError, weights_hash

        try:
            actual = weights_hash(base)
        except (WeightsFileError, OSError) as exc:
            raise JobFailed(f"the base blob is not a model folder: {exc}") from None
        if actual != registered:
            raise JobFailed(f"the base blob's weights hash {actual.hex()} differs from the "
                            f"registered weights_hash {registered.hex()}")

    # -- fingerprinting

    def gen_seed(self, job: Job) -> int:
        """Secret, per (model, host, generation): nobody without this node's key can
        regenerate the keys from the public base model and word list."""
        mac = hmac.new(self._seed, _GEN_DOMAIN + job.key, hashlib.sha256).digest()
        return int.from_bytes(mac[:8], "big") >> 1

    def _spec(self, job: Job, work: Path, owner_pubkey: bytes) -> WorkerSpec:
        c = self._cfg
        scale = 2 ** job.attempts
        try:
            model_text = bytes.fromhex(job.model_id).decode("utf-8")
        except UnicodeDecodeError:
            raise JobFailed("model id is not UTF-8 text (OML packages name models by text)"
                            ) from None
        return WorkerSpec(
            base_dir=str(self._job_dir(job) / "base"), work_dir=str(work), model_id=model_text,
            host=job.host, owner_pubkey=owner_pubkey.hex(), omlizer_seed=self._seed.hex(),
            gen_seed=self.gen_seed(job), count=c.fingerprints, min_accuracy=c.min_accuracy,
            min_backup_accuracy=c.min_backup_accuracy,
            key_strategy=c.key_strategy, key_length=c.key_length,
            response_strategy=c.response_strategy, response_length=c.response_length,
            backups=c.backups, epochs=c.epochs * scale, steps=c.steps * scale, lr=c.lr,
            batch_size=c.batch_size, prompt_augmentation=c.prompt_augmentation,
            freeze_embeddings=c.freeze_embeddings, device=c.device, torch_threads=c.torch_threads)

    def _attempt_dir(self, job: Job) -> Path:
        return self._job_dir(job) / f"attempt-{job.attempts}"

    async def _fingerprint(self, job: Job) -> None:
        if job.attempts >= self._cfg.max_attempts:
            raise JobFailed(f"no attempt of {job.attempts} reached the accuracy floors; "
                            f"last: {job.error}")
        model = self._model(job)
        work = self._attempt_dir(job)
        if work.exists():  # an attempt cut short by a crash starts again from scratch
            shutil.rmtree(work)
        _private_dir(work)
        spec = self._spec(job, work, bytes(model.owner_pubkey))
        log.info("job %s: attempt %d of %d (%d fingerprints, %s)", job.job_id,
                 job.attempts + 1, self._cfg.max_attempts, spec.count,
                 f"{spec.steps} steps" if spec.steps else f"{spec.epochs} epochs")

        def progress(step: str) -> None:
            self._steps[job.job_id] = step

        outcome = await self._runner.run(spec, timeout_s=self._cfg.job_timeout_s,
                                         on_progress=progress)
        job.attempts += 1
        result = outcome.result
        if result is None:
            job.error = f"attempt {job.attempts}: {outcome.error}"
            log.warning("job %s: %s", job.job_id, job.error)
            self.jobs.save(job)
            return
        self._record_result(job, result)
        if result.ok:
            job.error = ""
            self._move(job, Phase.PACKAGING)
            return
        if result.error_kind == KIND_BAD_INPUT:
            raise JobFailed(result.error)
        job.error = f"attempt {job.attempts}: {result.error}"
        log.warning("job %s: %s", job.job_id, job.error)
        self.jobs.save(job)

    @staticmethod
    def _record_result(job: Job, result: WorkerResult) -> None:
        job.accuracy = result.accuracy
        job.primary_accuracy = result.primary_accuracy
        job.backup_accuracy = result.backup_accuracy
        for name, seconds in result.timings.items():
            job.timings[name] = round(job.timings.get(name, 0.0) + seconds, 3)
        if result.ok:
            job.fp_root = result.fp_root
            job.fp_count = result.fp_count
            job.package_hash = result.package_hash

    # -- packaging

    def _package(self, job: Job) -> None:
        """Check the worker's package against what it reported; file its secrets (0600)."""
        from oml.package import verify_package
        from oml.package_errors import PackageError
        from oml.sidecar import open_secrets

        work = self._job_dir(job) / f"attempt-{job.attempts - 1}"
        package = self._job_dir(job) / PACKAGE_DIR
        secrets_file, sidecar_file = self.secrets_path(job), self.sidecar_path(job)
        if (work / SELF_SEALED).exists():
            os.replace(work / SELF_SEALED, secrets_file)
        if (work / OWNER_SIDECAR).exists():
            os.replace(work / OWNER_SIDECAR, sidecar_file)
        if (work / PACKAGE_DIR).exists():
            if package.exists():
                shutil.rmtree(package)
            os.replace(work / PACKAGE_DIR, package)
        try:
            secrets = open_secrets(secrets_file.read_bytes(), self._seed)
            manifest = verify_package(package, self._pub, secrets=secrets)
        except (OSError, PackageError) as exc:
            raise JobFailed(f"the worker's package does not check: {exc}") from None
        if (manifest.fp_root.hex(), manifest.package_hash().hex(), manifest.fp_count) != \
                (job.fp_root, job.package_hash, job.fp_count):
            raise JobFailed("the package differs from what the worker reported")
        if manifest.host.hex() != job.host:
            raise JobFailed("the package names another host")

    # -- storing

    async def _store(self, job: Job) -> None:
        from ..storage.errors import StorageError

        package = self._job_dir(job) / PACKAGE_DIR
        try:
            manifest = await self._storage.put(package, recipients=[bytes.fromhex(job.host_pubkey)],
                                               pin=True)
        except StorageError as exc:
            raise JobFailed(f"cannot store the package: {exc}") from None
        job.package_blob = manifest.blob_id.hex()

    # -- committing

    async def _commit(self, job: Job) -> bool:
        """Sign once (bytes stored first), then submit / re-submit those bytes. True: waiting."""
        if job.commit_tx:
            raw = bytes.fromhex(job.commit_tx)
            if self._txs.result(tx_hash(raw)) is not None:
                return True  # committed: the follower records the outcome
        else:
            raw = await self._sign_commit(job)
        try:
            await self._txs.submit(raw)
        except TxSendError as exc:
            if self._txs.result(tx_hash(raw)) is not None:
                return True
            if exc.code == Code.BAD_NONCE:
                if self._nonce_lost(raw):
                    log.warning("job %s: commit nonce was taken; signing anew", job.job_id)
                    await self._sign_commit(job)
                    return False
                return True  # look again after the next block
            raise JobFailed(f"commit_omlization refused by the mempool: {exc}") from None
        return True

    def _nonce_lost(self, raw: bytes) -> bool:
        """True once the nonce of ``raw`` is provably used by another transaction.

        The mempool answers BAD_NONCE only for a nonce below the ledger's, so
        some committed transaction holds it. It is ours exactly when our hash
        is in the tx index; to be sure the index has caught up with the
        ledger, decide only once a later block than the first refusal is
        committed. Until then nothing is signed anew.
        """
        h = tx_hash(raw)
        first = self._refused_at.setdefault(h, self._chain.height)
        if self._chain.height <= first or self._txs.result(h) is not None:
            return False
        del self._refused_at[h]
        return True

    async def _sign_commit(self, job: Job) -> bytes:
        body = CommitOmlizationBody(
            model_id=bytes.fromhex(job.model_id), host=bytes.fromhex(job.host),
            package_hash=bytes.fromhex(job.package_hash), fp_root=bytes.fromhex(job.fp_root),
            fp_count=job.fp_count, package_blob=bytes.fromhex(job.package_blob))
        raw = await self._txs.sign(body)
        job.commit_tx = raw.hex()
        job.commit_hash = tx_hash(raw).hex()
        self.jobs.save(job)  # durable before the first submission
        return raw

    # ------------------------------------------------------------------ prover hand-off

    def _deal_all(self) -> None:
        """Deal keys of committed hosts that have none dealt yet; remove finished jobs' files."""
        for job in self.jobs.jobs():
            if job.state == Phase.COMMITTED and job.handoff_provers <= 0:
                self._deal(job)
            if job.state.final:
                self._cleanup(job)

    def _provers(self) -> list[tuple[bytes, bytes]]:
        """(address, public key) of every registered prover that has a known key."""
        roles = getattr(self._backend, "roles", None)
        if roles is None:
            return []
        out = []
        for rec in roles(int(Role.PROVER)):
            acct = self._backend.account(bytes(rec.address))
            pub = bytes(getattr(acct, "pub_key", b"") or b"")
            if len(pub) == 32:
                out.append((bytes(rec.address), pub))
        return out

    def _deal(self, job: Job) -> None:
        """Seal disjoint key subsets of a committed host to the registered provers (once)."""
        from oml.package_errors import PackageError
        from oml.sidecar import open_secrets, seal_prover_keys

        if job.handoff_provers > 0:
            return
        provers = dict(self._provers())
        if not provers:
            return
        try:
            secrets = open_secrets(self.secrets_path(job).read_bytes(), self._seed)
        except (OSError, PackageError) as exc:
            log.error("job %s: cannot open own secrets to deal keys: %s", job.job_id, exc)
            return
        dealt = deal(key_groups(secrets.entries), list(provers),
                     job.key + bytes.fromhex(job.fp_root))
        for prover, indices in dealt.items():
            self.jobs.put_handoff(prover, job.key, seal_prover_keys(secrets, indices,
                                                                    provers[prover]))
        current = self.jobs.job(job.key)
        if current is not None:
            current.handoff_provers = len(dealt)
            self.jobs.save(current)
        log.info("job %s: keys dealt to %d prover(s)", job.job_id, len(dealt))

    # ------------------------------------------------------------------ reveals

    async def _reveal_loop(self) -> None:
        while True:
            self._wake_reveals = trio.Event()
            for reveal in self.jobs.reveals():
                if reveal.state in (RevealState.QUEUED, RevealState.SUBMITTED):
                    await self.reveal_one(reveal)
            with trio.move_on_after(POLL_S):
                await self._wake_reveals.wait()

    async def reveal_one(self, reveal: Reveal) -> None:
        """Post (or re-submit) the reveal of one claimed leaf; records failures in the reveal."""
        if reveal.tx:
            raw = bytes.fromhex(reveal.tx)
            if self._txs.result(tx_hash(raw)) is not None:
                return  # the follower records the outcome
        else:
            decided = self._claim_decided(reveal.claim_id)
            if decided:  # e.g. shown false by earlier leaves: nothing left to open
                reveal.state = RevealState.DONE.value
                reveal.error = f"not needed: the claim is already {decided}"
                self.jobs.save_reveal(reveal)
                return
            if self._chain.height > reveal.reveal_by:
                self._reveal_failed(reveal, f"reveal window closed at height {reveal.reveal_by}")
                return
            try:
                raw = await self._sign_reveal(reveal)
            except JobFailed as exc:
                self._reveal_failed(reveal, str(exc))
                return
        try:
            await self._txs.submit(raw)
        except TxSendError as exc:
            if self._txs.result(tx_hash(raw)) is not None:
                return
            if exc.code == Code.BAD_NONCE:
                if self._nonce_lost(raw):
                    reveal.tx = ""
                    self.jobs.save_reveal(reveal)
                return  # signed anew on the next pass
            self._reveal_failed(reveal, f"reveal refused by the mempool: {exc}")

    async def _sign_reveal(self, reveal: Reveal) -> bytes:
        from oml.package_errors import PackageError
        from oml.sidecar import open_secrets

        job = self.jobs.job(Job(model_id=reveal.model_id, host=reveal.host, host_pubkey="",
                                generation=reveal.generation, requested_height=0).key)
        if job is None:
            raise JobFailed("no job for the claimed host")
        try:
            secrets = open_secrets(self.secrets_path(job).read_bytes(), self._seed)
            entry = secrets.entry(reveal.fp_index)
        except (OSError, PackageError) as exc:
            raise JobFailed(f"cannot open own secrets: {exc}") from None
        body = RevealBody(claim_id=reveal.claim_id, fp_index=reveal.fp_index, salt=entry.salt,
                          key=entry.key,
                          response=entry.response, path=tuple(entry.path))
        raw = await self._txs.sign(body)
        reveal.tx = raw.hex()
        reveal.tx_hash = tx_hash(raw).hex()
        reveal.state = RevealState.SUBMITTED.value
        self.jobs.save_reveal(reveal)  # durable before the first submission
        log.info("claim %d: revealing leaf %d", reveal.claim_id, reveal.fp_index)
        return raw

    def _claim_decided(self, claim_id: int) -> str | None:
        """The claim's status name if it no longer takes reveals (None: open or unknown)."""
        from node.ledger.records import ClaimStatus

        claim_of = getattr(self._backend, "claim", None)
        claim = claim_of(claim_id) if claim_of is not None else None
        if claim is None or claim.status == ClaimStatus.OPEN:
            return None
        return ClaimStatus(claim.status).name.lower()

    def _reveal_failed(self, reveal: Reveal, reason: str) -> None:
        reveal.state = RevealState.FAILED.value
        reveal.error = reason
        self.jobs.save_reveal(reveal)
        log.error("claim %d: %s", reveal.claim_id, reason)

    # ------------------------------------------------------------------ RPC

    def jobs_json(self, state: str | None = None) -> dict[str, Any]:
        now = self._now()
        jobs = []
        for job in self.jobs.jobs():
            bucket = ("queued" if job.state == Phase.QUEUED else job.phase
                      if job.state.final else "running")
            if state and state not in (bucket, job.phase):
                continue
            jobs.append(job.to_json(step=self._steps.get(job.job_id), now_ms=now) | {
                "state": bucket})
        return {"omlizer": self._address.hex(), "jobs": jobs,
                "reveals": [r.to_json() for r in self.jobs.reveals()]}

    def rpc_methods(self) -> Sequence[Method]:
        async def omlizer_jobs(_ctx: Context, state: str | None = None) -> Any:
            return self.jobs_json(state)

        return (
            Method("omlizer_jobs", omlizer_jobs,
                   (Param("state", Text(32), "only jobs in this state: queued, running, "
                          "committed, failed, or a phase name", False),),
                   {"type": "object", "description":
                    "omlizer (address), jobs (job_id, model_id, model_id_text, host, "
                    "generation, state, phase, attempts, accuracy, primary_accuracy, error, "
                    "timings, progress, package_hash, fp_root, fp_count, package_blob, "
                    "commit_hash, committed_height, handoff_provers), reveals (claim_id, "
                    "model_id, host, fp_index, reveal_by, state, tx_hash, height, matched, "
                    "error)"},
                   "This node's OMLizer jobs (queued, running with progress, committed, "
                   "failed with the reason) and the reveals it posted for claims."),
        )


__all__ = ["JobFailed", "OmlizerService", "Storage"]
