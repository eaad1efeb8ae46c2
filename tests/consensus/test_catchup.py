"""Catch-up: real signed chains verified in order; forged commits rejected with the reason
and the peer that sent them; request planning across peers; out-of-order answers."""

from __future__ import annotations

from dataclasses import replace

import pytest

from consensus.block import Block, Commit
from consensus.catchup import (
    BlockRequest,
    CatchUp,
    SyncBlockError,
    SyncFault,
    SyncResult,
    verify_synced_block,
)
from consensus.errors import ConsensusMisuseError, InvalidMessageError
from consensus.vote import Vote, VoteType
from tests.consensus._persist_chain import CHAIN_ID, Chain, make_chain, make_signers, sign_commit


def new_catchup(chain: Chain, **kw: int) -> CatchUp:
    return CatchUp(chain_id=chain.chain_id, valset=chain.valset, height=0, last_block_id=b"",
                   **kw)


def fault_of(chain: Chain, block: Block, commit: Commit, height: int = 1,
             prev: bytes = b"") -> SyncFault:
    with pytest.raises(SyncBlockError) as info:
        verify_synced_block(chain_id=chain.chain_id, valset=chain.valset, height=height,
                            prev_block_id=prev, block=block, commit=commit)
    assert isinstance(info.value, InvalidMessageError)  # peer misbehaviour family
    return info.value.fault


@pytest.fixture(scope="module")
def chain() -> Chain:
    return make_chain(12)


def test_honest_chain_verifies_and_is_handed_out_in_order(chain: Chain) -> None:
    cu = new_catchup(chain)
    cu.on_peer_status("A", 12)
    assert not cu.caught_up
    got = []
    while not cu.caught_up:
        reqs = cu.next_requests()
        assert reqs, "a peer is ahead, so something must be requested"
        for r in reqs:
            res = cu.on_blocks(r.peer, chain.pairs(r.first, r.last))
            assert res.rejected == ()
            got.extend(v.block for v in res.ready)
    assert [b.height for b in got] == list(range(1, 13))
    assert [b.id() for b in got] == [b.id() for b in chain.blocks]
    assert cu.height == 12 and cu.last_block_id == chain.blocks[-1].id()


def test_forged_commit_bad_signature(chain: Chain) -> None:
    good = chain.commits[0]
    sigs = list(good.signatures)
    sigs[2] = bytes(64)  # present but forged
    assert fault_of(chain, chain.blocks[0], replace(good, signatures=tuple(sigs))) \
        == SyncFault.BAD_SIGNATURE
    # A real signature by the right validator, but for another block, is just as bad.
    other = sign_commit(chain.chain_id, chain.valset, chain.signers, 1, b"\x07" * 32)
    sigs[2] = other.signatures[2]
    assert fault_of(chain, chain.blocks[0], replace(good, signatures=tuple(sigs))) \
        == SyncFault.BAD_SIGNATURE


def test_forged_commit_too_little_power(chain: Chain) -> None:
    block = chain.blocks[0]
    two_of_four = sign_commit(chain.chain_id, chain.valset, chain.signers, 1, block.id(),
                              who=[0, 1])
    assert fault_of(chain, block, two_of_four) == SyncFault.INSUFFICIENT_POWER
    three_of_four = sign_commit(chain.chain_id, chain.valset, chain.signers, 1, block.id(),
                                who=[0, 1, 3])
    verify_synced_block(chain_id=chain.chain_id, valset=chain.valset, height=1,
                        prev_block_id=b"", block=block, commit=three_of_four)


