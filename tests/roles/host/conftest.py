"""Fixtures for the host gateway tests: one tiny real model per session."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from oml.testing import make_tiny_model_dir

    return make_tiny_model_dir(tmp_path_factory.mktemp("gw-tiny") / "model", seed=0,
                               pretrain_steps=0)


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir: Path) -> tuple[Any, Any]:
    from oml.modelio import load_model

    return load_model(tiny_model_dir, "cpu")


@pytest.fixture
def engine(tiny_model: tuple[Any, Any]) -> Any:
    from node.roles.host.engine import TransformersEngine

    from .gwkit import CountingEngine

    model, tok = tiny_model
    return CountingEngine(TransformersEngine(model, tok, max_prompt_tokens=64))
