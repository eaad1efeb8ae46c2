"""The prover role as a daemon service: fetch keys, probe deployments, claim, open.

Four loops share one :class:`ProverStore`:

- **follow** (durable cursor): records the endpoint each host registered
  with ``request_access``, wakes the key loop on a ``commit_omlization``,
  and marks every index an ``open_claim`` burns (anyone's) so it is never
  named again.
- **keys**: every ``key_refresh_ms`` (and after a commitment) asks the
  connected peers over ``/oml/prover-keys/1`` for the key sets dealt to this
  prover and stores new ones (a deal is final).
- **probe**: one probe at a time (at most ``max_concurrent`` in flight) at
  a randomised pace; each probe is recorded before the decision reads it.
  Which probe next is drawn at random from those still needed: targets
  (a host's registered endpoint with that host's keys; a configured endpoint
  with every set's keys) until each key has ``samples_per_key`` outputs,
  then references for keys whose output settled. After each probe the
  decision rule (:mod:`.decide`) may plan a claim.
- **claims**: drives each claim through commit, inclusion, open (exactly
  once: salt, items and signed bytes stored before each submission).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import trio

from node.config import ProverRole
from node.ledger.txs import (
    MAX_CLAIM_ITEMS,
    CommitOmlizationBody,
    OpenClaimBody,
    RequestAccessBody,
    tx_hash,
)
from node.roles.txsender import TxSendError
from node.rpc.methods import Context, Method
from node.rpc.params import Integer, Param

from ..cursor import ChainFollower, CommittedBlock, RoleDB
from . import claimtx
from .client import ApiSettings, ProbeError, ask, served_models
from .decide import ClaimPlan, evidence_for, key_groups, plan_claim
from .store import TABLES, ClaimRecord, KeySet, Probe, ProverStore

if TYPE_CHECKING:
    import lmdb

    from ..base import RoleContext

log = logging.getLogger("node.roles.prover")

CLAIM_TICK_S = 1.0
KEY_FOLLOW_UPS_S = (1.0, 3.0, 10.0)
"""After a ``commit_omlization``: ask for keys after 1 s, then 3 s and 10 s later."""
RETRY_AFTER_MS = 60_000
"""A claim the mempool or ledger refused is not planned again for this long."""
GIVE_UP = 2
"""A key is given up at a deployment after ``GIVE_UP * samples_per_key`` failed probes."""
SERVED_TTL_S = 300.0
"""How long a deployment's ``/models`` list is trusted before it is asked again."""


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True, slots=True)
class Deployment:
    """One model as served at one OpenAI base URL."""

    base_url: str
    served_model: str


@dataclass(frozen=True, slots=True)
class Task:
    """One probe to make: ``key`` of ``keyset`` to ``deployment``."""

    deployment: Deployment
    keyset: KeySet
    fp_index: int
    key: str
    purpose: str


