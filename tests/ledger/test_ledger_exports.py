"""The public surface: every name in node.ledger.__all__-style re-exports exists once."""

from __future__ import annotations

import ast
from pathlib import Path

import node.ledger

INIT = Path(node.ledger.__file__)


def test_every_public_name_is_exported_exactly_once():
    tree = ast.parse(INIT.read_text("utf-8"))
    names = [alias.asname or alias.name for stmt in tree.body
             if isinstance(stmt, ast.ImportFrom) for alias in stmt.names]
    assert len(names) == len(set(names)), "a name is re-exported twice"
    for stmt in tree.body:
        if isinstance(stmt, ast.ImportFrom):
            for alias in stmt.names:
                assert alias.asname == alias.name, f"{alias.name} must be re-exported as itself"
    for name in names:
        assert getattr(node.ledger, name) is not None


def test_facade_names_the_daemon_relies_on():
    from node.ledger import Ledger
    for attr in ("open", "check_tx", "stateless_check", "apply_block", "account", "model",
                 "host", "claim", "params", "close", "supply_breakdown"):
        assert callable(getattr(Ledger, attr))


def test_ledger_does_not_import_net_or_trio():
    for path in INIT.parent.glob("*.py"):
        tree = ast.parse(path.read_text("utf-8"))
        for item in ast.walk(tree):
            if isinstance(item, ast.ImportFrom) and item.level == 0 and item.module:
                assert item.module.split(".")[0] not in {"net", "trio", "libp2p", "torch"}, path
            if isinstance(item, ast.Import):
                for alias in item.names:
                    assert alias.name.split(".")[0] not in {"net", "trio", "libp2p", "torch",
                                                            "time"}, path
