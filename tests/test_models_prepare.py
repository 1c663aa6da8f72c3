"""Embedded model preparation survives a kill mid-conversion and two processes at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from implicit_if.models import EMBEDDED_MODELS, resolve_model

PREPARE = "from implicit_if.models import prepare_embedded; print(prepare_embedded('smollm2-135m-instruct'))"


def test_hub_ids_and_paths_pass_through(tmp_path: Path) -> None:
    assert resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert resolve_model(str(tmp_path)) == str(tmp_path)
    assert set(EMBEDDED_MODELS) >= {
        "gemma-3-270m",
        "smollm2-135m-instruct",
        "qwen2.5-coder-0.5b-instruct",
        "qwen2.5-coder-1.5b-instruct",
    }


def test_unknown_embedded_name_is_a_clear_error() -> None:
    from implicit_if.models import prepare_embedded

    with pytest.raises(KeyError, match="choose one of"):
        prepare_embedded("llama-7b")


@pytest.mark.slow
def test_interrupted_then_concurrent_preparation(tmp_path: Path) -> None:
    env = {**os.environ, "IMPLICIT_IF_CACHE": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    models = tmp_path / "models"

    # 1. Kill a conversion half-way: nothing usable may be left behind.
    victim = subprocess.Popen(
        [sys.executable, "-c", PREPARE], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    deadline = time.time() + 300
    while time.time() < deadline and not list(models.glob(".smollm2-135m-instruct.tmp-*")):
        time.sleep(0.2)
    time.sleep(5.0)  # well inside the conversion, which takes tens of seconds
    assert victim.poll() is None, "the conversion finished before it could be interrupted"
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    final = models / "smollm2-135m-instruct"
    assert not (final / ".complete").exists()

    # 2. Two processes at once: one converts, the other waits and reuses the result.
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", PREPARE], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=900) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outputs]
    printed = {o[0].strip().splitlines()[-1] for o in outputs}
    assert printed == {str(final)}
    conversions = sum("converting smollm2-135m-instruct" in o[1] for o in outputs)
    assert conversions == 1
    assert (final / ".complete").exists()
    assert not list(models.glob(".smollm2-135m-instruct.tmp-*"))  # the killed run's leftovers are gone

    from transformers import AutoConfig, AutoTokenizer

    assert AutoConfig.from_pretrained(final).model_type == "llama"
    assert AutoTokenizer.from_pretrained(final).eos_token is not None
