"""The rules adapter decoding with a real base model (Gemma 3 270M): batching, padding, lm-eval."""

from __future__ import annotations

import pytest
import torch

from implicit_if.backends.base import GenerationConfig
from implicit_if.formats import format_prompt
from implicit_if.rules import build_rules

pytestmark = pytest.mark.slow

# Different lengths, so a batch is left-padded.
INSTRUCTIONS = [
    "Give three tips for staying healthy.",
    "What is the capital of France?",
    "Write a short poem about the sea at night, with a storm coming in from the west.",
]
SHORT = GenerationConfig(max_new_tokens=12)


@pytest.fixture(scope="module")
def backend(gemma_dir):
    from implicit_if.backends.hf import HFBackend

    return HFBackend(gemma_dir, device="cpu", dtype="float32", batch_size=len(INSTRUCTIONS), progress=False)


def generate(backend, rules, batch_size: int) -> list[str]:
    backend.logits_processor_factory = rules.hf_logits_processor_factory if rules else None
    backend.batch_size = batch_size
    try:
        return backend.generate([format_prompt(i, "tulu") for i in INSTRUCTIONS], SHORT)
    finally:
        backend.logits_processor_factory = None


@pytest.fixture(scope="module")
def ruled_batched(backend) -> list[str]:
    """All three rules, the three prompts in one left-padded batch (reused by several tests)."""
    return generate(backend, build_rules("eos,uniform,diversity"), batch_size=len(INSTRUCTIONS))


def test_batched_and_one_at_a_time_decoding_give_the_same_text(backend, ruled_batched):
    assert ruled_batched == generate(backend, build_rules("eos,uniform,diversity"), batch_size=1)
    plain = generate(backend, None, batch_size=len(INSTRUCTIONS))
    assert ruled_batched != plain  # the rules changed what the base model says
    # The base model echoes the chat tags; the tag characters are pushed down by the uniform rule.
    assert sum("<|" in text for text in plain) > sum("<|" in text for text in ruled_batched)


def test_padding_is_never_counted_as_instruction_tokens(backend):
    """With the study's instruction counting, the left padding of a batch must not be penalised."""
    rules = build_rules("eos,uniform,diversity", count_instruction_tokens=True)
    assert generate(backend, rules, batch_size=len(INSTRUCTIONS)) == generate(backend, rules, batch_size=1)


def test_each_ablation_is_a_different_decoder(backend, ruled_batched):
    ablations = {
        spec: generate(backend, build_rules(spec), batch_size=len(INSTRUCTIONS))
        for spec in ("eos", "uniform", "diversity")
    }
    assert len({tuple(v) for v in [*ablations.values(), ruled_batched]}) == 4


def test_cached_batch_matches_the_studys_uncached_one_at_a_time_loop(backend, ruled_batched):
    """The study decoded one token at a time without a KV cache; the cached batch agrees with it."""
    rules = build_rules("eos,uniform,diversity")
    tok, model = backend.tokenizer, backend.model
    prompt = tok(format_prompt(INSTRUCTIONS[0], "tulu"))["input_ids"]
    (processor,) = rules.hf_logits_processor_factory(tok, len(prompt))
    ids = torch.tensor([prompt])
    with torch.no_grad():
        for _ in range(SHORT.max_new_tokens):
            scores = processor(ids, model(ids).logits[:, -1, :].float())
            next_id = scores.argmax(dim=-1, keepdim=True)
            ids = torch.cat([ids, next_id], dim=1)
            if next_id.item() == tok.eos_token_id:
                break
    assert ruled_batched[0] == tok.decode(ids[0, len(prompt) :].tolist(), skip_special_tokens=True)


# -- lm-eval's registered model ----------------------------------------------------------------


@pytest.fixture(scope="module")
def lm_with_rules(backend):
    from implicit_if.lm_eval_models import ImplicitIfHFLM

    return ImplicitIfHFLM(
        pretrained=backend.model, tokenizer=backend.tokenizer, rules="eos+uniform+diversity", batch_size=3, device="cpu"
    )


def test_lm_eval_model_is_registered_and_parses_rules():
    from lm_eval.api.registry import get_model

    from implicit_if.lm_eval_models import ImplicitIfHFLM, rules_from_model_arg

    assert get_model("implicit_if_hf") is ImplicitIfHFLM
    assert rules_from_model_arg("eos+diversity") == "eos,diversity"
    assert rules_from_model_arg(None) == "none"  # lm-eval turns "none" into None


def test_lm_eval_generation_applies_the_rules_like_the_hf_backend(lm_with_rules, ruled_batched):
    from lm_eval.api.instance import Instance

    prompts = [format_prompt(i, "tulu") for i in INSTRUCTIONS]
    requests = [
        Instance(
            "generate_until",
            {},
            (p, {"until": ["<|user|>"], "max_gen_toks": SHORT.max_new_tokens, "do_sample": False}),
            i,
        )
        for i, p in enumerate(prompts)
    ]
    got = lm_with_rules.generate_until(requests, disable_tqdm=True)
    assert got == [text.split("<|user|>")[0] for text in ruled_batched]


def test_lm_eval_loglikelihood_is_the_product_of_experts(backend, lm_with_rules):
    """The rules' own greedy continuation is greedy under rules-scoring, and not under the base model."""
    from lm_eval.models.huggingface import HFLM

    rules = build_rules("eos,uniform,diversity")
    tok, model = backend.tokenizer, backend.model
    context = tok(format_prompt(INSTRUCTIONS[0], "tulu"))["input_ids"]
    (processor,) = rules.hf_logits_processor_factory(tok, len(context))
    with torch.no_grad():
        out = model.generate(
            torch.tensor([context]),
            max_new_tokens=8,
            do_sample=False,
            logits_processor=[processor],
            pad_token_id=tok.pad_token_id,
        )
    continuation = out[0, len(context) :].tolist()
    request = [(("ctx", "cont"), context, continuation)]
    (ruled,) = lm_with_rules._loglikelihood_tokens(request, disable_tqdm=True)
    base = HFLM(pretrained=model, tokenizer=tok, batch_size=1, device="cpu")
    (plain,) = base._loglikelihood_tokens(request, disable_tqdm=True)
    assert ruled[1] is True and plain[1] is False
    assert ruled[0] != pytest.approx(plain[0])
    # Rules whose constants are all zero change nothing: the score is the base model's.
    from implicit_if.lm_eval_models import ImplicitIfHFLM

    neutral = ImplicitIfHFLM(
        pretrained=model,
        tokenizer=tok,
        rules="eos+uniform+diversity",
        batch_size=1,
        device="cpu",
        eos_scale=0,
        diversity_penalty=0,
        token_shifts="{}",
    )
    (same,) = neutral._loglikelihood_tokens(request, disable_tqdm=True)
    assert same[0] == pytest.approx(plain[0], abs=1e-3) and same[1] == plain[1]
