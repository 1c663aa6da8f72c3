"""The transformers backend on a real model (SmolLM2-135M-Instruct, float32, CPU)."""

from __future__ import annotations

import pytest
import torch

from implicit_if.backends import GenerationConfig, get_backend
from implicit_if.backends.base import truncate_at_stop
from implicit_if.backends.hf import HFBackend
from implicit_if.formats import format_prompt

# Prompts of different token lengths, so batches need padding.
INSTRUCTIONS = [
    "Name three primary colors.",
    "Write a haiku about rain falling on a quiet city street at night.",
    "What is 2 + 2?",
    "Give me one tip for sleeping better, and explain briefly why it works for most people.",
]
SHORT = GenerationConfig(max_new_tokens=12)


@pytest.fixture(scope="module")
def backend(smollm2_dir: str) -> HFBackend:
    return HFBackend(smollm2_dir, device="cpu", dtype="float32", batch_size=4, progress=False)


@pytest.fixture(scope="module")
def prompts() -> list[str]:
    return [format_prompt(i) for i in INSTRUCTIONS]


@pytest.fixture(scope="module")
def batched_outputs(backend: HFBackend, prompts: list[str]) -> list[str]:
    return backend.generate(prompts, SHORT)


def test_truncate_at_stop_cuts_at_the_earliest_stop_string() -> None:
    assert truncate_at_stop("one. two\n\nthree", ("\n\n", ".")) == "one"
    assert truncate_at_stop("no stop here", ("###",)) == "no stop here"
    assert truncate_at_stop("keep", ("",)) == "keep"


def test_greedy_generation_is_deterministic(backend: HFBackend, prompts: list[str], batched_outputs: list[str]) -> None:
    again = backend.generate(prompts, SHORT)
    assert again == batched_outputs
    assert all(text.strip() for text in batched_outputs)


def test_batched_generation_equals_one_at_a_time(
    backend: HFBackend, prompts: list[str], batched_outputs: list[str]
) -> None:
    backend.batch_size = 1
    try:
        single = [backend.generate([p], SHORT)[0] for p in prompts]
    finally:
        backend.batch_size = 4
    assert single == batched_outputs


def test_stop_strings_end_the_text_where_they_first_appear(
    backend: HFBackend, prompts: list[str], batched_outputs: list[str]
) -> None:
    # Take a stop string from inside an unconstrained output: the stopped text must end right before it.
    index, text = max(enumerate(batched_outputs), key=lambda item: len(item[1].strip()))
    words = text.split()
    assert len(words) >= 3, f"need a longer output to cut: {text!r}"
    stop = " " + words[2]
    stopped = backend.generate([prompts[index]], GenerationConfig(max_new_tokens=12, stop=(stop,)))[0]
    assert stopped == text[: text.index(stop)]
    assert stop not in stopped


def reference_logprobs(model, tokenizer, context: str, continuation: str) -> list[float]:
    """One unpadded forward pass per sequence: the plainest possible computation."""
    ctx = tokenizer(context, add_special_tokens=True)["input_ids"]
    cont = tokenizer(continuation, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ctx + cont])).logits[0].float()
    logprobs = torch.log_softmax(logits, dim=-1)
    return [logprobs[len(ctx) - 1 + k, token].item() for k, token in enumerate(cont)]


def test_scores_equal_a_plain_per_sequence_computation(backend: HFBackend, prompts: list[str]) -> None:
    continuations = ["Red, blue and yellow.", "Rain on stone,\nthe city hums softly.", "4", "Keep a regular bedtime."]
    scored = backend.score(prompts, continuations)
    for prompt, continuation, result in zip(prompts, continuations, scored):
        expected = reference_logprobs(backend.model, backend.tokenizer, prompt, continuation)
        assert result.n_tokens == len(expected)
        assert result.token_logprobs == pytest.approx(expected, abs=1e-4)
        assert result.logprob == pytest.approx(sum(expected), abs=1e-4)
        assert result.logprob < 0


def test_add_eos_false_drops_exactly_the_eos_term(backend: HFBackend, prompts: list[str]) -> None:
    with_eos, without = (backend.score(prompts[:2], ["Red.", "Rain."], add_eos=flag) for flag in (True, False))
    for a, b in zip(with_eos, without):
        assert a.n_tokens == b.n_tokens + 1
        assert a.token_logprobs[:-1] == pytest.approx(b.token_logprobs, abs=1e-4)


def test_score_rejects_unpaired_inputs(backend: HFBackend) -> None:
    with pytest.raises(ValueError, match="as many contexts as continuations"):
        backend.score(["a", "b"], ["c"])


def test_unknown_backend_names_the_choices() -> None:
    with pytest.raises(ValueError, match="hf, vllm, openai"):
        get_backend("tgi", "m")


def test_auto_precision_is_what_the_hardware_computes_natively() -> None:
    from implicit_if.backends.hf import cpu_computes_bfloat16, pick_dtype, resolve_dtype_name

    assert resolve_dtype_name("auto", "cuda") == "bfloat16"
    assert resolve_dtype_name("auto", "cpu") == ("bfloat16" if cpu_computes_bfloat16() else "float32")
    assert resolve_dtype_name("auto", "mps") == "float32"
    assert resolve_dtype_name("float16", "cpu") == "float16"
    assert pick_dtype("auto", "cpu") is getattr(torch, resolve_dtype_name("auto", "cpu"))
    for wrong in ("int8", "nonsense", "Tensor"):
        with pytest.raises(ValueError, match="use auto, float32, bfloat16 or float16"):
            resolve_dtype_name(wrong, "cpu")


def test_demo_and_eval_refuse_an_unknown_precision_before_loading_anything(tmp_path) -> None:
    from typer.testing import CliRunner

    from implicit_if.cli import app

    for args in (["demo", "--out", str(tmp_path / "d")], ["eval", str(tmp_path), "--out", str(tmp_path / "e")]):
        result = CliRunner().invoke(app, [*args, "--dtype", "int8"])
        assert result.exit_code == 2 and "unknown dtype 'int8'" in result.output
        assert not (tmp_path / "d").exists() and not (tmp_path / "e").exists()
