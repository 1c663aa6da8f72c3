"""Runs inside the vLLM virtualenv: exercises VLLMBackend once and writes what it saw as JSON.

Usage: .venv-vllm/bin/python tests/vllm_backend_worker.py JOB.json RESULT.json
(tests/test_backend_vllm.py builds the job, runs this once per session and checks the result
against the hf backend in the main virtualenv, where vllm is not installed).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch
from vllm import SamplingParams
from vllm.v1.sample.logits_processor import AdapterLogitsProcessor


class BanTokens(AdapterLogitsProcessor):
    """Forbids the token ids in `extra_args["ban_token_ids"]`; requests without them are untouched.

    A minimal example of the plumbing the rules adapter uses: a v1 logits processor class given
    to the engine, switched on per request through SamplingParams.extra_args.
    """

    def is_argmax_invariant(self) -> bool:
        return False

    def new_req_logits_processor(self, params: SamplingParams):
        banned = (params.extra_args or {}).get("ban_token_ids")
        if not banned:
            return None

        def ban(output_ids: list[int], logits: torch.Tensor) -> torch.Tensor:
            logits[banned] = float("-inf")
            return logits

        return ban


def main(job_path: str, result_path: str) -> None:
    from implicit_if.backends import GenerationConfig
    from implicit_if.backends.vllm import VLLMBackend

    job = json.loads(Path(job_path).read_text())
    timings: dict[str, float] = {}
    start = time.perf_counter()
    backend = VLLMBackend(
        job["model_dir"],
        dtype="float32",
        max_model_len=2048,
        logits_processors=[BanTokens],
        progress=False,
        enforce_eager=True,
    )
    timings["load_s"] = time.perf_counter() - start
    tok = backend.tokenizer
    config = GenerationConfig(max_new_tokens=job["max_new_tokens"])

    start = time.perf_counter()
    greedy = backend.generate(job["prompts"], config)
    timings["generate_s"] = time.perf_counter() - start

    stop = greedy[0].split()[1]
    stopped = backend.generate(job["prompts"][:1], GenerationConfig(max_new_tokens=job["max_new_tokens"], stop=(stop,)))

    first_token = tok(greedy[0], add_special_tokens=False)["input_ids"][0]
    backend.sampling_extra_args = {"ban_token_ids": [first_token]}
    banned = backend.generate(job["prompts"][:1], config)
    backend.sampling_extra_args = None
    unbanned_again = backend.generate(job["prompts"][:1], config)

    start = time.perf_counter()
    scores = backend.score(job["contexts"], job["continuations"])
    timings["score_s"] = time.perf_counter() - start
    scores_no_eos = backend.score(job["contexts"], job["continuations"], add_eos=False)

    try:
        backend.score(["word " * 2100], ["x"])
        too_long = ""
    except ValueError as err:
        too_long = str(err)

    sampled = backend.sampling_params(GenerationConfig(temperature=0.7, top_p=0.9, seed=5, max_new_tokens=3))
    result = {
        "greedy": greedy,
        "stop": stop,
        "stopped": stopped[0],
        "banned_token": first_token,
        "banned": banned[0],
        "banned_ids": tok(banned[0], add_special_tokens=False)["input_ids"],
        "unbanned_again": unbanned_again[0],
        "scores": [[s.logprob, s.n_tokens, list(s.token_logprobs)] for s in scores],
        "scores_no_eos": [[s.logprob, s.n_tokens] for s in scores_no_eos],
        "too_long_error": too_long,
        "sampled_params": [sampled.temperature, sampled.top_p, sampled.seed, sampled.max_tokens],
        "greedy_params": [backend.sampling_params(config).temperature],
        "timings": timings,
    }
    Path(result_path).write_text(json.dumps(result))


if __name__ == "__main__":  # required: vLLM may spawn processes that re-import this module
    main(sys.argv[1], sys.argv[2])