def test_weighted_power_counts_not_heads() -> None:
    """Three of four signers is not enough when the missing one holds most power."""
    valset, signers = make_signers(4, powers=[70, 10, 10, 10])
    ch = Chain(valset, signers).extend(1)
    block = ch.blocks[0]
    heavy = valset.index_of(max(valset.validators, key=lambda v: v.power).address)
    others = [i for i in range(4) if i != heavy]
    weak = sign_commit(ch.chain_id, valset, signers, 1, block.id(), who=others)
    assert fault_of(ch, block, weak) == SyncFault.INSUFFICIENT_POWER
    strong = sign_commit(ch.chain_id, valset, signers, 1, block.id(), who=[heavy, others[0]])
    verify_synced_block(chain_id=ch.chain_id, valset=valset, height=1, prev_block_id=b"",
                        block=block, commit=strong)


def test_commit_for_another_block_or_height(chain: Chain) -> None:
    # A genuine +2/3 commit, but for block 2, sent with block 1.
    assert fault_of(chain, chain.blocks[0], replace(chain.commits[1], height=1)) \
        == SyncFault.WRONG_BLOCK
    assert fault_of(chain, chain.blocks[0], chain.commits[1]) == SyncFault.WRONG_COMMIT_HEIGHT


def test_unknown_or_extra_signer_slots(chain: Chain) -> None:
    good = chain.commits[0]
    extra = replace(good, signatures=good.signatures + (good.signatures[0],))
    assert fault_of(chain, chain.blocks[0], extra) == SyncFault.WRONG_SIZE
    # Signed by an outsider's key: slots line up but the signature is not the member's.
    outsiders, out_signers = make_signers(4, salt=9)
    forged = sign_commit(chain.chain_id, outsiders, out_signers, 1, chain.blocks[0].id())
    assert fault_of(chain, chain.blocks[0], forged) == SyncFault.BAD_SIGNATURE


def test_commit_signed_for_another_chain(chain: Chain) -> None:
    block = chain.blocks[0]
    other = sign_commit("other-chain", chain.valset, chain.signers, 1, block.id())
    assert fault_of(chain, block, other) == SyncFault.BAD_SIGNATURE


def test_block_level_faults(chain: Chain) -> None:
    b1, c1 = chain.blocks[0], chain.commits[0]
    assert fault_of(chain, b1, c1, height=2, prev=b1.id()) == SyncFault.WRONG_HEIGHT
    # Block 2 on top of a different block 1.
    assert fault_of(chain, chain.blocks[1], chain.commits[1], height=2, prev=b"\x01" * 32) \
        == SyncFault.WRONG_PREVIOUS
    # Transactions swapped after the header was committed.
    tampered = Block(header=b1.header, txs=(b"evil",), last_commit=None)
    assert fault_of(chain, tampered, c1) == SyncFault.INVALID_BLOCK
    # A whole chain for another chain id, validly signed there.
    alien = Chain(chain.valset, chain.signers, chain_id="alien").extend(1)
    assert fault_of(chain, alien.blocks[0], alien.commits[0]) == SyncFault.WRONG_CHAIN


def _rebuilt(block: Block, **header_changes: object) -> Block:
    header = replace(block.header, **header_changes)
    return Block(header=header, txs=block.txs, last_commit=block.last_commit)


def test_validator_set_and_proposer_checks(chain: Chain) -> None:
    b1 = chain.blocks[0]
    other_set, _ = make_signers(4, salt=5)
    wrong_set = _rebuilt(b1, validators_hash=other_set.hash())
    commit = sign_commit(chain.chain_id, chain.valset, chain.signers, 1, wrong_set.id())
    assert fault_of(chain, wrong_set, commit) == SyncFault.WRONG_VALIDATORS
    stranger = _rebuilt(b1, proposer_address=b"\x42" * 20)
    commit = sign_commit(chain.chain_id, chain.valset, chain.signers, 1, stranger.id())
    assert fault_of(chain, stranger, commit) == SyncFault.UNKNOWN_PROPOSER


