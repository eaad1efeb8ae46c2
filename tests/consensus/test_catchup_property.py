"""Property test of catch-up planning: with any mix of honest and lying peers, answers in any
order, lost requests and short answers, the blocks handed out are exactly the true chain,
in order, each once; every lie is rejected and blamed on the liar; with one honest peer
the node catches up."""

from __future__ import annotations

import random
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from consensus.catchup import CatchUp, SyncFault
from tests.consensus._persist_chain import Chain, make_chain, sign_commit

CHAIN = make_chain(30)
#: A competing chain with the same validators: valid commits, different blocks.
FORK = Chain(CHAIN.valset, CHAIN.signers, chain_id=CHAIN.chain_id).extend(30, txs_per_block=1)

LIES = ["weak_commit", "forged_sig", "fork_block", "garbage", "other_block_commit"]


def lie(kind: str, height: int) -> tuple[bytes, bytes]:
    block, commit = CHAIN.blocks[height - 1], CHAIN.commits[height - 1]
    if kind == "weak_commit":
        weak = sign_commit(CHAIN.chain_id, CHAIN.valset, CHAIN.signers, height, block.id(),
                           who=[0, 1])
        return block.encode(), weak.encode()
    if kind == "forged_sig":
        sigs = list(commit.signatures)
        sigs[1] = bytes(64)
        return block.encode(), replace(commit, signatures=tuple(sigs)).encode()
    if kind == "fork_block":
        return FORK.pair(height)
    if kind == "garbage":
        return b"\x01\x02", commit.encode()
    return block.encode(), FORK.commits[height - 1].encode()


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_honest=st.integers(1, 3), n_liars=st.integers(0, 3),
       batch=st.integers(1, 7), start=st.integers(0, 10))
def test_catch_up_hands_out_exactly_the_true_chain(seed: int, n_honest: int, n_liars: int,
                                                  batch: int, start: int) -> None:
    rng = random.Random(seed)
    top = 30
    liars = {f"liar{i}": rng.choice(LIES) for i in range(n_liars)}
    honest = [f"honest{i}" for i in range(n_honest)]
    last_id = CHAIN.blocks[start - 1].id() if start else b""
    cu = CatchUp(chain_id=CHAIN.chain_id, valset=CHAIN.valset, height=start,
                 last_block_id=last_id, batch=batch, max_ahead=max(batch, 12))
    for p in honest + list(liars):
        cu.on_peer_status(p, top)
    handed: list[int] = []
    blamed: set[str] = set()
    pending: list[tuple[str, int, int]] = []
    for _ in range(2000):
        if cu.caught_up:
            break
        for req in cu.next_requests():
            pending.append((req.peer, req.first, req.last))
        if not pending:
            # Everyone we knew was dropped or exhausted: honest peers re-report.
            for p in honest:
                cu.on_peer_status(p, top)
            continue
        peer, first, last = pending.pop(rng.randrange(len(pending)))
        roll = rng.random()
        if roll < 0.1:
            cu.on_request_failed(peer)
            continue
        if roll < 0.2:
            last = rng.randint(first, last)  # a short answer
        pairs = [CHAIN.pair(h) for h in range(first, last + 1)]
        if peer in liars:
            i = rng.randrange(len(pairs))
            pairs[i] = lie(liars[peer], first + i)
        result = cu.on_blocks(peer, pairs, first=first)
        handed.extend(v.block.height for v in result.ready)
        for v in result.ready:  # (a liar's true blocks are fine to use)
            assert v.block.id() == CHAIN.blocks[v.block.height - 1].id()
        for r in result.rejected:
            assert r.peer in liars, f"honest peer blamed: {r}"
            assert isinstance(r.error.fault, SyncFault)
            blamed.add(r.peer)
        # A rejected peer is forgotten; its pending answers are now stale.
        pending = [x for x in pending if x[0] not in blamed]
    assert handed == list(range(start + 1, top + 1))
    assert cu.height == top and cu.last_block_id == CHAIN.blocks[-1].id()