class ProverService:
    """One node's prover. Build with :meth:`from_context`; the daemon runs :meth:`run`."""

    name = "prover"

    def __init__(self, *, db: RoleDB, follower: ChainFollower, config: ProverRole, chain: Any,
                 backend: Any, transport: Any, txs: Any, account_seed: bytes,
                 clock_ms: Callable[[], int] = _now_ms, rng: random.Random | None = None,
                 http: httpx.AsyncClient | None = None) -> None:
        self.store = ProverStore(db)
        self._db = db
        self._follower = follower
        self._cfg = config
        self._chain = chain
        self._backend = backend
        self._transport = transport
        self._txs = txs
        self._seed = account_seed
        self._now = clock_ms
        self._rng = rng or random.SystemRandom()
        self._http = http
        self._api = ApiSettings(api=config.api, max_tokens=config.max_tokens,
                                api_key=config.api_key,
                                timeout_s=config.request_timeout_ms / 1000)
        self._served: dict[str, tuple[float, list[str]]] = {}
        self._in_flight: set[tuple[Deployment, str]] = set()
        self._keys_now = trio.Event()
        self._claims_now = trio.Event()
        self.key_failures: dict[str, str] = {}

    @classmethod
    def from_context(cls, ctx: RoleContext) -> ProverService:
        db = RoleDB(ctx.role_dir("prover"), TABLES)
        follower = ChainFollower(db, ctx.chain)
        service = cls(db=db, follower=follower, config=ctx.config.roles.prover, chain=ctx.chain,
                      backend=ctx.backend, transport=ctx.transport, txs=ctx.txs,
                      account_seed=ctx.account_seed)
        ctx.on_committed(service.notify)
        return service

    def notify(self) -> None:
        """A block was committed (trio thread)."""
        self._follower.notify()
        self._claims_now.set()

    # ------------------------------------------------------------------ lifecycle

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        own_http = self._http is None
        http = self._http or httpx.AsyncClient()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._follower.follow, self._on_block)
                nursery.start_soon(self._key_loop)
                nursery.start_soon(self._probe_loop, http)
                nursery.start_soon(self._claim_loop)
                task_status.started()
        finally:
            if own_http:
                with trio.CancelScope(shield=True):
                    await http.aclose()
            self._db.close()

    # ------------------------------------------------------------------ chain

    def _on_block(self, block: CommittedBlock, txn: lmdb.Transaction) -> None:
        for committed in block.txs:
            if not committed.ok:
                continue
            body = committed.tx.body
            if isinstance(body, RequestAccessBody):
                self.store.put_endpoint(txn, body.model_id, committed.tx.sender, body.endpoint,
                                        block.height)
            elif isinstance(body, CommitOmlizationBody):
                self._keys_now.set()
            elif isinstance(body, OpenClaimBody):
                self._record_burns(txn, body)

    def _record_burns(self, txn: lmdb.Transaction, body: OpenClaimBody) -> None:
        """Indices a committed ``open_claim`` (anyone's) burned: never name them again."""
        claim = self._backend.claim(body.claim_id)
        if claim is None:
            return
        for item in body.items:
            self.store.mark_burned(txn, claim.model_id, claim.host, claim.generation,
                                   int(item[0]))

    # ------------------------------------------------------------------ keys

    async def _key_loop(self) -> None:
        follow_ups: list[float] = []
        while True:
            await self.refresh_keys()
            wait = follow_ups.pop(0) if follow_ups else self._cfg.key_refresh_ms / 1000
            with trio.move_on_after(wait):
                await self._keys_now.wait()
            if self._keys_now.is_set():
                self._keys_now = trio.Event()
                # the OMLizer deals a host's keys once its own follower has seen the commit,
                # which may be after us: ask again a little later, twice
                await trio.sleep(KEY_FOLLOW_UPS_S[0])
                follow_ups = list(KEY_FOLLOW_UPS_S[1:])

    async def refresh_keys(self) -> int:
        """Ask every connected peer for sets dealt to this prover; returns how many were new."""
        from ..omlizer.handoff import fetch_prover_keys

        peers = [p.peer_id for p in self._transport.connected_peers()]
        if not peers:
            return 0
        found, failures = await fetch_prover_keys(
            self._transport, peers, seed=self._seed, chain_id=self._txs.chain_id,
            clock_ms=self._now, timeout=self._api.timeout_s)
        # peers that are no OMLizer answer "protocol not supported": not worth showing
        self.key_failures = {p: why for p, why in failures.items()
                             if "not supported" not in why and "unsupported" not in why}
        new = 0
        for s in found:
            ks = KeySet(model_id=s.model_id.hex(), host=s.host.hex(), generation=s.generation,
                        omlizer_peer=s.omlizer_peer, keys=[[i, k] for i, k in s.keys],
                        fetched_ms=self._now())
            if self.store.put_keyset(ks):
                new += 1
                log.info("prover: %d keys of host %s (model %s)", len(ks.keys), ks.host[:12],
                         ks.model_id[:12])
        return new

    # ------------------------------------------------------------------ probing

    def _live_sets(self, *, audit: bool) -> list[KeySet]:
        """Sets whose host still holds that generation's committed copy, with no active claim
        of this kind (an audit, or a hunt), none filed in the last ``reclaim_after_ms`` and
        none refused in the last ``RETRY_AFTER_MS`` (its keys were released)."""
        now = self._now()
        busy = {(c.model_id, c.host) for c in self.store.iter_open() if c.audit == audit}
        for c in self.store.claims():
            wait = RETRY_AFTER_MS if c.state == "commit_failed" else self._cfg.reclaim_after_ms
            if c.audit == audit and now - c.created_ms < wait:
                busy.add((c.model_id, c.host))
        out = []
        for ks in self.store.keysets():
            rec = self._backend.host(bytes.fromhex(ks.model_id), bytes.fromhex(ks.host))
            if rec is None or rec.generation != ks.generation or not rec.fp_count:
                continue
            if (ks.model_id, ks.host) not in busy:
                out.append(ks)
        return out

    def _targets(self) -> list[tuple[str, tuple[str, str] | None]]:
        """(base URL, (model, host) it was registered for or None for a configured one)."""
        registered = [(url, mh) for mh, url in self.store.endpoints().items()]
        known = {url for url, _ in registered}
        # a configured URL that a host registered is that host's endpoint (and no hunting
        # ground for its keys: its gateway would buy permissions for them)
        out: list[tuple[str, tuple[str, str] | None]] = [
            (u, None) for u in dict.fromkeys(self._cfg.endpoints) if u not in known]
        return out + registered

    def _references(self, ks: KeySet, target: str) -> list[str]:
        """Base URLs whose answers to ``ks``'s keys are known not to be ``ks.host``'s copy."""
        refs = list(self._cfg.reference_endpoints)
        for (model_id, host), url in self.store.endpoints().items():
            if model_id == ks.model_id and host != ks.host and url != target:
                refs.append(url)
        return [r for r in dict.fromkeys(refs) if r != target]

    async def _served_at(self, http: httpx.AsyncClient, base: str) -> list[str]:
        cached = self._served.get(base)
        if cached is not None and trio.current_time() - cached[0] < SERVED_TTL_S:
            return cached[1]
        try:
            names = await served_models(http, base, self._api)
        except ProbeError as exc:
            log.info("prover: %s lists no models: %s", base, exc)
            names = []
        self._served[base] = (trio.current_time(), names)
        return names

    def _pools(self, ks: KeySet) -> tuple[list[tuple[int, tuple[int, ...], str]],
                                          list[tuple[int, tuple[int, ...], str]]]:
        """The set's keys split for good: (hunt, audit).

        A key sent to its host's own gateway gets a permission bought for it,
        and with that the host can rebut any later claim on that key, wherever
        it was observed. So the keys that audit a host's registered endpoint
        (the last ``claim_min_matches`` keys, and only when at least as many
        remain to hunt with) are never sent anywhere else, and the keys that
        hunt for pirated copies never go to the host's own endpoint. A host
        without a registered endpoint keeps all its keys for the hunt.
        """
        groups = key_groups([(int(i), str(k)) for i, k in ks.keys])
        m = self._min_matches()
        registered = (ks.model_id, ks.host) in self.store.endpoints()
        if not (self._cfg.audit_registered and registered) or len(groups) < 2 * m:
            return groups, []
        return groups[:-m], groups[-m:]

    def _keys_of(self, ks: KeySet, *, own: bool = False
                 ) -> list[tuple[int, tuple[int, ...], str]]:
        """``(primary, backups, key)`` of the pool's keys with no index used or burned."""
        hunt, audit = self._pools(ks)
        used = self.store.used(bytes.fromhex(ks.model_id), bytes.fromhex(ks.host), ks.generation)
        return [(p, b, k) for p, b, k in (audit if own else hunt)
                if not used.intersection((p, *b))]

    def _cases(self) -> list[tuple[Deployment, KeySet, list[Deployment], bool]]:
        """(deployment under test, key set it is asked, its references, whether it is the
        set's host's own registered endpoint), from the cached model lists."""
        out = []
        hunt, audit = self._live_sets(audit=False), self._live_sets(audit=True)
        for base, registered in self._targets():
            for ks in (hunt if registered is None else audit):
                if registered is not None and registered != (ks.model_id, ks.host):
                    continue  # a host's own endpoint is asked only that host's audit keys
                refs = [Deployment(r, names[0]) for r in self._references(ks, base)
                        if (names := self._served.get(r, (0.0, []))[1])]
                for served in self._served.get(base, (0.0, []))[1]:
                    out.append((Deployment(base, served), ks, refs, registered is not None))
        return out

    def _settled(self, dep: Deployment, key: str) -> bool:
        """Enough outputs of ``key`` at ``dep``, or so many failures that it is given up."""
        samples = self._cfg.samples_per_key
        return len(self.store.outputs(dep.base_url, dep.served_model, key)) >= samples or \
            self.store.failures(dep.base_url, dep.served_model, key) >= GIVE_UP * samples

    def _needed(self, dep: Deployment, ks: KeySet, refs: Sequence[Deployment], own: bool
                ) -> list[Task]:
        """Probes still wanted for one case: the target's first, then its references'."""
        tasks = []
        for index, _backups, key in self._keys_of(ks, own=own):
            if not self._settled(dep, key):
                tasks.append(Task(dep, ks, index, key, "target"))
                continue
            if not self.store.outputs(dep.base_url, dep.served_model, key):
                continue  # given up on the target: its references would tell nothing
            tasks += [Task(ref, ks, index, key, "reference") for ref in refs
                      if not self._settled(ref, key)]
        return tasks

    async def next_tasks(self, http: httpx.AsyncClient) -> list[Task]:
        """Every probe still needed now (the loop draws one at random)."""
        for base in dict.fromkeys([b for b, _ in self._targets()]
                                  + list(self._cfg.reference_endpoints)):
            await self._served_at(http, base)
        tasks: dict[tuple[Deployment, str], Task] = {}
        for dep, ks, refs, own in self._cases():
            for t in self._needed(dep, ks, refs, own):
                tasks.setdefault((t.deployment, t.key), t)  # one reference serves many cases
        return [t for k, t in tasks.items() if k not in self._in_flight]

    def _gap_s(self) -> float:
        mean = self._cfg.probe_interval_ms / 1000
        j = self._cfg.jitter_pct / 100
        return mean * self._rng.uniform(1 - j, 1 + j)

    async def _probe_loop(self, http: httpx.AsyncClient) -> None:
        limit = trio.Semaphore(self._cfg.max_concurrent)
        async with trio.open_nursery() as nursery:
            while True:
                await trio.sleep(self._gap_s())
                tasks = await self.next_tasks(http)
                if not tasks:
                    continue
                task = self._rng.choice(tasks)
                await limit.acquire()
                self._in_flight.add((task.deployment, task.key))
                nursery.start_soon(self._probe_and_decide, http, task, limit)

    async def _probe_and_decide(self, http: httpx.AsyncClient, task: Task,
                                limit: trio.Semaphore) -> None:
        try:
            await self.probe(http, task)
            self.decide()
        finally:
            self._in_flight.discard((task.deployment, task.key))
            limit.release()

    async def probe(self, http: httpx.AsyncClient, task: Task) -> Probe:
        """Ask one key and record the probe, whatever came back."""
        start = trio.current_time()
        outcome, output, error = "ok", "", ""
        try:
            output = await ask(http, task.deployment.base_url, task.deployment.served_model,
                               task.key, self._api)
        except ProbeError as exc:
            outcome, error = exc.outcome, str(exc)
        probe = Probe(seq=0, time_ms=self._now(), endpoint=task.deployment.base_url,
                      served_model=task.deployment.served_model, model_id=task.keyset.model_id,
                      host=task.keyset.host, fp_index=task.fp_index, key=task.key,
                      purpose=task.purpose, outcome=outcome, output=output, error=error,
                      latency_ms=int((trio.current_time() - start) * 1000))
        return self.store.record_probe(probe, samples_cap=self._cfg.samples_per_key)

    # ------------------------------------------------------------------ deciding

    def _min_matches(self) -> int:
        """Distinct keys a claim names at least: the chain's threshold, or more if the
        config says so."""
        return max(int(self._backend.params().claim_min_matches), self._cfg.claim_min_matches)

    def decide(self) -> list[ClaimRecord]:
        """Plan every claim the recorded probes now justify (see :mod:`.decide`)."""
        planned: list[ClaimRecord] = []
        samples, min_chars = self._cfg.samples_per_key, self._cfg.min_output_chars
        claimed: set[tuple[str, str, bool]] = set()
        for dep, ks, refs, own in self._cases():
            if (ks.model_id, ks.host, own) in claimed:
                continue
            # a host's own endpoint answers its keys with its copy's responses: the reveal
            # will match, and whether it paid is for its rebuttal to show (an audit)
            require_reference = self._cfg.require_reference and not \
                (own and self._cfg.audit_registered)
            keys = self._keys_of(ks, own=own)
            mine = {k: self.store.outputs(dep.base_url, dep.served_model, k)
                    for _, _, k in keys}
            theirs = [{k: self.store.outputs(r.base_url, r.served_model, k) for _, _, k in keys}
                      for r in refs]
            m = self._min_matches()
            plan = plan_claim(evidence_for(keys, mine, theirs, samples=samples,
                                           min_chars=min_chars),
                              min_matches=m,
                              # an audit names no more keys than it needs: each one is burned
                              max_keys=m if own else self._cfg.max_claim_keys,
                              require_reference=require_reference,
                              complete=not self._needed(dep, ks, refs, own),
                              max_items=MAX_CLAIM_ITEMS)
            if plan is not None:
                planned.append(self._plan(ks, dep, plan, audit=own))
                claimed.add((ks.model_id, ks.host, own))
        return planned

    def _plan(self, ks: KeySet, dep: Deployment, plan: ClaimPlan, *, audit: bool
              ) -> ClaimRecord:
        model_id, host = bytes.fromhex(ks.model_id), bytes.fromhex(ks.host)
        salt = claimtx.new_salt()
        commitment = claimtx.claim_commitment(self._txs.chain_id, self._txs.address, model_id,
                                              host, plan.items, salt)
        rec = self._backend.host(model_id, host)
        bond = max(self._cfg.claim_bond, claimtx.least_bond(self._backend.params(), rec))
        claim = self.store.new_claim(ClaimRecord(
            local_id=0, model_id=ks.model_id, host=ks.host, generation=ks.generation,
            endpoint=dep.base_url, served_model=dep.served_model,
            items=[list(i) for i in plan.items], salt=salt.hex(), commitment=commitment.hex(),
            bond=bond, audit=audit, created_ms=self._now(),
            history=[["planned", self._now()]]))
        log.info("prover: claim %d against host %s planned with %d keys (deployment %s)",
                 claim.local_id, ks.host[:12], len(plan.items), dep.base_url)
        self._claims_now.set()
        return claim

    # ------------------------------------------------------------------ claims

    async def _claim_loop(self) -> None:
        while True:
            with trio.move_on_after(CLAIM_TICK_S):
                await self._claims_now.wait()
            self._claims_now = trio.Event()
            for claim in list(self.store.iter_open()):
                try:
                    await self.advance(claim)
                except TxSendError as exc:
                    log.warning("prover: claim %d: %s", claim.local_id, exc)

    def _move(self, claim: ClaimRecord, state: str, **changes: Any) -> None:
        for name, value in changes.items():
            setattr(claim, name, value)
        claim.state = state
        claim.history.append([state, self._now()])
        self.store.save_claim(claim)

    async def advance(self, claim: ClaimRecord) -> None:
        """One step of a claim's life, as far as the chain allows now."""
        if claim.state in ("planned", "commit_signed"):
            await self._step_commit(claim)
        elif claim.state == "committed":
            await self._step_open(claim)
        elif claim.state == "open_signed":
            await self._step_opened(claim)
        elif claim.state == "opened":
            self._step_outcome(claim)

    async def _send_once(self, claim: ClaimRecord, raw_field: str, hash_field: str,
                         build: Callable[[], Any], signed_state: str) -> Any:
        """Sign once (bytes stored first), submit those bytes; the committed result or None."""
        raw_hex = getattr(claim, raw_field)
        if not raw_hex:
            raw = await self._txs.sign(build())
            self._move(claim, signed_state, **{raw_field: raw.hex(),
                                               hash_field: tx_hash(raw).hex()})
        raw = bytes.fromhex(getattr(claim, raw_field))
        result = self._txs.result(tx_hash(raw))
        if result is not None:
            return result
        try:
            await self._txs.submit(raw)
        except TxSendError as exc:
            if self._txs.result(tx_hash(raw)) is not None:
                return self._txs.result(tx_hash(raw))
            if not exc.stale_nonce:
                raise
            # the nonce went to another transaction: these bytes can never land
            setattr(claim, raw_field, "")
            self._move(claim, claim.state)
        return None

    async def _step_commit(self, claim: ClaimRecord) -> None:
        body = claimtx.commit_body(bytes.fromhex(claim.model_id), bytes.fromhex(claim.host),
                                   bytes.fromhex(claim.commitment), claim.bond)
        try:
            result = await self._send_once(claim, "commit_tx", "commit_hash", lambda: body,
                                           "commit_signed")
        except TxSendError as exc:
            self._move(claim, "commit_failed", error=str(exc))
            self.store.release(claim)
            return
        if result is None:
            return
        if result.code != 0:
            self._move(claim, "commit_failed", error=f"code {result.code}: {result.log}")
            self.store.release(claim)
            return
        self._move(claim, "committed", committed_height=result.height,
                   claim_id=claimtx.claim_id_from_events(result.events))

    async def _step_open(self, claim: ClaimRecord) -> None:
        if self._chain.height <= claim.committed_height:
            return  # open only in a later block than the commitment's
        # the last block that may carry the opening (the end block of it lapses the claim)
        deadline = claim.committed_height + int(self._backend.params().claim_open_window)
        if self._chain.height >= deadline and not claim.open_tx:
            self._move(claim, "open_expired", error=f"open window closed at {deadline}")
            return
        await self._step_opened(claim)

    async def _step_opened(self, claim: ClaimRecord) -> None:
        if claim.claim_id is None:
            self._move(claim, "open_failed", error="commit_claim result names no claim id")
            return
        items = [(int(i), str(k), str(o)) for i, k, o in claim.items]
        body = claimtx.open_body(claim.claim_id, items, bytes.fromhex(claim.salt))
        try:
            result = await self._send_once(claim, "open_tx", "open_hash", lambda: body,
                                           "open_signed")
        except TxSendError as exc:
            self._move(claim, "open_failed", error=str(exc))
            return
        if result is None:
            return
        if result.code != 0:
            self._move(claim, "open_failed", error=f"code {result.code}: {result.log}")
            return
        self._move(claim, "opened", opened_height=result.height, outcome="open")

    def _step_outcome(self, claim: ClaimRecord) -> None:
        if claim.claim_id is None:
            return
        rec = self._backend.claim(claim.claim_id)
        if rec is None:
            return
        status = rec.to_json().get("status", "")
        if status and status != claim.outcome:
            claim.outcome = str(status)
            self._move(claim, "opened")

    # ------------------------------------------------------------------ RPC

    def snapshot(self, *, after: int, limit: int) -> dict[str, Any]:
        sets = []
        for ks in self.store.keysets():
            used = self.store.used(bytes.fromhex(ks.model_id), bytes.fromhex(ks.host),
                                   ks.generation)
            sets.append({"model_id": ks.model_id, "host": ks.host, "generation": ks.generation,
                         "omlizer_peer": ks.omlizer_peer, "keys": len(ks.keys),
                         "indices_used": len(used)})
        probes = self.store.probes(after=after, limit=limit)
        return {"probes": [p.to_json() for p in probes],
                "total_probes": self.store.probe_count(),
                "next_after": probes[-1].seq if probes else after,
                "claims": [c.to_json() for c in self.store.claims()],
                "keysets": sets,
                "targets": [{"endpoint": url, "model_id": mh[0] if mh else None,
                             "host": mh[1] if mh else None} for url, mh in self._targets()],
                "key_fetch_failures": self.key_failures}

    def rpc_methods(self) -> Sequence[Method]:
        async def prover_probes(_ctx: Context, after: int = -1, limit: int = 100) -> Any:
            return self.snapshot(after=after, limit=limit)

        return (
            Method("prover_probes", prover_probes,
                   (Param("after", Integer(-1, 2**63 - 1), "list probes with seq > after "
                          "(default -1: from the first)", False),
                    Param("limit", Integer(1, 1000), "most probes listed (default 100)",
                          False)),
                   {"type": "object", "description":
                    "probes (seq, time_ms, endpoint, served_model, model_id, host, fp_index, "
                    "key, purpose, outcome, output, error, latency_ms), total_probes, "
                    "next_after, claims (local_id, state, outcome, claim_id, items, bond, "
                    "heights, history), keysets, targets, key_fetch_failures"},
                   "This node's prover: every probe it made and every claim it filed."),
        )


__all__ = ["Deployment", "ProverService", "Task"]
