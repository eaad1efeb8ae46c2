"""Consensus types: canonical round trips, signatures, commits, evidence, malformed input."""

from __future__ import annotations

import collections

import pytest

from consensus import (
    Block,
    Commit,
    DecodeError,
    DuplicateVoteEvidence,
    Header,
    InvalidBlockError,
    InvalidCommitError,
    InvalidEvidenceError,
    InvalidMessageError,
    PrivateKey,
    Proposal,
    ProposalMessage,
    Signer,
    ValidatorSet,
    Vote,
    VoteMessage,
    VoteType,
    commit_hash,
    decode_message,
    encode_message,
    txs_root,
    verify_commit,
)
from consensus.encoding import encode
from consensus.errors import ConsensusMisuseError

CHAIN = "test-chain"


def keys(n: int) -> list[Signer]:
    return [Signer(PrivateKey(bytes([i + 1]) * 32)) for i in range(n)]


def make_set(signers: list[Signer], powers: list[int] | None = None) -> ValidatorSet:
    powers = powers or [1] * len(signers)
    return ValidatorSet.from_powers((s.public_key, p) for s, p in zip(signers, powers))


def signer_at(signers: list[Signer], vs: ValidatorSet, i: int) -> Signer:
    return next(s for s in signers if s.address == vs.address_at(i))


def make_block(height: int = 1, txs: tuple[bytes, ...] = (b"a", b"b"),
               last_commit: Commit | None = None, prev: bytes = b"") -> Block:
    header = Header(chain_id=CHAIN, height=height, time_ms=1000 + height, prev_block_id=prev,
                    txs_root=txs_root(txs), app_hash=b"\x00" * 32, proposer_address=b"\x01" * 20,
                    validators_hash=b"\x02" * 32, last_commit_hash=commit_hash(last_commit))
    return Block(header=header, txs=txs, last_commit=last_commit)


def make_commit(signers, vs, block_id, height=1, round=0, who=None) -> Commit:
    sigs = []
    for i in range(len(vs)):
        if who is not None and i not in who:
            sigs.append(b"")
            continue
        v = Vote.create(signer_at(signers, vs, i), CHAIN, type=VoteType.PRECOMMIT, height=height,
                        round=round, block_id=block_id, validator_index=i)
        sigs.append(v.signature)
    return Commit(height=height, round=round, block_id=block_id, signatures=tuple(sigs))


def test_vote_round_trip_and_signature():
    s = keys(1)[0]
    v = Vote.create(s, CHAIN, type=VoteType.PREVOTE, height=3, round=1, block_id=b"\x07" * 32,
                    validator_index=0)
    assert Vote.decode(v.encode()) == v
    assert v.verify_signature(CHAIN, s.public_key)
    assert not v.verify_signature("other-chain", s.public_key)
    nil = Vote.create(s, CHAIN, type=VoteType.PRECOMMIT, height=3, round=1, block_id=b"",
                      validator_index=0)
    assert nil.is_nil and Vote.decode(nil.encode()) == nil
    # a vote signature is not a proposal signature (domain separation)
    p = Proposal(height=3, round=1, pol_round=-1, block_id=b"\x07" * 32, signature=v.signature)
    assert not p.verify_signature(CHAIN, s.public_key)


def test_proposal_round_trip():
    s = keys(1)[0]
    p = Proposal.create(s, CHAIN, height=2, round=3, pol_round=1, block_id=b"\x05" * 32)
    assert Proposal.decode(p.encode()) == p and p.verify_signature(CHAIN, s.public_key)
    with pytest.raises(ConsensusMisuseError):
        Proposal.create(s, CHAIN, height=2, round=1, pol_round=1, block_id=b"\x05" * 32)