def test_malformed_bytes_are_rejected_and_peer_dropped(chain: Chain) -> None:
    cu = new_catchup(chain)
    cu.on_peer_status("A", 12)
    cu.on_peer_status("B", 12)
    res = cu.on_blocks("A", [(b"\x93garbage", chain.pair(1)[1])])
    assert res.ready == () and len(res.rejected) == 1
    rej = res.rejected[0]
    assert rej.peer == "A" and rej.error.fault == SyncFault.MALFORMED and rej.error.height == 1
    assert cu.height == 0
    reqs = cu.next_requests()
    assert [r.peer for r in reqs] == ["B"]  # A is forgotten until it reports again


def test_rejection_keeps_verified_prefix_and_blames_the_sender(chain: Chain) -> None:
    cu = new_catchup(chain, batch=4)
    cu.on_peer_status("honest", 12)
    cu.on_peer_status("liar", 12)
    reqs = {r.peer: r for r in cu.next_requests()}
    assert reqs["honest"] == BlockRequest(peer="honest", first=1, last=4)
    assert reqs["liar"] == BlockRequest(peer="liar", first=5, last=8)
    pairs = chain.pairs(5, 8)
    weak = sign_commit(chain.chain_id, chain.valset, chain.signers, 6, chain.blocks[5].id(),
                       who=[0])
    pairs[1] = (pairs[1][0], weak.encode())
    # The liar answers first: nothing can be verified yet (block 4 is missing).
    res = cu.on_blocks("liar", pairs)
    assert res.ready == () and res.rejected == ()
    res = cu.on_blocks("honest", chain.pairs(1, 4))
    assert [v.block.height for v in res.ready] == [1, 2, 3, 4, 5]
    assert [v.peer for v in res.ready] == ["honest"] * 4 + ["liar"]
    assert len(res.rejected) == 1
    assert res.rejected[0].peer == "liar"
    assert res.rejected[0].error.fault == SyncFault.INSUFFICIENT_POWER
    assert res.rejected[0].error.height == 6
    # Height 6 onwards is requested again, from the honest peer only.
    reqs = cu.next_requests()
    assert reqs == [BlockRequest(peer="honest", first=6, last=9)]
    res = cu.on_blocks("honest", chain.pairs(6, 9))
    assert [v.block.height for v in res.ready] == [6, 7, 8, 9]


def test_request_planning_respects_peer_ranges_and_in_flight(chain: Chain) -> None:
    cu = new_catchup(chain, batch=3, max_ahead=9)
    cu.on_peer_status("low", 4)
    cu.on_peer_status("high", 12, base=1)
    cu.on_peer_status("pruned", 12, base=7)
    reqs = cu.next_requests()
    # The next height goes to the highest peer; "pruned" lacks 4..6; "low" can serve 4.
    assert reqs == [BlockRequest(peer="high", first=1, last=3),
                    BlockRequest(peer="low", first=4, last=4),
                    BlockRequest(peer="pruned", first=7, last=9)]
    assert cu.next_requests() == []  # every peer busy
    cu.on_request_failed("high")
    assert cu.next_requests() == [BlockRequest(peer="high", first=1, last=3)]
    # An empty answer: "low" lacks block 4 after all; it won't be asked for it again.
    assert cu.on_blocks("low", []).ready == ()
    res = cu.on_blocks("high", chain.pairs(1, 3))
    assert [v.block.height for v in res.ready] == [1, 2, 3]
    assert cu.next_requests() == [BlockRequest(peer="high", first=4, last=6)]


def test_more_blocks_than_asked_is_unsolicited(chain: Chain) -> None:
    cu = new_catchup(chain, batch=2)
    cu.on_peer_status("A", 12)
    assert len(cu.next_requests()) == 1
    res = cu.on_blocks("A", chain.pairs(1, 3))
    assert res.rejected[0].error.fault == SyncFault.UNSOLICITED and res.ready == ()
    assert cu.height == 0


