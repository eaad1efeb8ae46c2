"""``/oml/prover-keys/1`` between real libp2p hosts on loopback: a prover fetches its keys.

The OMLizer side serves a hand-off table filled the way the service fills
it (:func:`deal` over a real secrets set, sealed per prover); the prover
side is :func:`fetch_prover_keys`, the client the prover role uses.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import trio

from consensus.crypto import PrivateKey
from net import NetConfig, open_transport
from node.roles.cursor import RoleDB
from node.roles.omlizer import handoff
from node.roles.omlizer.handoff import PROTOCOL, KeysServer, deal, fetch_prover_keys, key_groups
from node.roles.omlizer.jobs import TABLES, JobStore, job_key
from oml.sidecar import make_secrets, seal_prover_keys

CHAIN = "keys-test"


def key(name: str) -> PrivateKey:
    return PrivateKey(hashlib.sha256(name.encode()).digest())


def fill(store: JobStore, provers: list[PrivateKey], hosts: int) -> dict[bytes, set[str]]:
    """Deal ``hosts`` hosts' keys (8 keys, one backup each) to ``provers``; keys per prover."""
    given: dict[bytes, set[str]] = {p.address: set() for p in provers}
    for h in range(hosts):
        host = bytes([h + 1]) * 20
        items = [type("F", (), {"index": i, "key": f"key {h} {i // 2}",
                                "response": f" r{i}"})() for i in range(16)]
        secrets = make_secrets("m", host, items)
        dealt = deal(key_groups(secrets.entries), [p.address for p in provers], host)
        for p in provers:
            if p.address in dealt:
                store.put_handoff(p.address, job_key(b"m", host, 0),
                                  seal_prover_keys(secrets, dealt[p.address], p.public_key))
                given[p.address] |= {secrets.entry(i).key for i in dealt[p.address]}
    return given


@pytest.mark.parametrize("page_bytes", [1 << 20, 1], ids=["one-page", "paged"])
async def test_prover_fetches_only_its_own_disjoint_sets_over_libp2p(
        tmp_path: Path, page_bytes: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(handoff, "RESPONSE_BUDGET", page_bytes)  # 1: one set per response
    provers = [key("prover-a"), key("prover-b")]
    db = RoleDB(tmp_path / "db", TABLES)
    store = JobStore(db)
    given = fill(store, provers, hosts=3)
    assert not given[provers[0].address] & given[provers[1].address]
    clock = lambda: 1_000_000  # noqa: E731 - both sides agree on the time
    server = KeysServer(store, chain_id=CHAIN, clock_ms=clock)
    with trio.fail_after(30):
        async with open_transport(NetConfig(seed=b"o" * 32)) as omlizer, \
                open_transport(NetConfig(seed=b"p" * 32)) as prover, \
                open_transport(NetConfig(seed=b"q" * 32)) as bystander:
            omlizer.set_handler(PROTOCOL, server.handle)
            await prover.connect(omlizer.listen_addrs[0])
            await prover.connect(bystander.listen_addrs[0])
            for p in provers:
                sets, failures = await fetch_prover_keys(
                    prover, [omlizer.peer_id, bystander.peer_id], seed=p.seed,
                    chain_id=CHAIN, clock_ms=clock, timeout=5)
                assert [s.host for s in sets] == [bytes([h + 1]) * 20 for h in range(3)]
                assert {k for s in sets for _, k in s.keys} == given[p.address]
                assert all(s.omlizer_peer == omlizer.peer_id and s.model_id == b"m"
                           for s in sets)
                assert list(failures) == [bystander.peer_id]  # speaks no such protocol
            # a request signed for another chain is refused, and says why
            _, failures = await fetch_prover_keys(prover, [omlizer.peer_id],
                                                  seed=provers[0].seed, chain_id="other",
                                                  clock_ms=clock, timeout=5)
            assert "signature" in failures[omlizer.peer_id]
    db.close()
