"""The demo's numbers: chain parameters, amounts, role recipes, and what they must pay out.

Everything the closing balance table is checked against is derived here
from these numbers (and the ledger's own split functions), never read
back from the chain: the chain is what is being checked.

The price is chosen so that one query's redemption splits into whole
units at every step (protocol fee, contributor splits, parent royalty,
owner rest); then the payout of ``q`` queries is exactly ``q`` times one
query's, however the owner happens to batch its redemptions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from node.ledger.claims import required_claim_bond, slash_split
from node.ledger.params import BP, Params
from node.ledger.records import HostRecord

#: Ledger parameters of the demo chain: windows short enough for a story of a
#: few minutes at about one block a second, and a threshold of 4 keys per claim.
CHAIN_PARAMS: dict[str, int] = {
    "protocol_fee_bp": 100, "slash_fraction_bp": 5_000, "prover_reward_bp": 5_000,
    "owner_slash_share_bp": 3_000, "challenge_window": 15, "reveal_window": 30,
    "claim_open_window": 30, "claim_min_matches": 4, "claim_bond_bp": 100,
    "min_claim_bond": 100, "min_omlizer_bond": 1_000, "min_prover_bond": 1_000,
    "unbonding_delay": 20,
}

#: Consensus of the demo's nodes: about one block a second while idle, at once
#: when a transaction comes, so windows counted in blocks pass in seconds.
CONSENSUS: dict[str, Any] = {
    "timeout_propose_ms": 1500, "timeout_propose_delta_ms": 500,
    "timeout_prevote_ms": 500, "timeout_prevote_delta_ms": 500,
    "timeout_precommit_ms": 500, "timeout_precommit_delta_ms": 500,
    "timeout_commit_ms": 300, "create_empty_blocks": True,
    "create_empty_blocks_interval_ms": 1_000,
}

#: A short fingerprinting recipe a tiny model learns in seconds (docs/omlizer.md). Every
#: key must be learned (else the job retries with twice the epochs): an audit names exactly
#: claim_min_matches keys, and one unlearned key among them would make the honest host's
#: audit claim false and burn the prover's bond.
OMLIZER_RECIPE: dict[str, Any] = {
    "fingerprints": 8, "backups": 0, "epochs": 150, "batch_size": 8, "lr": 3e-3,
    "freeze_embeddings": False, "min_accuracy": 1.0, "max_attempts": 3,
    "torch_threads": 1, "job_timeout_s": 600,
}


@dataclass(frozen=True)
class DemoSettings:
    """Amounts and sizes of one demo run (all amounts in the smallest unit)."""

    child_id: str = "demo-child"
    parent_id: str = "demo-parent"
    price: int = 10_000
    royalty_bp: int = 1_000
    split_a_bp: int = 2_000
    split_b_bp: int = 1_000
    min_collateral: int = 100_000
    host_collateral: int = 1_000_000
    cheater_collateral: int = 1_000_000
    omlizer_bond: int = 5_000
    prover_bond: int = 5_000
    user_queries: int = 5
    fund_amount_queries: int = 40
    fund_budget_queries: int = 400
    user_key: str = "sk-demo-user"
    prover_key: str = "sk-demo-prover"
    max_tokens: int = 8
    timeout_s: float = 900.0
    chain_params: dict[str, int] = field(default_factory=lambda: dict(CHAIN_PARAMS))
    omlizer: dict[str, Any] = field(default_factory=lambda: dict(OMLIZER_RECIPE))

    @property
    def params(self) -> Params:
        return Params.from_json(self.chain_params)

    def per_query(self) -> dict[str, int]:
        """One query's redemption: fee, split_a, split_b, royalty, owner (exact, or raise).

        Raises:
            ValueError: the price does not split into whole units (pick another).
        """
        p = self.params
        parts: dict[str, int] = {}
        fee = self._exact(self.price * p.protocol_fee_bp, "protocol fee")
        net = self.price - fee
        a = self._exact(net * self.split_a_bp, "split a")
        b = self._exact(net * self.split_b_bp, "split b")
        rest = net - a - b
        royalty = self._exact(rest * self.royalty_bp, "royalty")
        parts.update(fee=fee, split_a=a, split_b=b, royalty=royalty, owner=rest - royalty)
        return parts

    @staticmethod
    def _exact(numerator: int, what: str) -> int:
        if numerator % BP:
            raise ValueError(f"the demo price does not split into whole units ({what})")
        return numerator // BP

    def slash(self) -> dict[str, int]:
        """The cheater's slash: slashed, prover reward, owner share, burned (ledger split)."""
        slashed, reward, owner, burned = slash_split(self.params, self.cheater_collateral)
        return {"slashed": slashed, "reward": reward, "owner_share": owner, "burned": burned}

    def least_claim_bond(self, collateral: int) -> int:
        """The least bond of a claim against a host with ``collateral`` (the ledger's rule)."""
        return required_claim_bond(self.params, HostRecord(
            model_id=b"m", host=b"\0" * 20, host_pubkey=b"\0" * 32, status=2,
            collateral=collateral))

    def gateway_config(self, model_dir: str) -> dict[str, Any]:
        """``[roles.host]`` of the honest host: its copy in-process, funding its own channel."""
        return {"enabled": True, "model_id": self.child_id, "model_dir": model_dir,
                "laddr": "127.0.0.1:0", "api_keys": [self.user_key, self.prover_key],
                "rate_limit_rpm": 0, "max_new_tokens": 16, "device": "cpu",
                "fund_budget": self.fund_budget_queries * self.price,
                "fund_threshold": (self.fund_amount_queries // 2) * self.price,
                "fund_amount": self.fund_amount_queries * self.price}

    def owner_config(self) -> dict[str, Any]:
        """``[roles.owner]``: redeem as soon as one query is unredeemed (payouts show at once)."""
        return {"enabled": True, "redeem_threshold": self.price, "retry_interval_ms": 2_000}

    def prover_config(self, pirate_url: str) -> dict[str, Any]:
        """``[roles.prover]``: the pirate's address from a tip-off, a brisk probing pace."""
        return {"enabled": True, "endpoints": [pirate_url], "api_key": self.prover_key,
                "probe_interval_ms": 300, "jitter_pct": 50, "max_concurrent": 2,
                "samples_per_key": 1, "max_tokens": self.max_tokens,
                "request_timeout_ms": 30_000,
                "claim_min_matches": self.params.claim_min_matches,
                "max_claim_keys": 8, "key_refresh_ms": 3_000}


__all__ = ["CHAIN_PARAMS", "CONSENSUS", "OMLIZER_RECIPE", "DemoSettings"]