@pytest.mark.parametrize("bad", [
    b"", b"\xc0", encode([1, 1, 0, b"", b"\x00" * 20, 0]),                 # too few fields
    encode([3, 1, 0, b"", b"\x00" * 20, 0, b"\x00" * 64]),                 # bad type
    encode([1, 0, 0, b"", b"\x00" * 20, 0, b"\x00" * 64]),                 # height 0
    encode([1, 1, 0, b"\x01" * 5, b"\x00" * 20, 0, b"\x00" * 64]),         # short block id
    encode([1, 1, 0, b"", b"\x00" * 19, 0, b"\x00" * 64]),                 # short address
    encode([1, 1, 0, b"", b"\x00" * 20, 0, b"\x00" * 63]),                 # short signature
    encode([1, 1, -1, b"", b"\x00" * 20, 0, b"\x00" * 64]),                # negative round
])
def test_malformed_vote_rejected(bad):
    with pytest.raises(DecodeError):
        Vote.decode(bad)


def test_malformed_messages_rejected():
    for bad in [encode([9, 1]), encode([2]), encode([]), encode([1, [], [], []]), b"\x93\x01",
                encode([2, [1, 1, 0, b"", b"\x00" * 20, 0, b"\x00" * 64], 5])]:
        with pytest.raises(DecodeError):
            decode_message(bad)
    # pol_round >= round
    with pytest.raises(DecodeError):
        Proposal.decode(encode([1, 1, 1, b"\x00" * 32, b"\x00" * 64]))


def test_block_round_trip_and_validate_basic():
    signers = keys(4)
    vs = make_set(signers)
    b1 = make_block()
    b1.validate_basic()
    assert Block.decode(b1.encode()) == b1
    c1 = make_commit(signers, vs, b1.id())
    b2 = make_block(2, txs=(), last_commit=c1, prev=b1.id())
    b2.validate_basic()
    assert Block.decode(b2.encode()) == b2 and b2.id() != b1.id()
    # tampered transactions no longer match the header
    with pytest.raises(InvalidBlockError):
        Block(header=b1.header, txs=(b"a", b"c"), last_commit=None).validate_basic()
    # a last commit for some other block
    other = make_commit(signers, vs, b"\x09" * 32)
    bad = make_block(2, last_commit=other, prev=b1.id())
    with pytest.raises(InvalidBlockError):
        bad.validate_basic()


def test_message_envelope_round_trip():
    s = keys(1)[0]
    b = make_block()
    p = Proposal.create(s, CHAIN, height=1, round=0, pol_round=-1, block_id=b.id())
    m = ProposalMessage(proposal=p, block=b)
    assert decode_message(encode_message(m)) == m
    v = Vote.create(s, CHAIN, type=VoteType.PREVOTE, height=1, round=0, block_id=b.id(),
                    validator_index=0)
    assert decode_message(encode_message(VoteMessage(vote=v))) == VoteMessage(vote=v)


def test_verify_commit_accepts_quorum_and_rejects_forgeries():
    signers = keys(4)
    vs = make_set(signers)
    bid = b"\x11" * 32
    verify_commit(CHAIN, vs, bid, 5, make_commit(signers, vs, bid, height=5, who={0, 1, 2}))
    with pytest.raises(InvalidCommitError, match="not \\+2/3"):
        verify_commit(CHAIN, vs, bid, 5, make_commit(signers, vs, bid, height=5, who={0, 1}))
    with pytest.raises(InvalidCommitError, match="height"):
        verify_commit(CHAIN, vs, bid, 6, make_commit(signers, vs, bid, height=5))
    with pytest.raises(InvalidCommitError, match="different block"):
        verify_commit(CHAIN, vs, b"\x12" * 32, 5, make_commit(signers, vs, bid, height=5))
    good = make_commit(signers, vs, bid, height=5)
    forged = Commit(height=5, round=0, block_id=bid,
                    signatures=good.signatures[:3] + (b"\x00" * 64,))
    with pytest.raises(InvalidCommitError, match="bad precommit signature"):
        verify_commit(CHAIN, vs, bid, 5, forged)
    # signatures moved to another round are invalid (round is signed)
    moved = Commit(height=5, round=1, block_id=bid, signatures=good.signatures)
    with pytest.raises(InvalidCommitError):
        verify_commit(CHAIN, vs, bid, 5, moved)
    with pytest.raises(InvalidCommitError, match="entries"):
        verify_commit(CHAIN, vs, bid, 5, Commit(height=5, round=0, block_id=bid,
                                                signatures=good.signatures[:3]))
    assert Commit.decode(good.encode()) == good