def test_plain_verifier_mode_without_requests(chain: Chain) -> None:
    """node.sync's fetch loop hands pairs starting at our next height, unplanned."""
    cu = new_catchup(chain)
    res = cu.on_blocks("peer", chain.pairs(1, 5))
    assert [v.block.height for v in res.ready] == [1, 2, 3, 4, 5]
    res = cu.on_blocks("peer", chain.pairs(6, 6))
    assert [v.block.height for v in res.ready] == [6]
    # Replaying old blocks does nothing (they are below our height).
    assert cu.on_blocks("peer", chain.pairs(1, 2)).ready == ()


def test_reset_after_failed_apply_and_resume_mid_chain(chain: Chain) -> None:
    cu = CatchUp(chain_id=chain.chain_id, valset=chain.valset, height=6,
                 last_block_id=chain.blocks[5].id())
    res = cu.on_blocks("p", chain.pairs(7, 9))
    assert [v.block.height for v in res.ready] == [7, 8, 9]
    cu.reset(7, chain.blocks[6].id())  # applying 8 failed: go back
    res = cu.on_blocks("p", chain.pairs(8, 8))
    assert [v.block.height for v in res.ready] == [8]
    # Resuming from the wrong parent rejects the next block.
    cu.reset(9, chain.blocks[2].id())
    res = cu.on_blocks("p", chain.pairs(10, 10))
    assert res.rejected[0].error.fault == SyncFault.WRONG_PREVIOUS


def test_misuse_is_typed(chain: Chain) -> None:
    with pytest.raises(ConsensusMisuseError):
        CatchUp(chain_id=CHAIN_ID, valset=chain.valset, height=0, last_block_id=b"x")
    with pytest.raises(ConsensusMisuseError):
        CatchUp(chain_id=CHAIN_ID, valset=chain.valset, height=0, last_block_id=b"", batch=0)
    cu = new_catchup(chain)
    with pytest.raises(ConsensusMisuseError):
        cu.on_peer_status("A", -1)


def test_nil_precommits_do_not_count() -> None:
    """Precommits for nil (or another block) in a commit slot are signatures over another body."""
    valset, signers = make_signers(4)
    ch = Chain(valset, signers).extend(1)
    block = ch.blocks[0]
    good = sign_commit(ch.chain_id, valset, signers, 1, block.id(), who=[0, 1])
    nil_sigs = [Vote.create(signers[i], ch.chain_id, type=VoteType.PRECOMMIT, height=1, round=0,
                            block_id=b"", validator_index=i).signature for i in (2, 3)]
    mixed = replace(good, signatures=good.signatures[:2] + tuple(nil_sigs))
    assert fault_of(ch, block, mixed) == SyncFault.BAD_SIGNATURE


def test_stale_answer_after_a_given_up_request_is_ignored(chain: Chain) -> None:
    cu = new_catchup(chain, batch=3)
    cu.on_peer_status("A", 12)
    assert cu.next_requests() == [BlockRequest(peer="A", first=1, last=3)]
    cu.on_request_failed("A")  # timed out
    assert cu.next_requests() == [BlockRequest(peer="A", first=1, last=3)]
    # Both answers arrive; they are for the same range, so the first one counts.
    res = cu.on_blocks("A", chain.pairs(1, 3), first=1)
    assert [v.block.height for v in res.ready] == [1, 2, 3]
    assert cu.next_requests() == [BlockRequest(peer="A", first=4, last=6)]
    # A late answer for 1..3 now meets a request for 4..6: ignored, request kept open.
    res = cu.on_blocks("A", chain.pairs(1, 3), first=1)
    assert res == SyncResult()
    assert cu.next_requests() == []
    res = cu.on_blocks("A", chain.pairs(4, 6), first=4)
    assert [v.block.height for v in res.ready] == [4, 5, 6]
    # Unplanned pairs at an explicit height are buffered until they connect.
    res = cu.on_blocks("B", chain.pairs(8, 8), first=8)
    assert res.ready == ()
    res = cu.on_blocks("B", chain.pairs(7, 7), first=7)
    assert [v.block.height for v in res.ready] == [7, 8]
