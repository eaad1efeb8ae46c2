"""Fixtures of the ledger tests (the helpers live in ledger_helpers.py)."""

from ledger_helpers import chain, make_chain

__all__ = ["chain", "make_chain"]  # pytest fixtures, found by name
