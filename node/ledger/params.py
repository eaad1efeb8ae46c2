"""Chain parameters, read once from genesis ``app_state.params``.

Every field has a documented default, so ``"params": {}`` is a working
chain. Unknown keys are rejected (a typo must not silently fall back to a
default) and every value is range-checked, so a genesis file that would
let shares exceed 100 % never starts. Parameters are stored in the state
(and so in the app hash) at genesis; no transaction changes them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any

from consensus.encoding import U64_MAX, DecodeError, decode, encode, expect_int, expect_list

from .errors import GenesisStateError, InvariantError

BP = 10_000  # basis points in one whole
MIN_SLASH_BURN_BP = 1_000  # at least this share of every slash is burned (docs/threat-model.md)


def _p(default: int, doc: str, lo: int = 0, hi: int = U64_MAX) -> Any:
    return field(default=default, metadata={"doc": doc, "lo": lo, "hi": hi})


@dataclass(frozen=True, slots=True, kw_only=True)
class Params:
    """Ledger parameters; amounts in the smallest unit, windows in blocks."""

    slash_fraction_bp: int = _p(5_000, "share of a host's collateral slashed per proven claim",
                                0, BP)
    prover_reward_bp: int = _p(5_000, "share of a slash paid to the prover", 0, BP)
    owner_slash_share_bp: int = _p(3_000, "share of a slash paid to the model owner", 0, BP)
    protocol_fee_bp: int = _p(100, "share of every redemption paid to the block proposer", 0, BP)
    challenge_window: int = _p(10, "blocks after a matching reveal in which the host may rebut", 1)
    reveal_window: int = _p(20, "blocks after a claim in which its OMLizer must reveal", 1)
    unbonding_delay: int = _p(20, "blocks between beginning and completing a withdrawal", 0)
    min_omlizer_bond: int = _p(1_000, "smallest bond of a registered OMLizer", 0)
    min_prover_bond: int = _p(1_000, "smallest bond of a registered prover", 0)
    min_claim_bond: int = _p(100, "smallest bond a prover posts with one claim", 0)
    claim_bond_bp: int = _p(100, "a claim's bond is at least this share of what the prover and "
                                 "owner would receive from its slash", 0, BP)
    claim_min_matches: int = _p(8, "distinct fingerprint keys of one host that must match for a "
                                   "slash",
                                1, 64)
    claim_open_window: int = _p(20, "blocks after a claim's commitment in which it must be opened",
                                1)
    max_splits: int = _p(16, "most contributor splits one model may list", 0, 256)
    max_omlizers: int = _p(16, "most authorised OMLizers one model may list", 1, 256)
    max_fp_count: int = _p(65_536, "most fingerprints one host commitment may hold", 1, 2**32)
    max_parent_depth: int = _p(8, "longest parent chain a model may have (royalty recursion cap)",
                               0, 64)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise GenesisStateError(f"params.{f.name} must be an integer")
            if not f.metadata["lo"] <= value <= f.metadata["hi"]:
                raise GenesisStateError(
                    f"params.{f.name}={value} outside [{f.metadata['lo']}, {f.metadata['hi']}]")
        paid = self.prover_reward_bp + self.owner_slash_share_bp
        if paid > BP - MIN_SLASH_BURN_BP:
            raise GenesisStateError(
                f"params: prover_reward_bp + owner_slash_share_bp = {paid} exceed "
                f"{BP - MIN_SLASH_BURN_BP} (at least {MIN_SLASH_BURN_BP} bp of a slash is burned)")

    @classmethod
    def from_json(cls, data: Any) -> Params:
        """Parse genesis ``app_state.params``; missing keys take their defaults."""
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise GenesisStateError("app_state.params must be an object")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise GenesisStateError(f"unknown params: {', '.join(unknown)}")
        return cls(**data)

    def to_json(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def encode(self) -> bytes:
        return encode([getattr(self, f.name) for f in fields(self)])

    @classmethod
    def decode(cls, data: bytes) -> Params:
        try:
            items = expect_list(decode(data), len(fields(cls)), what="params")
            values = {f.name: expect_int(v, what=f.name)
                      for f, v in zip(fields(cls), items, strict=True)}
            return cls(**values)
        except (DecodeError, GenesisStateError) as exc:
            raise InvariantError(f"stored params do not decode: {exc}") from None

    def replace(self, **changes: int) -> Params:
        return dataclasses.replace(self, **changes)

    @staticmethod
    def docs() -> dict[str, str]:
        """Field name -> one-line description (for docs and ``oml-node`` help)."""
        return {f.name: f.metadata["doc"] for f in fields(Params)}
