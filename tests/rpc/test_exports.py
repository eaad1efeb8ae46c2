"""The packages re-export their public names, each exactly once, from existing modules."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest


@pytest.mark.parametrize("package", ["node.rpc", "node.mempool"])
def test_public_names_exported_once(package: str) -> None:
    mod = importlib.import_module(package)
    tree = ast.parse(Path(mod.__file__).read_text())
    names = [a.asname for node in tree.body if isinstance(node, ast.ImportFrom)
             for a in node.names]
    assert names and len(names) == len(set(names))
    for name in names:
        assert getattr(mod, name) is not None
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            for a in node.names:
                assert a.asname == a.name, f"{package}: re-export {a.name} as itself"
