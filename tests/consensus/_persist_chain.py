"""Test helper: a real signed chain (blocks + +2/3 commits) for block store and catch-up tests."""

from __future__ import annotations

from dataclasses import dataclass, field

from consensus.block import Block, Commit, Header, commit_hash
from consensus.crypto import PrivateKey, Signer
from consensus.merkle import txs_root
from consensus.validators import ValidatorSet
from consensus.vote import Vote, VoteType

CHAIN_ID = "persist-test"


def make_signers(n: int, powers: list[int] | None = None, salt: int = 0
                 ) -> tuple[ValidatorSet, list[Signer]]:
    """``n`` validators with deterministic keys; signers are in validator-set order."""
    keys = [PrivateKey(bytes([salt, i + 1]) * 16) for i in range(n)]
    powers = powers or [10] * n
    valset = ValidatorSet.from_powers((k.public_key, p) for k, p in zip(keys, powers))
    by_pub = {k.public_key: Signer(k) for k in keys}
    return valset, [by_pub[v.pub_key] for v in valset.validators]


def sign_commit(chain_id: str, valset: ValidatorSet, signers: list[Signer], height: int,
                block_id: bytes, *, round: int = 0, who: list[int] | None = None) -> Commit:
    """A commit with precommits from the validators at indexes ``who`` (default: all)."""
    who = list(range(len(valset))) if who is None else who
    sigs = []
    for i in range(len(valset)):
        if i in who:
            sigs.append(Vote.create(signers[i], chain_id, type=VoteType.PRECOMMIT, height=height,
                                    round=round, block_id=block_id,
                                    validator_index=i).signature)
        else:
            sigs.append(b"")
    return Commit(height=height, round=round, block_id=block_id, signatures=tuple(sigs))


@dataclass
class Chain:
    """Blocks 1..n with their canonical commits, built like validators would."""

    valset: ValidatorSet
    signers: list[Signer]
    chain_id: str = CHAIN_ID
    blocks: list[Block] = field(default_factory=list)
    commits: list[Commit] = field(default_factory=list)  # commits[i] is for blocks[i]

    def extend(self, count: int, *, txs_per_block: int = 2, tx_size: int = 0) -> Chain:
        for _ in range(count):
            height = len(self.blocks) + 1
            prev = self.blocks[-1].id() if self.blocks else b""
            last_commit = self.commits[-1] if self.commits else None
            txs = tuple((b"tx-%d-%d-" % (height, i)).ljust(tx_size, b"x")
                        for i in range(txs_per_block))
            header = Header(chain_id=self.chain_id, height=height, time_ms=1_000 * height,
                            prev_block_id=prev, txs_root=txs_root(txs),
                            app_hash=b"app-%d" % (height - 1),
                            proposer_address=self.valset.proposer(0).address,
                            validators_hash=self.valset.hash(),
                            last_commit_hash=commit_hash(last_commit))
            block = Block(header=header, txs=txs, last_commit=last_commit)
            self.blocks.append(block)
            self.commits.append(sign_commit(self.chain_id, self.valset, self.signers, height,
                                            block.id()))
        return self

    def pair(self, height: int) -> tuple[bytes, bytes]:
        """Wire form of (block, commit) at ``height``."""
        return self.blocks[height - 1].encode(), self.commits[height - 1].encode()

    def pairs(self, first: int, last: int) -> list[tuple[bytes, bytes]]:
        return [self.pair(h) for h in range(first, last + 1)]


def make_chain(n_blocks: int, n_validators: int = 4, powers: list[int] | None = None) -> Chain:
    valset, signers = make_signers(n_validators, powers)
    return Chain(valset, signers).extend(n_blocks)
