"""Shared fixtures: the embedded models (prepared once, from the real cache) and an offline env."""

from __future__ import annotations

import os
from importlib.util import find_spec
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# The session-wide vLLM server fixture lives in its own module; load it when present.
pytest_plugins = [name for name in ("vllm_server",) if (Path(__file__).parent / f"{name}.py").exists()]

# Resolve the real model cache before any test redirects IMPLICIT_IF_CACHE to a temp dir.
_REAL_CACHE = os.environ.get("IMPLICIT_IF_CACHE")


def _prepared(name: str) -> str:
    from implicit_if.models import prepare_embedded

    previous = os.environ.pop("IMPLICIT_IF_CACHE", None)
    try:
        if _REAL_CACHE:
            os.environ["IMPLICIT_IF_CACHE"] = _REAL_CACHE
        return str(prepare_embedded(name))
    finally:
        os.environ.pop("IMPLICIT_IF_CACHE", None)
        if previous is not None:
            os.environ["IMPLICIT_IF_CACHE"] = previous


@pytest.fixture(scope="session")
def smollm2_dir() -> str:
    """Prepared HF directory of SmolLM2-135M-Instruct (instruction-tuned, has a chat template)."""
    return _prepared("smollm2-135m-instruct")


@pytest.fixture(scope="session")
def gemma_dir() -> str:
    """Prepared HF directory of Gemma 3 270M (a base model; vocabulary 262k)."""
    return _prepared("gemma-3-270m")


@pytest.fixture()
def offline_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No hub: datasets come from our fixtures, models from the embedded packages."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("IMPLICIT_IF_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def vllm_python() -> Path:
    """The vLLM CPU virtualenv's interpreter; tests needing it skip when it is absent."""
    path = REPO / ".venv-vllm" / "bin" / "python"
    if not path.exists():
        pytest.skip("the vLLM virtualenv is absent: run `make vllm-env`")
    return path


def has_module(name: str) -> bool:
    return find_spec(name) is not None
