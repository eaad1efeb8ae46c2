"""What this validator has signed at the current height (CometBFT's priv_validator_state).

Every proposal and vote the core signs is recorded here under its
(height, round, step) before it is persisted and sent. Before signing, the
core asks :meth:`SignLog.get`: if something is already recorded for that
step, it re-sends that instead of signing again, so even a replay that took
a different path (inputs lost, a mempool that changed) cannot produce a
conflicting signature. :meth:`may_sign` refuses to sign for a step older
than the newest signed one. After a crash, :meth:`Core.restore` refills the
log from the WAL, where each signed message was made durable before it left
the node.
"""

from __future__ import annotations

from .crypto import Signer
from .events import Event, ProposalReceived, Step, VoteReceived
from .messages import Message, ProposalMessage, VoteMessage
from .vote import Vote, VoteType

SignKey = tuple[int, int, Step]  # (height, round, step)
VOTE_STEP = {VoteType.PREVOTE: Step.PREVOTE, VoteType.PRECOMMIT: Step.PRECOMMIT}
SignedMessage = ProposalMessage | Vote


def vote_key(vote: Vote) -> SignKey:
    return (vote.height, vote.round, VOTE_STEP[vote.type])


class SignLog:
    __slots__ = ("_last", "_signed", "refused")

    def __init__(self) -> None:
        self._signed: dict[SignKey, SignedMessage] = {}
        self._last: SignKey | None = None
        self.refused = 0

    def get(self, key: SignKey) -> SignedMessage | None:
        return self._signed.get(key)

    def may_sign(self, key: SignKey) -> bool:
        """False (and counted) if ``key`` is older than the newest signed step."""
        if self._last is not None and key < self._last:
            self.refused += 1
            return False
        return True

    def record(self, key: SignKey, msg: SignedMessage) -> None:
        self._signed[key] = msg
        if self._last is None or key > self._last:
            self._last = key

    def prune_below(self, height: int) -> None:
        self._signed = {k: m for k, m in self._signed.items() if k[0] >= height}

    def messages_at(self, height: int) -> list[Message]:
        """Our signed messages of ``height`` in step order, ready to (re)send."""
        out: list[Message] = []
        for key in sorted(self._signed):
            if key[0] == height:
                m = self._signed[key]
                out.append(VoteMessage(vote=m) if isinstance(m, Vote) else m)
        return out

    def register_presigned(self, ev: Event, signer: Signer, chain_id: str) -> None:
        """Restore: remember a logged proposal or vote if this node signed it."""
        if isinstance(ev, VoteReceived):
            if ev.vote.validator_address == signer.address:
                self.record(vote_key(ev.vote), ev.vote)
        elif isinstance(ev, ProposalReceived):
            p = ev.message.proposal
            # a logged proposal was verified against its round's proposer; ours if our key fits
            if p.verify_signature(chain_id, signer.public_key):
                self.record((p.height, p.round, Step.PROPOSE), ev.message)
