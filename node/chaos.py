"""The checkers of a chaos run: pure functions over what the run collected.

``bench/chaos.py`` drives a testnet with transfers while it kills, freezes
and restarts validators; ``tests/e2e/test_chaos.py`` runs a short version.
Both hand what they saw to the functions here, which decide:

- no fork: at every height, every node that has the block has the same
  block hash (the hash covers the header, so also the app hash it carries);
- identical app hashes: the header of height ``h + 1`` carries the app hash
  after ``h``; compared across nodes height by height, so a divergence is
  reported at the first height it appears;
- no lost acknowledged transaction: every transaction whose commit a client
  was told of (``broadcast_tx_commit`` returned a height, or ``tx`` found
  it) is in the block at that height on every node;
- liveness: after each heal a majority of the validators reaches a height
  above the highest one seen at the heal, within a limit;
- rejoin: each healed node follows the chain again (reaches that height too).

They take plain data (no sockets, clocks or processes) so a test can feed
them a fork, a lost transaction or a stall and watch them fail (the
controls in ``tests/e2e/test_chaos.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

#: How many examples a failed check names in its detail.
EXAMPLES = 3


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockRecord:
    """One block as one node reports it over RPC (hashes as hex)."""

    height: int
    hash: str
    app_hash: str
    txs: frozenset[str]  # sha256 of each transaction, hex
    time_ms: int = 0  # header time


#: node name -> height -> the block that node holds at that height.
Chains = Mapping[str, Mapping[int, BlockRecord]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Acked:
    """A transaction whose commit was acknowledged to a client."""

    tx_hash: str
    height: int
    via: str  # "commit" (broadcast_tx_commit) or "tx" (found by the tx RPC)
    node: str  # the node that acknowledged it


@dataclass(frozen=True, slots=True, kw_only=True)
class Heal:
    """The end of one fault and how the chain came back after it.

    ``recovery_s``: seconds from the heal until a majority of the validators
    passed the highest height seen at the heal; None if it never did within
    the run's deadline. ``rejoin_s``: the same for the healed node itself.
    """

    node: str
    fault: str  # "kill", "stop" or "restart"
    top_at_heal: int
    recovery_s: float | None
    rejoin_s: float | None


@dataclass(frozen=True, slots=True)
class Check:
    """The verdict of one checker, with a one-line reason."""

    name: str
    ok: bool
    detail: str


def check_no_fork(chains: Chains) -> Check:
    """Every height held by two or more nodes has one block hash on all of them."""
    forks: list[str] = []
    compared = 0
    for height in sorted({h for blocks in chains.values() for h in blocks}):
        hashes = {name: blocks[height].hash for name, blocks in chains.items()
                  if height in blocks}
        if len(hashes) < 2:
            continue
        compared += 1
        if len(set(hashes.values())) > 1:
            forks.append(f"h{height}: " + ", ".join(f"{n}={v[:12]}"
                                                    for n, v in sorted(hashes.items())))
    if forks:
        return Check("no fork", False, f"{len(forks)} forked heights, first: "
                     + "; ".join(forks[:EXAMPLES]))
    return Check("no fork", True, f"{compared} heights identical on {len(chains)} nodes")


def check_app_hashes(chains: Chains) -> Check:
    """The app hash in each header (the state after the height before) agrees across nodes."""
    diverged: list[str] = []
    compared = 0
    for height in sorted({h for blocks in chains.values() for h in blocks}):
        apps = {name: blocks[height].app_hash for name, blocks in chains.items()
                if height in blocks}
        if len(apps) < 2:
            continue
        compared += 1
        if len(set(apps.values())) > 1:
            diverged.append(f"after h{height - 1}: " + ", ".join(
                f"{n}={v[:12]}" for n, v in sorted(apps.items())))
    if diverged:
        return Check("identical app hashes", False, f"{len(diverged)} heights differ, first: "
                     + "; ".join(diverged[:EXAMPLES]))
    return Check("identical app hashes", True, f"{compared} app hashes identical")


def check_converged(chains: Chains, target: int) -> Check:
    """Every node holds every block 1..``target`` (the chain was checked to its top)."""
    short = {name: [h for h in range(1, target + 1) if h not in blocks]
             for name, blocks in chains.items()}
    missing = {n: hs for n, hs in short.items() if hs}
    if target < 1 or missing:
        return Check("all nodes hold 1..top", False, f"top {target}; missing: " + "; ".join(
            f"{n}: {len(hs)} heights from {hs[0]}" for n, hs in sorted(missing.items())))
    return Check("all nodes hold 1..top", True, f"{len(chains)} nodes x {target} blocks")


def lost_acked(chains: Chains, acked: Iterable[Acked]) -> list[tuple[Acked, str]]:
    """Each acknowledged transaction missing from its block on some node, with that node."""
    lost: list[tuple[Acked, str]] = []
    for a in acked:
        for name, blocks in sorted(chains.items()):
            block = blocks.get(a.height)
            if block is None or a.tx_hash not in block.txs:
                lost.append((a, name))
                break
    return lost


def check_acked_txs(chains: Chains, acked: Sequence[Acked]) -> Check:
    """Every acknowledged transaction is in the block at its height on every node."""
    lost = lost_acked(chains, acked)
    if lost or not acked:
        return Check("0 lost acknowledged txs", False, f"{len(lost)} of {len(acked)} lost: "
                     + "; ".join(f"{a.tx_hash[:12]} at h{a.height} ({a.via} by {a.node}) "
                                 f"missing on {n}" for a, n in lost[:EXAMPLES])
                     if acked else "no transaction was acknowledged (the load never ran)")
    return Check("0 lost acknowledged txs", True,
                 f"{len(acked)} acknowledged txs found at their heights on {len(chains)} nodes")


def check_liveness(heals: Sequence[Heal], limit_s: float) -> Check:
    """After every heal the chain advanced on a majority within ``limit_s``."""
    return _within("liveness after each heal", [(h, h.recovery_s) for h in heals], limit_s)


def check_rejoin(heals: Sequence[Heal], limit_s: float) -> Check:
    """After every heal the healed node followed the chain again within ``limit_s``."""
    return _within("healed node rejoins", [(h, h.rejoin_s) for h in heals], limit_s)


def _within(name: str, times: list[tuple[Heal, float | None]], limit_s: float) -> Check:
    if not times:
        return Check(name, False, "no fault was healed")
    bad = [(h, t) for h, t in times if t is None or t > limit_s]
    if bad:
        return Check(name, False, f"{len(bad)} of {len(times)} over {limit_s:g} s: " + "; ".join(
            f"{h.fault} {h.node} at top {h.top_at_heal}: "
            + ("never" if t is None else f"{t:.1f} s") for h, t in bad[:EXAMPLES]))
    worst = max(t for _, t in times if t is not None)
    return Check(name, True, f"{len(times)} heals, max {worst:.1f} s <= {limit_s:g} s")


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (nearest rank) of ``values``; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def max_p50(values: Sequence[float | None]) -> str:
    """``max / p50`` of the times that exist (a heal that never recovered has none)."""
    times = [v for v in values if v is not None]
    never = len(values) - len(times)
    tail = f" ({never} never)" if never else ""
    if not times:
        return "n/a" + tail
    return f"{max(times):.1f} / {percentile(times, 0.5):.1f} s" + tail


def table(rows: Sequence[tuple[str, str]]) -> str:
    """Two aligned columns, as the benchmarks print them."""
    width = max((len(k) for k, _ in rows), default=0)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


__all__ = [
    "Acked",
    "BlockRecord",
    "Chains",
    "Check",
    "Heal",
    "check_acked_txs",
    "check_app_hashes",
    "check_converged",
    "check_liveness",
    "check_no_fork",
    "check_rejoin",
    "lost_acked",
    "percentile",
    "max_p50",
    "table",
]
