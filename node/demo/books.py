"""The closing books: what every account must have gained or lost, and the checks.

Expected amounts come from :class:`DemoSettings` (price, splits, royalty,
slash split, bonds) and two counts the story produces and the chain
records: ``q``, the queries the honest host paid for (the users' and the
prover's probes at its gateway; cross-checked against both), and
``funded``, what its gateway put into its fee channel (whole top-ups of
``fund_amount``). Nothing else is taken from the chain: the observed
balance changes are compared with these numbers, exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .settings import DemoSettings


@dataclass(frozen=True)
class Account:
    """One account in the books: a label, what it is, its address, its two balances."""

    label: str
    role: str
    address: str
    before: int
    after: int

    @property
    def change(self) -> int:
        return self.after - self.before


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


def expected_changes(s: DemoSettings, *, q: int, funded: int) -> dict[str, int]:
    """Balance change of each labelled account after ``q`` paid queries and one slash."""
    one = s.per_query()
    slash = s.slash()
    return {
        "owner": q * (one["owner"] + one["fee"]) + slash["owner_share"],
        "parent_owner": q * one["royalty"],
        "contributor_a": q * one["split_a"],
        "contributor_b": q * one["split_b"],
        "omlizer": -s.omlizer_bond,
        "host": -(s.host_collateral + funded),
        "cheater": -s.cheater_collateral,
        "prover": -s.prover_bond + slash["reward"],
    }


def balance_checks(s: DemoSettings, accounts: list[Account], *, q: int,
                   funded: int) -> list[Check]:
    want = expected_changes(s, q=q, funded=funded)
    return [Check(f"balance change of {a.label}", a.change == want[a.label],
                  f"{a.change:+,} (expected {want[a.label]:+,})") for a in accounts]


def record_checks(s: DemoSettings, *, host: dict[str, Any], cheater: dict[str, Any],
                  q: int, funded: int, burned: int) -> list[Check]:
    """The hosts' ledger records and the burn, against the settings."""
    slash = s.slash()
    paid = q * s.price
    return [
        Check("honest host's collateral intact",
              host["collateral"] == s.host_collateral and host["slashed_total"] == 0,
              f"collateral {host['collateral']:,}, slashed {host['slashed_total']:,}"),
        Check("honest host's channel: redeemed = q x price, escrow = funded - redeemed",
              host["redeemed_amount"] == paid and host["escrow"] == funded - paid,
              f"redeemed {host['redeemed_amount']:,} of {paid:,}, escrow {host['escrow']:,}"),
        Check("gateway funded in whole top-ups within its budget",
              funded % (s.fund_amount_queries * s.price) == 0
              and funded <= s.fund_budget_queries * s.price,
              f"funded {funded:,}"),
        Check("cheater slashed by slash_fraction of its collateral",
              cheater["slashed_total"] == slash["slashed"]
              and cheater["collateral"] == s.cheater_collateral - slash["slashed"],
              f"slashed {cheater['slashed_total']:,} (expected {slash['slashed']:,}), "
              f"collateral left {cheater['collateral']:,}"),
        Check("burned = the slash's burned share", burned == slash["burned"],
              f"burned {burned:,} (expected {slash['burned']:,})"),
    ]


def claim_checks(claims: list[dict[str, Any]], *, host: str, cheater: str) -> list[Check]:
    """Exactly two claims: the cheater's slashed, the honest host's audit dismissed."""
    by_host = {(c["host"], c["status"]) for c in claims}
    return [
        Check("the cheater's claim slashed", (cheater, "slashed") in by_host,
              ", ".join(f"#{c['claim_id']} {c['status']}" for c in claims
                        if c["host"] == cheater) or "no claim"),
        Check("the honest host's claim dismissed by its rebuttal", (host, "dismissed") in by_host,
              ", ".join(f"#{c['claim_id']} {c['status']}" for c in claims
                        if c["host"] == host) or "no claim"),
        Check("no other claims", len(claims) == 2, f"{len(claims)} claims"),
    ]


def render_table(accounts: list[Account], want: dict[str, int], checks: list[Check],
                 timeline: list[dict[str, Any]]) -> str:
    """The closing table: balances, then the checks, then seconds per phase."""
    lines = [f"{'account':<14} {'role':<34} {'change':>14} {'expected':>14}  ok",
             "-" * 82]
    for a in accounts:
        ok = "yes" if a.change == want[a.label] else "NO"
        lines.append(f"{a.label:<14} {a.role:<34} {a.change:>+14,} {want[a.label]:>+14,}  {ok}")
    lines += ["", "checks:"]
    lines += [f"  [{'ok' if c.ok else 'FAIL'}] {c.name}: {c.detail}" for c in checks]
    lines += ["", f"{'phase':<12} {'seconds':>8} {'heights':>12}"]
    for step in timeline:
        lines.append(f"{step['name']:<12} {step['seconds']:>8.1f} "
                     f"{step['height_start']:>5}..{step['height_end']:<5}")
    total = sum(step["seconds"] for step in timeline)
    lines.append(f"{'total':<12} {total:>8.1f}")
    return "\n".join(lines)


__all__ = ["Account", "Check", "balance_checks", "claim_checks", "expected_changes",
           "record_checks", "render_table"]
