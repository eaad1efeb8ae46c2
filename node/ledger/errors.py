"""Result codes and typed errors of the ledger.

Three kinds of failure are kept apart, as in STYLE.md:

* :class:`TxDecodeError` / a non-zero :class:`Code` in a result: a
  transaction from outside is malformed or not allowed. That is the
  sender's (or a peer's) misbehaviour; it is reported, never raised out of
  :meth:`Ledger.apply_block`, and it never changes state.
* :class:`LedgerUsageError`: our own caller misused the API (applied block
  ``h+2`` after ``h``, passed a proposer that is not an address, ...).
* :class:`InvariantError`: the state itself is inconsistent (a stored
  record does not decode, an arithmetic step left the 64-bit range although
  the genesis supply fits). The node must halt rather than go on.

Codes are stable integers, like CometBFT/Cosmos SDK result codes; 0 is OK.
"""

from __future__ import annotations

from enum import IntEnum

from consensus.encoding import DecodeError


class Code(IntEnum):
    """Result code of one transaction (``TxResult.code``, ``TxCheck.code``)."""

    OK = 0
    # -- rejected: the tx changes nothing, not even the sender's nonce --------
    MALFORMED = 1            # bytes are not a canonical, well-typed transaction
    TOO_LARGE = 2            # over MAX_TX_BYTES
    WRONG_CHAIN = 3          # signed for another chain id
    BAD_SIGNATURE = 4        # signature does not verify
    BAD_NONCE = 5            # not the sender's next nonce (replayed or skipped)
    UNKNOWN_SENDER = 6       # the sender has no account (never funded)
    # -- failed: the nonce is consumed, nothing else changes ------------------
    INSUFFICIENT_FUNDS = 10
    UNAUTHORIZED = 11        # sender may not do this (not owner/omlizer/host/prover)
    INVALID_ARGUMENT = 12    # well-typed but not allowed (zero amount, bad split sum...)
    OVERFLOW = 13            # an amount would leave the unsigned 64-bit range
    NOT_FOUND = 14           # unknown model, host, claim or parent
    ALREADY_EXISTS = 15      # model id taken, host already has access
    WRONG_STATE = 16         # the record is not in a state that allows this
    BELOW_MINIMUM = 17       # bond/collateral under the params minimum
    INDEX_BURNED = 18        # claim on a fingerprint index already used
    REVEAL_MISMATCH = 19     # reveal does not open the committed leaf
    BAD_PERMISSION = 20      # rebuttal permission not signed by the owner for this query
    BAD_VOUCHER = 21         # voucher signature invalid or not monotonic
    NOTHING_TO_REDEEM = 22   # voucher adds nothing over what was redeemed, or escrow is empty
    OPEN_CLAIMS = 23         # withdrawal blocked by an unresolved claim
    TOO_EARLY = 24           # unbonding delay not over yet; claim opened in its commit block
    WINDOW_CLOSED = 25       # reveal/rebut after its window
    LATE_PERMISSION = 26     # rebuttal permission issued at or after the claim's commitment
    BAD_OPENING = 27         # open_claim's items and salt do not hash to the commitment

    @property
    def rejected(self) -> bool:
        """True for codes that leave the state untouched (nonce included)."""
        return 0 < self.value < 10


class LedgerError(Exception):
    """Base class of every error the ledger raises."""


class TxDecodeError(LedgerError, DecodeError):
    """Transaction bytes (or a field in them) are malformed.

    Also a :class:`consensus.encoding.DecodeError`, so code that handles every
    untrusted-bytes failure with one ``except DecodeError`` keeps working.
    """

    code = Code.MALFORMED

    def __init__(self, message: str, code: Code = Code.MALFORMED) -> None:
        super().__init__(message)
        self.code = code


class TxFailed(LedgerError):
    """Raised inside a handler: the transaction fails with ``code``.

    Caught by the executor, which discards the transaction's writes and
    records the code and message; it never escapes :meth:`Ledger.apply_block`.
    """

    def __init__(self, code: Code, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class LedgerUsageError(LedgerError):
    """Our own code called the ledger wrongly (wrong height, bad proposer...)."""


class InvariantError(LedgerError):
    """The stored state is inconsistent; the node must stop, not continue."""


class GenesisStateError(LedgerError, ValueError):
    """``app_state`` in genesis.json is malformed or inconsistent."""
