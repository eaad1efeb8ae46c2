"""The package layering of DESIGN.md, checked on the source (AST) of every module.

consensus/ may import only the stdlib, msgpack, pynacl and lmdb, and never a clock,
a socket or an async runtime; net/ and oml/ never import node/.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STDLIB = set(sys.stdlib_module_names)


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text("utf-8"), str(path))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


CONSENSUS_ALLOWED = {"msgpack", "nacl", "lmdb", "consensus"}
CONSENSUS_FORBIDDEN_STDLIB = {"time", "datetime", "socket", "asyncio", "selectors", "threading"}


@pytest.mark.parametrize("path", modules("consensus"), ids=lambda p: str(p.relative_to(ROOT)))
def test_consensus_imports(path):
    roots = imported_roots(path)
    third_party = {r for r in roots if r not in STDLIB} - CONSENSUS_ALLOWED
    assert not third_party, f"{path} imports {third_party}"
    if "sim" in path.parts or path.name == "__main__.py":
        return  # the simulator's CLI may time itself; the core may not
    forbidden = roots & CONSENSUS_FORBIDDEN_STDLIB
    assert not forbidden, f"{path} imports {forbidden}"


@pytest.mark.parametrize("path", modules("net") + modules("oml"),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_net_and_oml_never_import_node(path):
    assert "node" not in imported_roots(path)


def test_oml_commitments_has_no_heavy_imports():
    assert not imported_roots(ROOT / "oml" / "commitments.py") & {"torch", "transformers", "numpy"}
