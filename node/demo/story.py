"""The whole OML story on a local testnet, one phase after another, narrated as it happens.

``Story.run`` builds the models, starts the nodes (:mod:`.net`), and plays:
publish, access, fingerprint (the OMLizer, by itself), fetch, serve (the
honest gateway; the pirate's bare engine), pay (a user through the
gateway with the official ``openai`` client; the owner redeems by
itself), probe (the prover), claim (commit, then open), reveal (the
OMLizer, by itself), rebut (the honest gateway, by itself), slash (the
ledger, after the challenge window), payouts (everything redeemed and
settled). The demo only sends the transactions a person would type
(registrations, access requests) and otherwise watches over JSON-RPC;
every phase is recorded with its seconds and block heights. Then the
books (:mod:`.books`) are checked against the settings, and every node's
supply breakdown against the genesis supply.

Every process is stopped on the way out, whatever happened (an error, a
deadline, Ctrl-C): the testnet's nodes, the pirate's engine, the front.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TextIO

from node.ledger.txs import RegisterModelBody, RegisterRoleBody, RequestAccessBody, Role
from node.listenfile import read_listen_file
from node.testnet import Testnet

from .books import (
    Account,
    Check,
    balance_checks,
    claim_checks,
    expected_changes,
    record_checks,
    render_table,
)
from .chain import ChainView
from .net import (
    NODES,
    DemoError,
    Outsiders,
    Pirate,
    account_key,
    build_models,
    cli,
    set_roles,
    write_testnet,
)
from .relay import TcpFront
from .settings import DemoSettings

ROLE_LABELS = {
    "owner": "child model owner, validator", "parent_owner": "parent model owner (royalty)",
    "contributor_a": "contributor of the child", "contributor_b": "contributor of the child",
    "omlizer": "OMLizer", "host": "honest host (gateway)", "cheater": "cheating host (pirate)",
    "prover": "prover",
}
FINAL_CLAIM = ("slashed", "dismissed", "false", "expired", "lapsed")
WHO = {"host": "honest host", "cheater": "cheater"}


class Story:
    """One run of the demo in ``root`` (models, testnet homes, logs, copies)."""

    def __init__(self, root: Path, settings: DemoSettings | None = None,
                 narrate: TextIO | None = None) -> None:
        self.root = root
        self.s = settings or DemoSettings()
        self.s.per_query()  # a price that does not split exactly fails before anything starts
        self.out = narrate
        self.t0 = time.monotonic()
        self.deadline = self.t0 + self.s.timeout_s
        self.outsiders = Outsiders.generate()
        self.timeline: list[dict[str, Any]] = []
        self.notes: list[dict[str, Any]] = []
        self.addr: dict[str, str] = {}
        self.chain: ChainView | None = None
        self.net: Testnet | None = None
        self.front: TcpFront | None = None
        self.pirate: Pirate | None = None

    # ------------------------------------------------------------------ narration

    def height(self) -> int:
        return self.chain.height() if self.chain else 0

    def say(self, step: str, text: str) -> None:
        """One line of narration: seconds since the start, block height, phase, what happened."""
        h = self.height()
        self.notes.append({"t": round(time.monotonic() - self.t0, 1), "height": h,
                           "step": step, "text": text})
        if self.out is not None:
            self.out.write(f"[{time.monotonic() - self.t0:6.1f}s  h{h:>4}] {step:<11} {text}\n")
            self.out.flush()

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start, h0 = time.monotonic(), self.height()
        yield
        self.timeline.append({"name": name, "seconds": round(time.monotonic() - start, 1),
                              "height_start": h0, "height_end": self.height()})

    @property
    def c(self) -> ChainView:
        assert self.chain is not None, "the testnet is not running"
        return self.chain

    # ------------------------------------------------------------------ the whole run

    def run(self) -> dict[str, Any]:
        """Play the story; returns the report (see :meth:`report`). Stops every process.

        Raises:
            DemoError: a step did not happen in time (with what was awaited).
        """
        with contextlib.ExitStack() as stack:
            stack.callback(self._stop_all)
            self.setup()
            before = self.balances()
            for name, step in (("publish", self.publish), ("access", self.access),
                               ("fingerprint", self.fingerprint), ("fetch", self.fetch),
                               ("serve", self.serve), ("pay", self.pay), ("probe", self.probe),
                               ("claim", self.claim), ("reveal", self.reveal),
                               ("rebut", self.rebut), ("slash", self.slash),
                               ("payouts", self.payouts)):
                with self.phase(name):
                    step()
            return self.report(before)
        raise AssertionError("unreachable")  # pragma: no cover - ExitStack re-raises

    def _stop_all(self) -> None:
        if self.pirate is not None:
            self.pirate.stop()
        if self.net is not None:
            self.net.stop_all()
        if self.front is not None:
            self.front.close()

    # ------------------------------------------------------------------ setup

    def setup(self) -> None:
        with self.phase("build"):
            self.say("build", "building a tiny parent model and a child derived from it")
            self.parent_dir, self.child_dir = build_models(self.root / "models")
        with self.phase("testnet"):
            out = self.root / "testnet"
            specs = write_testnet(out, self.s, self.outsiders)
            self.front = TcpFront()
            self.net = Testnet(out)
            self.chain = ChainView(self.net, self.deadline)
            for role, node in NODES.items():
                self.addr[role] = next(sp.address for sp in specs if sp.name == node)
            self.addr["parent_owner"] = self.outsiders.parent_owner.address.hex()
            self.addr["contributor_a"] = self.outsiders.contributor_a.address.hex()
            self.addr["contributor_b"] = self.outsiders.contributor_b.address.hex()
            first = [n for n in NODES.values() if n != NODES["prover"]]
            self.net.start_all(first, timeout=self._left(180))
            for role, node in NODES.items():
                if node in first:
                    self.say("testnet", f"{node} ({role}) RPC {self.net.spec(node).rpc_url}")
            self.say("testnet", f"the honest host's public endpoint is {self.front.url}")

    def _left(self, cap: float) -> float:
        return max(1.0, min(cap, self.deadline - time.monotonic()))

    def node_home(self, role: str) -> Path:
        assert self.net is not None
        return self.net.spec(NODES[role]).home

    def key(self, role: str) -> Any:
        if role == "parent_owner":
            return self.outsiders.parent_owner
        return account_key(self.node_home(role))

    def balances(self) -> dict[str, int]:
        return {label: self.c.balance(addr) for label, addr in self.addr.items()}

    # ------------------------------------------------------------------ publish, access

    def publish(self) -> None:
        from oml.hashing import weights_hash

        s = self.s
        h = self.c.send(self.key("omlizer"), RegisterRoleBody(role=int(Role.OMLIZER),
                                                              bond=s.omlizer_bond),
                        "the OMLizer's register_role")
        self.say("publish", f"node1 registered as OMLizer, bond {s.omlizer_bond:,} (block {h})")
        h = self.c.send(self.key("prover"), RegisterRoleBody(role=int(Role.PROVER),
                                                             bond=s.prover_bond),
                        "the prover's register_role")
        self.say("publish", f"node4 registered as prover, bond {s.prover_bond:,} (block {h})")
        h = self.c.send(self.key("parent_owner"), RegisterModelBody(
            model_id=s.parent_id.encode(), weights_hash=weights_hash(self.parent_dir),
            price_per_query=s.price, min_collateral=s.min_collateral,
            omlizers=(bytes.fromhex(self.addr["omlizer"]),), royalty_bp=s.royalty_bp),
            "the parent's register_model")
        self.say("publish", f"parent model {s.parent_id!r} registered, royalty "
                            f"{s.royalty_bp} bp (block {h})")
        url = self.net_url("owner")
        out = cli("model", "publish", str(self.child_dir), "--home", str(self.node_home("owner")),
                  "--model-id", s.child_id, "--price", str(s.price), "--min-collateral",
                  str(s.min_collateral), "--omlizer", self.addr["omlizer"],
                  "--split", f"{self.addr['contributor_a']}:{s.split_a_bp}",
                  "--split", f"{self.addr['contributor_b']}:{s.split_b_bp}",
                  "--parent", s.parent_id, "--rpc", url, timeout=self._left(120))
        import json

        published = json.loads(out)
        self.say("publish", f"oml-node model publish: child {s.child_id!r} encrypted to the "
                            f"OMLizer as blob {published['blob_id'][:16]}.., price "
                            f"{s.price:,}/query, splits {s.split_a_bp}+{s.split_b_bp} bp, "
                            f"parent {s.parent_id!r} (block {published['tx']['height']})")

    def net_url(self, role: str) -> str:
        assert self.net is not None
        return self.net.spec(NODES[role]).rpc_url

    def access(self) -> None:
        s, model = self.s, self.s.child_id.encode()
        assert self.front is not None
        h = self.c.send(self.key("host"), RequestAccessBody(
            model_id=model, collateral=s.host_collateral, endpoint=self.front.url),
            "the honest host's request_access")
        self.say("access", f"honest host (node2) requests access, collateral "
                           f"{s.host_collateral:,}, endpoint {self.front.url} (block {h})")
        h = self.c.send(self.key("cheater"), RequestAccessBody(
            model_id=model, collateral=s.cheater_collateral), "the cheater's request_access")
        self.say("access", f"cheater (node3) requests access, collateral "
                           f"{s.cheater_collateral:,}, no endpoint (block {h})")

    # ------------------------------------------------------------------ fingerprint, fetch

    def fingerprint(self) -> None:
        seen: dict[str, str] = {}

        def both_active() -> bool:
            for job in self.c.call(NODES["omlizer"], "omlizer_jobs")["jobs"]:
                if seen.get(job["job_id"]) != job["phase"]:
                    seen[job["job_id"]] = job["phase"]
                    who = "honest host" if job["host"] == self.addr["host"] else "cheater"
                    extra = f", accuracy {job['accuracy']:.2f}" if job.get("accuracy") else ""
                    self.say("fingerprint", f"OMLizer job for the {who}: {job['phase']}{extra}")
            return all((r := self.c.host(self.s.child_id, self.addr[who])) is not None
                       and r["status"] == "active" for who in ("host", "cheater"))

        self.c.wait(both_active, "the OMLizer to commit both hosts' packages", interval=1.0)
        for who in ("host", "cheater"):
            rec = self.c.host(self.s.child_id, self.addr[who])
            assert rec is not None
            self.say("fingerprint", f"{who}: commit_omlization on chain, {rec['fp_count']} "
                                    f"fingerprints, root {rec['fp_root'][:16]}..")
        self.c.wait(lambda: all(j["handoff_provers"] >= 1 for j in
                                self.c.call(NODES["omlizer"], "omlizer_jobs")["jobs"]),
                    "the OMLizer to deal both hosts' keys to the prover", timeout=120)
        self.say("fingerprint", "keys of both hosts dealt to the prover (sealed to its key)")

    def fetch(self) -> None:
        def one(role: str) -> dict[str, Any]:
            import json

            out = cli("model", "fetch", "--home", str(self.node_home(role)), "--model-id",
                      self.s.child_id, "--out", str(self.copy_dir(role)), "--rpc",
                      self.net_url(role), "--timeout", str(int(self._left(300))),
                      timeout=self._left(320))
            return json.loads(out)

        with ThreadPoolExecutor(2) as pool:
            results = dict(zip(("host", "cheater"), pool.map(one, ("host", "cheater")),
                               strict=True))
        for role, res in results.items():
            self.say("fetch", f"{role}: oml-node model fetch wrote its checked copy "
                              f"(package {res['package_hash'][:16]}..) to {res['out']}")

    def copy_dir(self, role: str) -> Path:
        return self.root / "copies" / role

    # ------------------------------------------------------------------ serve, pay

    def serve(self) -> None:
        assert self.net is not None and self.front is not None
        # the pirate's engine loads while the honest node restarts (both take seconds)
        self.pirate = Pirate(self.copy_dir("cheater"), self.s.child_id,
                             self.root / "pirate.log")
        node = NODES["host"]
        self.net.stop(node)
        set_roles(self.node_home("host"),
                  host=self.s.gateway_config(str(self.copy_dir("host").resolve())))
        self.net.start(node)
        self.net.wait_healthy([node], timeout=self._left(120))
        gateway = self.c.wait(
            lambda: (info := read_listen_file(self.net.data_dir(node))) is not None
            and info.gateway and info.gateway[0], "node2's gateway to listen", timeout=180)
        self.front.point_at(gateway)
        self.say("serve", f"honest host restarted with [roles.host]: gateway {gateway}, "
                          f"reachable at its registered endpoint {self.front.url}")
        url = self.pirate.wait_url(self._left(180))
        self.say("serve", f"cheater serves its copy with `oml-node host engine` at {url}: "
                          "no gateway, no permissions, no payments")

    def pay(self) -> None:
        try:
            import openai
        except ImportError:
            raise DemoError("the demo's user needs the openai client: pip install openai "
                            "(make install brings it)") from None
        assert self.front is not None
        s = self.s
        client = openai.OpenAI(base_url=self.front.url, api_key=s.user_key, max_retries=2,
                               timeout=120)
        prompts = ["the model is", "a host serves", "the owner is paid", "who pays", "hello"]
        for i in range(s.user_queries):
            prompt = prompts[i % len(prompts)]
            if i % 2:
                ans = client.chat.completions.create(
                    model=s.child_id, max_tokens=s.max_tokens, temperature=0,
                    messages=[{"role": "user", "content": prompt}])
                text = ans.choices[0].message.content or ""
            else:
                text = client.completions.create(model=s.child_id, prompt=prompt,
                                                 max_tokens=s.max_tokens,
                                                 temperature=0).choices[0].text
            self.say("pay", f"user query {i + 1} via openai client: {prompt!r} -> {text!r}")
        rec = self.c.wait(
            lambda: (r := self.c.host(s.child_id, self.addr["host"])) is not None
            and r["redeemed_count"] >= s.user_queries and r,
            "the owner to redeem the user's queries", timeout=120)
        self.say("pay", f"gateway escrow {rec['escrow']:,}; owner redeemed "
                        f"{rec['redeemed_count']} queries = {rec['redeemed_amount']:,}")
        paid = {k: self.c.balance(self.addr[k]) for k in ("contributor_a", "contributor_b",
                                                          "parent_owner")}
        self.say("pay", f"contributors hold {paid['contributor_a']:,} and "
                        f"{paid['contributor_b']:,}; the parent's owner earned its royalty")

    # ------------------------------------------------------------------ probe, claim

    def probe(self) -> None:
        assert self.net is not None and self.pirate is not None
        set_roles(self.node_home("prover"), prover=self.s.prover_config(self.pirate.url))
        self.net.start_all([NODES["prover"]], timeout=self._left(120))
        self.say("probe", f"prover (node4) started: probes the pirate at {self.pirate.url} "
                          "(a tip-off) and the endpoints hosts registered on chain; RPC "
                          f"prover_probes on {self.net.spec(NODES['prover']).rpc_url}")
        snap = self.c.wait(lambda: (p := self.prover())["keysets"] and p["total_probes"] and p,
                           "the prover's first probes", timeout=180)
        self.say("probe", f"prover holds {sum(k['keys'] for k in snap['keysets'])} keys of "
                          f"{len(snap['keysets'])} hosts; targets: "
                          + ", ".join(t["endpoint"] for t in snap["targets"]))

    def prover(self, after: int = -1) -> dict[str, Any]:
        return self.c.call(NODES["prover"], "prover_probes", after=after, limit=1000)

    def label(self, address: str) -> str:
        return next((k for k, v in self.addr.items() if v == address), address[:12])

    def who(self, address: str) -> str:
        label = self.label(address)
        return WHO.get(label, label)

    def all_probes(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while page := self.prover(out[-1]["seq"] if out else -1)["probes"]:
            out += page
        return out

    def tell_probes(self) -> None:
        """What the prover saw: probes per deployment and purpose, and one piece of evidence."""
        assert self.front is not None and self.pirate is not None
        where = {self.pirate.url: "the pirate", self.front.url: "the honest gateway"}
        probes = self.all_probes()
        groups: dict[tuple[str, str, str], int] = {}
        for p in probes:
            k = (where.get(p["endpoint"], p["endpoint"]), p["purpose"], self.who(p["host"]))
            groups[k] = groups.get(k, 0) + 1
        for (dep, purpose, host), n in sorted(groups.items()):
            self.say("probe", f"{n:>2} probes at {dep}: {host}'s keys ({purpose})")
        ours = {(p["fp_index"], p["endpoint"]): p for p in probes if p["outcome"] == "ok"
                and p["host"] == self.addr["cheater"]}
        for (index, url), p in sorted(ours.items()):
            ref = ours.get((index, self.front.url))
            if url == self.pirate.url and ref is not None:
                self.say("probe", f"cheater's key #{index} {p['key'][:40]!r}: the pirate "
                                  f"answers {p['output']!r}, the honest copy {ref['output']!r}")
                break

    def claim(self) -> None:
        def opened() -> list[dict[str, Any]] | None:
            claims = self.c.claims()
            self._fail_on_bad_outcome(claims)
            hosts = {c["host"] for c in claims if c["opened_height"]}
            return claims if {self.addr["host"], self.addr["cheater"]} <= hosts else None

        claims = self.c.wait(opened, "claims against both hosts to be committed and opened",
                             interval=1.0)
        self.tell_probes()
        for c in claims:
            self.say("claim", f"claim #{c['claim_id']} against the {self.who(c['host'])}: "
                              f"committed at {c['committed_height']} (hash only, bond "
                              f"{c['bond']:,}), opened at {c['opened_height']} with "
                              f"{len(c['items'])} keys")

    def _fail_on_bad_outcome(self, claims: list[dict[str, Any]]) -> None:
        for c in claims:
            if c["status"] in ("false", "expired", "lapsed"):
                raise DemoError(f"claim #{c['claim_id']} against the {self.who(c['host'])} "
                                f"ended {c['status']}: {c}")

    def claim_of(self, role: str) -> dict[str, Any]:
        claims = [c for c in self.c.claims() if c["host"] == self.addr[role]]
        self._fail_on_bad_outcome(claims)
        if not claims:
            raise DemoError(f"no claim against the {role}")
        return claims[-1]

    # ------------------------------------------------------------------ reveal, rebut, slash

    def reveal(self) -> None:
        c = self.c.wait(lambda: (c := self.claim_of("cheater"))["status"] in ("matched",
                                                                               "slashed") and c,
                        "the OMLizer's reveals of the cheater's claim", interval=0.5)
        matched = sum(1 for i in c["items"] if i["state"] == "matched")
        self.say("reveal", f"OMLizer revealed claim #{c['claim_id']}: {matched} of "
                           f"{len(c['items'])} keys match the cheater's committed responses "
                           f"-> matched at {c['decided_height']}")
        h = self.claim_of("host")
        states = [i["state"] for i in h["items"]]
        self.say("reveal", f"claim #{h['claim_id']} (honest host): items {states}, "
                           f"status {h['status']}")

    def rebut(self) -> None:
        c = self.c.wait(lambda: (c := self.claim_of("host"))["status"] == "dismissed" and c,
                        "the honest gateway's rebuttal", interval=0.5)
        rebuttals = self.c.call(NODES["host"], "host_permissions")["rebuttals"]
        r = next((r for r in rebuttals if r["claim_id"] == c["claim_id"]), None)
        issued = f"a permission issued at height {r['issued_height']}" if r else "a permission"
        self.say("rebut", f"honest gateway rebutted claim #{c['claim_id']} with {issued} "
                          f"(before the commitment at {c['committed_height']}): dismissed at "
                          f"{c['decided_height']}, prover's bond returned")

    def slash(self) -> None:
        window = self.s.params.challenge_window
        self.say("slash", f"the cheater cannot rebut (no permission); waiting out the "
                          f"{window}-block challenge window")
        c = self.c.wait(lambda: (c := self.claim_of("cheater"))["status"] == "slashed" and c,
                        "the cheater's slash", interval=0.5)
        rec = self.c.host(self.s.child_id, self.addr["cheater"])
        assert rec is not None
        self.say("slash", f"claim #{c['claim_id']} slashed at {c['decided_height']}: "
                          f"{rec['slashed_total']:,} of the cheater's collateral taken")

    # ------------------------------------------------------------------ payouts, books

    def payouts(self) -> None:
        """Wait until nothing moves: claims final, every paid query redeemed, twice in a row
        at least two blocks apart."""
        last: list[Any] = []

        def settled() -> bool:
            claims = self.c.claims()
            rec = self.c.host(self.s.child_id, self.addr["host"])
            voucher = self.c.call(NODES["host"], "host_permissions")["voucher"]
            snap = self.prover()
            state = [len(claims), rec["redeemed_amount"] if rec else None,
                     snap["total_probes"]]
            done = (all(c["status"] in FINAL_CLAIM for c in claims) and rec is not None
                    and rec["redeemed_amount"] == voucher["cumulative_amount"]
                    and all(c.get("outcome") for c in snap["claims"]))
            if done and last and last[0] == state and self.height() >= last[1] + 2:
                return True
            if not done or not last or last[0] != state:
                last[:] = [state, self.height()]
            return False

        self.c.wait(settled, "every paid query to be redeemed and the claims to settle",
                    interval=1.0)
        rec = self.c.host(self.s.child_id, self.addr["host"])
        assert rec is not None
        self.say("payouts", f"owner redeemed all {rec['redeemed_count']} paid queries "
                            f"({rec['redeemed_amount']:,}); nothing left to settle")

    def ok_probes_at(self, endpoint: str) -> int:
        return sum(1 for p in self.all_probes()
                   if p["endpoint"] == endpoint and p["outcome"] == "ok")

    def report(self, before: dict[str, int]) -> dict[str, Any]:
        """Balances, claims, supply on every node, the checks; and the table as text."""
        assert self.net is not None and self.front is not None
        s, after = self.s, self.balances()
        host = self.c.host(s.child_id, self.addr["host"])
        cheater = self.c.host(s.child_id, self.addr["cheater"])
        assert host is not None and cheater is not None
        q = int(host["redeemed_count"])
        funded = int(host["escrow"]) + int(host["redeemed_amount"])
        accounts = [Account(label, ROLE_LABELS[label], self.addr[label], before[label],
                            after[label]) for label in ROLE_LABELS]
        want = expected_changes(s, q=q, funded=funded)
        supplies = {n: self.c.call(n, "supply") for n in NODES.values()}
        claims = self.c.claims()
        probes = self.ok_probes_at(self.front.url)
        checks = balance_checks(s, accounts, q=q, funded=funded)
        checks += record_checks(s, host=host, cheater=cheater, q=q, funded=funded,
                                burned=int(supplies["node0"]["burned"]))
        checks += claim_checks(claims, host=self.addr["host"], cheater=self.addr["cheater"])
        checks.append(Check("paid queries = the user's + the prover's answered probes",
                            q == s.user_queries + probes,
                            f"{q} = {s.user_queries} + {probes}"))
        checks += [Check(f"supply invariant on {n}", sup["balanced"],
                         f"{sup['total']:,} of {sup['genesis_supply']:,} at height "
                         f"{sup['height']}") for n, sup in supplies.items()]
        table = render_table(accounts, want, checks, self.timeline)
        return {
            "ok": all(c.ok for c in checks), "table": table,
            "paid_queries": q, "funded": funded, "per_query": s.per_query(),
            "slash": s.slash(), "settings": {"price": s.price, "royalty_bp": s.royalty_bp,
                                             "split_a_bp": s.split_a_bp,
                                             "split_b_bp": s.split_b_bp,
                                             "host_collateral": s.host_collateral,
                                             "cheater_collateral": s.cheater_collateral,
                                             "omlizer_bond": s.omlizer_bond,
                                             "prover_bond": s.prover_bond,
                                             "user_queries": s.user_queries,
                                             "params": s.chain_params},
            "accounts": [{"label": a.label, "role": a.role, "address": a.address,
                          "before": a.before, "after": a.after, "change": a.change,
                          "expected": want[a.label]} for a in accounts],
            "claims": [{"claim_id": c["claim_id"], "host": self.label(c["host"]),
                        "status": c["status"], "bond": c["bond"],
                        "committed_height": c["committed_height"],
                        "opened_height": c["opened_height"],
                        "decided_height": c["decided_height"],
                        "items": len(c["items"]), "matches": c.get("matches")}
                       for c in claims],
            "hosts": {"host": host, "cheater": cheater},
            "supply": supplies,
            "checks": [c.to_json() for c in checks],
            "steps": self.timeline, "narration": self.notes,
            "seconds": round(time.monotonic() - self.t0, 1),
        }


def run_demo(root: Path, settings: DemoSettings | None = None,
             narrate: TextIO | None = None) -> dict[str, Any]:
    """Play the story in ``root``; the report (``report["ok"]``: every check passed)."""
    root.mkdir(parents=True, exist_ok=True)
    return Story(root, settings, narrate).run()


__all__ = ["Story", "run_demo"]
