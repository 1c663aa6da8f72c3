"""Acceptance: on both embedded models, the fast scorer's per-token log-probabilities equal the
plain float32 computation within 1e-3, including a prompt longer than Gemma's 512-token sliding
window; bfloat16 stays close to float32."""

from __future__ import annotations

import warnings

import pytest
import torch

from implicit_if.ranking import plan_comparisons, scoring_jobs, tokenize_jobs
from implicit_if.scoring import score_token_ids, score_token_ids_fast

pytestmark = pytest.mark.slow

LONG_NOTE = "Summarise these notes about the harbour, its boats and the tides that move them. "


def _token_pairs(tokenizer):
    pairs = [
        {"instruction": "Name three primary colours.", "response": "Red, yellow and blue."},
        {"instruction": "What is 12 times 12?", "response": "12 times 12 is 144."},
        {
            "instruction": "Write a two-line poem about snow.",
            "response": "White hush on the hill,\nthe whole town holding its breath.",
        },
        {"instruction": "Translate 'good morning' into French.", "response": "Bonjour."},
        {"instruction": LONG_NOTE * 36, "response": "The harbour is busy at high tide and quiet at low tide."},
    ]
    jobs = scoring_jobs(plan_comparisons(len(pairs), 2, seed=0), conditional=False)
    return tokenize_jobs(tokenizer, pairs, jobs, "tulu")


def _load(path: str):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    return model, tokenizer


@pytest.mark.parametrize("which", ["gemma_dir", "smollm2_dir"])
def test_fast_scorer_matches_plain_float32(which: str, request: pytest.FixtureRequest) -> None:
    model, tokenizer = _load(request.getfixturevalue(which))
    pairs = _token_pairs(tokenizer)
    if which == "gemma_dir":
        assert max(len(ctx) for ctx, _ in pairs) > model.config.sliding_window
    plain = score_token_ids(model, pairs, batch_size=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback to the plain path on the models we ship
        fast = score_token_ids_fast(model, pairs, batch_size=4)
    assert [len(p) for p in plain] == [len(f) for f in fast]
    gaps = [abs(a - b) for p, f in zip(plain, fast) for a, b in zip(p, f)]
    assert max(gaps) < 1e-3

    # bfloat16: faster on AMX CPUs and GPUs; per-token mean log-probabilities stay close.
    bf16 = score_token_ids_fast(model.to(torch.bfloat16), pairs, batch_size=4, self_check=False)
    mean_gaps = [abs(sum(p) / len(p) - sum(b) / len(b)) for p, b in zip(plain, bf16)]
    assert max(mean_gaps) < 0.15
