"""Test helper: real nodes' chains (ledger + block store) fed with real signed blocks.

``Producer`` plays a whole validator set: it builds the next block on top of
its own :class:`node.chain.Chain` (header app hash = its consensus state's),
signs a +2/3 commit with every validator key and commits it through the same
path block sync uses. Other ``Chain`` instances can then fetch those blocks
(through the block-sync codec) and must end with the same app hash.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from consensus.block import Block, Commit, Header, commit_hash
from consensus.crypto import PrivateKey, Signer
from consensus.merkle import txs_root
from consensus.vote import Vote, VoteType
from node.chain import Chain
from node.genesis import Genesis, GenesisValidator
from node.ledger import Ledger, TransferBody, build_tx

CHAIN_ID = "daemon-test"


def make_genesis(n_validators: int = 4, n_accounts: int = 2, balance: int = 10**9,
                 params: dict[str, int] | None = None
                 ) -> tuple[Genesis, list[Signer], list[PrivateKey]]:
    vkeys = [PrivateKey(bytes([7, i + 1]) * 16) for i in range(n_validators)]
    accounts = [PrivateKey(bytes([9, i + 1]) * 16) for i in range(n_accounts)]
    genesis = Genesis(
        chain_id=CHAIN_ID, genesis_time_ms=1_000_000,
        validators=tuple(GenesisValidator(name=f"v{i}", pub_key=k.public_key, power=10)
                         for i, k in enumerate(vkeys)),
        app_state={"accounts": [{"address": a.address.hex(), "balance": balance}
                                for a in accounts], "params": dict(params or {})})
    return genesis, [Signer(k) for k in vkeys], accounts


def open_chain(path: Path, genesis: Genesis) -> Chain:
    path.mkdir(parents=True, exist_ok=True)
    ledger = Ledger.open(path / "state", genesis)
    return Chain(path, genesis, ledger)


def close_chain(chain: Chain) -> None:
    chain.close()
    chain.ledger.close()


def sign_commit(chain: Chain, signers: list[Signer], height: int, block_id: bytes,
                who: list[int] | None = None) -> Commit:
    by_addr = {s.address: s for s in signers}
    sigs = []
    for i, v in enumerate(chain.valset.validators):
        if who is None or i in who:
            sigs.append(Vote.create(by_addr[v.address], chain.chain_id,
                                    type=VoteType.PRECOMMIT, height=height, round=0,
                                    block_id=block_id, validator_index=i).signature)
        else:
            sigs.append(b"")
    return Commit(height=height, round=0, block_id=block_id, signatures=tuple(sigs))


@dataclass
class Producer:
    """Builds and commits blocks on ``chain`` as if the whole validator set agreed."""

    chain: Chain
    signers: list[Signer]
    accounts: list[PrivateKey]

    def __post_init__(self) -> None:
        self.nonces = [0] * len(self.accounts)
        self.commits: dict[int, Commit] = {}

    def transfer(self, sender: int, to: bytes, amount: int) -> bytes:
        tx = build_tx(self.accounts[sender], self.chain.chain_id, self.nonces[sender],
                      TransferBody(to=to, amount=amount))
        self.nonces[sender] += 1
        return tx

    def make_block(self, txs: tuple[bytes, ...] = (), *, app_hash: bytes | None = None
                   ) -> Block:
        st = self.chain.state
        height = st.height + 1
        header = Header(chain_id=self.chain.chain_id, height=height,
                        time_ms=st.last_block_time_ms + 1000,
                        prev_block_id=st.last_block_id, txs_root=txs_root(txs),
                        app_hash=st.app_hash if app_hash is None else app_hash,
                        proposer_address=self.chain.valset.proposer(0).address,
                        validators_hash=self.chain.valset.hash(),
                        last_commit_hash=commit_hash(st.last_commit))
        return Block(header=header, txs=txs, last_commit=st.last_commit)

    def produce(self, txs: tuple[bytes, ...] = ()) -> tuple[Block, Commit]:
        block = self.make_block(txs)
        commit = sign_commit(self.chain, self.signers, block.height, block.id())
        self.chain.verify_fetched(block, commit)
        self.chain.commit_synced(block, commit)
        self.commits[block.height] = commit
        return block, commit
