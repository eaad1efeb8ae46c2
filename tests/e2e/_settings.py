"""Settings shared by the e2e test modules."""

#: Consensus timeouts for tests: short enough that a round with a dead
#: proposer costs ~1 s, long enough for 5 Python processes on 2 cores.
FAST_CONSENSUS = {
    "timeout_propose_ms": 1500,
    "timeout_propose_delta_ms": 500,
    "timeout_prevote_ms": 500,
    "timeout_prevote_delta_ms": 500,
    "timeout_precommit_ms": 500,
    "timeout_precommit_delta_ms": 500,
    "timeout_commit_ms": 300,
}
