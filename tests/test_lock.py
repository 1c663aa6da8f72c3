"""The lock files are what a fresh clone installs: they must match pyproject.toml and the Makefile,
and (under `make test`) the environment the tests run in."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent


def _refresh_module():
    spec = importlib.util.spec_from_file_location("lock_refresh", ROOT / "requirements" / "refresh.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


refresh = _refresh_module()
STALE = "the lock is stale: run `make lock` (see CONTRIBUTING: refreshing the lock) and commit requirements/"


def _make_variable(name: str) -> str:
    match = re.search(rf"^{name} \?= (.+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert match, f"Makefile defines no {name}"
    return match.group(1).strip()


def test_main_lock_was_made_from_this_pyproject():
    assert refresh.read_digest(refresh.MAIN_LOCK) == refresh.inputs_digest(refresh.main_lock_inputs()), STALE


def test_vllm_lock_was_made_from_the_makefiles_vllm_spec():
    spec = _make_variable("VLLM_SPEC")
    assert refresh.read_digest(refresh.VLLM_LOCK) == refresh.inputs_digest(refresh.vllm_lock_inputs(spec)), STALE
    name, version = spec.split("==")
    assert refresh.read_pins(refresh.VLLM_LOCK)[refresh.normalise(name)] == version


def test_digest_changes_when_a_dependency_changes(tmp_path):
    text = (ROOT / "pyproject.toml").read_text()
    changed = tmp_path / "pyproject.toml"
    changed.write_text(text.replace('"numpy>=1.26"', '"numpy>=1.27"'))
    assert changed.read_text() != text
    assert refresh.inputs_digest(refresh.main_lock_inputs(changed)) != refresh.inputs_digest(refresh.main_lock_inputs())


def test_every_declared_requirement_is_pinned_within_its_range():
    pins = refresh.read_pins(refresh.MAIN_LOCK)
    inputs = refresh.main_lock_inputs()
    declared = [Requirement(line) for group in inputs.values() for line in group]
    declared.append(Requirement(_make_variable("TORCH_SPEC")))
    for requirement in declared:
        name = refresh.normalise(requirement.name)
        assert name in pins, f"{requirement.name} is declared but not locked: {STALE}"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{requirement.name}=={pins[name]} in the lock is outside {requirement.specifier}: {STALE}"
        )


@pytest.mark.skipif(os.environ.get("IMPLICIT_IF_LOCKED") != "1", reason="environment not installed through the lock")
def test_installed_environment_is_the_locked_one():
    """Under `make test` every installed locked package has exactly the locked version."""
    pins = refresh.read_pins(refresh.MAIN_LOCK)
    drift = []
    for dist in importlib.metadata.distributions():
        name = refresh.normalise(dist.metadata["Name"])
        version = dist.version.split("+", 1)[0]
        if name in pins and pins[name] != version:
            drift.append(f"{name} {version} (lock: {pins[name]})")
    assert not drift, "installed versions differ from requirements/lock.txt: " + ", ".join(sorted(drift))
