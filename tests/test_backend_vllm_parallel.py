"""The vllm backend's parallelism: options reach the engine, and two engines (data parallelism in
plain processes, no Ray) answer exactly as one does, in input order.

On CPU only size 1 of tensor parallelism exists; data parallelism runs two CPU engines here.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from implicit_if.backends.vllm_data_parallel import device_slices, shards
from implicit_if.formats import format_prompt

WORKER = Path(__file__).with_name("vllm_parallel_worker.py")
INSTRUCTIONS = ["Name three primary colours.", "What is 12 times 3?", "Write a haiku about rain."]


def test_shards_cover_the_inputs_in_order() -> None:
    assert shards(5, 2) == [(0, 3), (3, 5)]
    assert shards(1, 3) == [(0, 1), (1, 1), (1, 1)]
    assert shards(0, 2) == [(0, 0), (0, 0)]


def test_each_engine_gets_its_own_devices() -> None:
    assert device_slices(2, 2, "0,1,2,3") == ["0,1", "2,3"]
    assert device_slices(2, 1, "4,5") == ["4", "5"]
    with pytest.raises(ValueError, match="needs 4 devices, 3 visible"):
        device_slices(2, 2, "0,1,2")


@pytest.mark.slow
@pytest.mark.vllm
def test_parallel_options_reach_the_engine_and_two_engines_answer_as_one(
    smollm2_dir: str, vllm_python: Path, tmp_path: Path
) -> None:
    prompts = [format_prompt(i) for i in INSTRUCTIONS]
    job = {
        "model_dir": smollm2_dir,
        "prompts": prompts,
        "max_new_tokens": 12,
        "contexts": [p for p in prompts for _ in range(2)],
        "continuations": [c for _ in prompts for c in ("Red, yellow and blue.", "36")],
    }
    (tmp_path / "job.json").write_text(json.dumps(job))
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}
    run = subprocess.run(
        [str(vllm_python), str(WORKER), str(tmp_path / "job.json"), str(tmp_path / "result.json")],
        capture_output=True, text=True, env=env, timeout=1500, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-4000:]
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["one_type"] == "VLLMBackend" and result["two_type"] == "DataParallelVLLM"
    assert (result["engine_tensor_parallel_size"], result["engine_data_parallel_size"]) == (1, 1)
    assert result["two_greedy"] == result["one_greedy"]  # same engine, same greedy tokens, input order kept
    assert result["two_one_prompt"] == result["one_greedy"][:1]
    assert len(result["two_scores"]) == len(job["contexts"])
    for two, one in zip(result["two_scores"], result["one_scores"]):
        assert abs(two - one) < 1e-3, (two, one)
