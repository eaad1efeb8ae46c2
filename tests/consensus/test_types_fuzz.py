"""Decoders of untrusted bytes raise only DecodeError, whatever the input."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from consensus import (
    Block,
    Commit,
    DecodeError,
    DuplicateVoteEvidence,
    Proposal,
    Vote,
    decode_message,
)
from consensus.state import ChainState
from consensus.wal_api import record_event
from tests.consensus._core_harness import Harness

_h = Harness(me=Harness().valset.proposer_index(0))
_out = _h.start()
SAMPLES = [a.record for a in _out if type(a).__name__ == "Persist"]
DECODERS = [Vote.decode, Proposal.decode, Block.decode, Commit.decode, decode_message,
            DuplicateVoteEvidence.decode, record_event, ChainState.decode]


def _only_decode_errors(data: bytes) -> None:
    for fn in DECODERS:
        try:
            fn(data)
        except DecodeError:
            pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes(data):
    _only_decode_errors(data)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(SAMPLES), st.integers(min_value=0), st.integers(min_value=0, max_value=255),
       st.booleans())
def test_mutated_valid_records(sample, pos, byte, truncate):
    pos %= len(sample)
    data = sample[:pos] if truncate else sample[:pos] + bytes([byte]) + sample[pos + 1:]
    _only_decode_errors(data)
