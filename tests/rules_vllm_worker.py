"""Runs inside the vLLM virtualenv: decodes with the rules through VLLMBackend and writes JSON.

Usage: .venv-vllm/bin/python tests/rules_vllm_worker.py JOB.json RESULT.json
(tests/test_rules_vllm.py builds the job and compares the result with the hf backend).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def main(job_path: str, result_path: str) -> None:
    from implicit_if.backends import GenerationConfig
    from implicit_if.backends.vllm import VLLMBackend
    from implicit_if.rules import build_rules

    job = json.loads(Path(job_path).read_text())
    rules = build_rules(job["rules"])
    start = time.perf_counter()
    backend = VLLMBackend(
        job["model_dir"], dtype="float32", max_model_len=512, progress=False, enforce_eager=True, **rules.vllm_options()
    )
    load_s = time.perf_counter() - start
    config = GenerationConfig(max_new_tokens=job["max_new_tokens"])
    prompts = job["prompts"]

    start = time.perf_counter()
    batched = backend.generate(prompts, config)
    generate_s = time.perf_counter() - start
    single = [backend.generate([p], config)[0] for p in prompts]

    with_instruction = build_rules(job["rules"], count_instruction_tokens=True)
    backend.sampling_extra_args = with_instruction.vllm_options()["sampling_extra_args"]
    instruction_batched = backend.generate(prompts, config)
    instruction_single = [backend.generate([p], config)[0] for p in prompts]

    backend.sampling_extra_args = None  # the processor is loaded but no request asks for it
    plain = backend.generate(prompts, config)

    result = {
        "batched": batched,
        "single": single,
        "instruction_batched": instruction_batched,
        "instruction_single": instruction_single,
        "plain": plain,
        "timings": {"load_s": load_s, "generate_s": generate_s},
    }
    Path(result_path).write_text(json.dumps(result))


if __name__ == "__main__":
    main(*sys.argv[1:3])
