"""Runs inside the vLLM virtualenv: the backend's parallelism options, one engine and two.

Usage: .venv-vllm/bin/python tests/vllm_parallel_worker.py JOB.json RESULT.json
(tests/test_backend_vllm_parallel.py builds the job and checks the result).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(job_path: str, result_path: str) -> None:
    from implicit_if.backends import GenerationConfig, get_backend

    job = json.loads(Path(job_path).read_text())
    options = {"dtype": "float32", "max_model_len": 1024, "progress": False, "enforce_eager": True}
    config = GenerationConfig(max_new_tokens=job["max_new_tokens"])

    one = get_backend("vllm", job["model_dir"], tensor_parallel_size=1, data_parallel_size=1, **options)
    parallel = one.llm.llm_engine.vllm_config.parallel_config  # what the engine was built with
    result = {
        "one_type": type(one).__name__,
        "engine_tensor_parallel_size": parallel.tensor_parallel_size,
        "engine_data_parallel_size": parallel.data_parallel_size,
        "one_greedy": one.generate(job["prompts"], config),
        "one_scores": [s.logprob for s in one.score(job["contexts"], job["continuations"])],
    }
    del one
    two = get_backend("vllm", job["model_dir"], tensor_parallel_size=1, data_parallel_size=2, **options)
    try:
        result["two_type"] = type(two).__name__
        result["two_greedy"] = two.generate(job["prompts"], config)
        result["two_scores"] = [s.logprob for s in two.score(job["contexts"], job["continuations"])]
        result["two_one_prompt"] = two.generate(job["prompts"][:1], config)  # one shard empty
    finally:
        two.close()
    Path(result_path).write_text(json.dumps(result))


if __name__ == "__main__":  # required: the data-parallel workers are spawned and re-import modules
    main(sys.argv[1], sys.argv[2])
