"""The rules adapter inside vLLM (v1 logits processor), compared with itself and with the hf path.

vLLM lives in its own virtualenv, so tests/rules_vllm_worker.py runs there once per module and
these tests check what it wrote.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from implicit_if.backends.base import GenerationConfig
from implicit_if.formats import format_prompt
from implicit_if.rules import build_rules

pytestmark = [pytest.mark.slow, pytest.mark.vllm]

WORKER = Path(__file__).with_name("rules_vllm_worker.py")
RULES = "eos,uniform,diversity"
MAX_NEW_TOKENS = 16
INSTRUCTIONS = [
    "Give three tips for staying healthy.",
    "What is the capital of France?",
    "Write a short poem about the sea at night, with a storm coming in from the west.",
]


@pytest.fixture(scope="module")
def prompts() -> list[str]:
    return [format_prompt(i, "tulu") for i in INSTRUCTIONS]


@pytest.fixture(scope="module")
def vllm_result(
    gemma_dir: str, prompts: list[str], vllm_python: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict:
    folder = tmp_path_factory.mktemp("rules-vllm")
    job = {"model_dir": gemma_dir, "prompts": prompts, "rules": RULES, "max_new_tokens": MAX_NEW_TOKENS}
    (folder / "job.json").write_text(json.dumps(job))
    # The engine core runs inside the worker (no extra processes); the processor class is still
    # loaded by vLLM from its name, as in any deployment.
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}
    run = subprocess.run(
        [str(vllm_python), str(WORKER), str(folder / "job.json"), str(folder / "result.json")],
        capture_output=True,
        text=True,
        env=env,
        timeout=1500,
    )
    if run.returncode != 0:
        pytest.fail(f"the vLLM rules worker failed ({run.returncode}):\n{run.stderr[-4000:]}")
    return json.loads((folder / "result.json").read_text())


def test_vllm_batched_and_one_at_a_time_give_the_same_text(vllm_result: dict) -> None:
    assert vllm_result["batched"] == vllm_result["single"]
    assert vllm_result["instruction_batched"] == vllm_result["instruction_single"]


def test_vllm_applies_the_rules_only_to_requests_that_ask(vllm_result: dict) -> None:
    assert vllm_result["plain"] != vllm_result["batched"]
    assert sum("<|" in t for t in vllm_result["plain"]) > sum("<|" in t for t in vllm_result["batched"])


def test_vllm_and_hf_decode_the_same_text_under_the_rules(
    vllm_result: dict, gemma_dir: str, prompts: list[str]
) -> None:
    from implicit_if.backends.hf import HFBackend

    rules = build_rules(RULES)
    hf = HFBackend(
        gemma_dir,
        device="cpu",
        dtype="float32",
        batch_size=len(prompts),
        progress=False,
        logits_processor_factory=rules.hf_logits_processor_factory,
    )
    config = GenerationConfig(max_new_tokens=MAX_NEW_TOKENS)
    assert hf.generate(prompts, config) == vllm_result["batched"]
    hf.logits_processor_factory = build_rules(RULES, count_instruction_tokens=True).hf_logits_processor_factory
    assert hf.generate(prompts, config) == vllm_result["instruction_batched"]
