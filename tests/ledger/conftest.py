"""Fixtures of the ledger tests (the helpers live in ledger_helpers.py)."""

from ledger_helpers import chain as chain  # noqa: F401  (fixture)
from ledger_helpers import make_chain as make_chain  # noqa: F401  (fixture)