def test_weighted_quorum():
    signers = keys(4)
    vs = make_set(signers, [5, 1, 1, 1])  # index 0 has power 5 of 8
    bid = b"\x11" * 32
    verify_commit(CHAIN, vs, bid, 1, make_commit(signers, vs, bid, who={0, 1}))  # 6*3 > 16
    with pytest.raises(InvalidCommitError):
        verify_commit(CHAIN, vs, bid, 1, make_commit(signers, vs, bid, who={1, 2, 3}))


def test_validator_order_and_hash():
    signers = keys(4)
    vs = make_set(signers, [1, 3, 2, 3])
    assert [v.power for v in vs.validators] == [3, 3, 2, 1]
    assert vs.validators[0].address < vs.validators[1].address
    assert ValidatorSet.decode(vs.encode()) == vs
    assert vs.advanced().hash() == vs.hash()  # priorities are not in the hash
    assert make_set(signers, [1, 3, 2, 4]).hash() != vs.hash()


def test_proposer_rotation_is_weighted_round_robin():
    signers = keys(3)
    vs = make_set(signers, [3, 2, 1])
    rounds = [vs.proposer_index(r) for r in range(60)]
    counts = collections.Counter(rounds)
    assert counts == {0: 30, 1: 20, 2: 10}
    # the highest power proposes first and nobody proposes far more than its share in a window
    assert rounds[0] == 0
    for start in range(0, 54, 6):
        assert collections.Counter(rounds[start:start + 6]) == {0: 3, 1: 2, 2: 1}
    # across heights: the sequence of round-0 proposers rotates the same way
    heights, cur = [], vs
    for _ in range(60):
        heights.append(cur.proposer_index(0))
        cur = cur.advanced()
    assert heights == rounds


def test_equal_power_rotation_visits_everyone():
    vs = make_set(keys(7))
    assert sorted(vs.proposer_index(r) for r in range(7)) == list(range(7))


def test_duplicate_vote_evidence():
    signers = keys(4)
    vs = make_set(signers)
    s = signer_at(signers, vs, 2)
    a = Vote.create(s, CHAIN, type=VoteType.PREVOTE, height=1, round=0, block_id=b"\x01" * 32,
                    validator_index=2)
    b = Vote.create(s, CHAIN, type=VoteType.PREVOTE, height=1, round=0, block_id=b"",
                    validator_index=2)
    ev = DuplicateVoteEvidence.from_votes(a, b)
    assert ev == DuplicateVoteEvidence.from_votes(b, a)
    ev.verify(CHAIN, vs)
    assert DuplicateVoteEvidence.decode(ev.encode()) == ev
    with pytest.raises(ConsensusMisuseError):
        DuplicateVoteEvidence.from_votes(a, a)
    forged = Vote(type=b.type, height=1, round=0, block_id=b.block_id,
                  validator_address=b.validator_address, validator_index=2, signature=a.signature)
    with pytest.raises(InvalidEvidenceError):
        DuplicateVoteEvidence.from_votes(a, forged).verify(CHAIN, vs)


def test_verify_vote_checks_membership():
    signers = keys(4)
    vs = make_set(signers)
    outsider = keys(5)[4]
    v = Vote.create(outsider, CHAIN, type=VoteType.PREVOTE, height=1, round=0, block_id=b"",
                    validator_index=0)
    with pytest.raises(InvalidMessageError):
        vs.verify_vote(CHAIN, v)


def test_public_names_exported_once():
    import ast
    from pathlib import Path

    import consensus
    tree = ast.parse(Path(consensus.__file__).read_text("utf-8"))
    names = [a.asname for node in tree.body if isinstance(node, ast.ImportFrom)
             for a in node.names]
    assert len(names) == len(set(names))
    assert all(getattr(consensus, n) is not None for n in names)
