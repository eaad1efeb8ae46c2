"""`import oml` stays torch-free, and every lazily exported name resolves."""

from __future__ import annotations

import subprocess
import sys


def test_import_oml_does_not_load_torch() -> None:
    code = "import sys, oml; assert 'torch' not in sys.modules, 'torch loaded'; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_lazy_names_resolve() -> None:
    import importlib

    import oml

    for name, mod in oml._LAZY.items():
        assert getattr(oml, name) is getattr(importlib.import_module(f"oml.{mod}"), name)
        assert name in dir(oml)
