"""The pointwise judge: each answer graded alone, float32 label rows, per-answer cache."""

from __future__ import annotations

import json
import sqlite3

import pytest

from implicit_if.judging import judge_outputs, load_judge_spec
from implicit_if.judging.prompt import pointwise_probability

INSTRUCTIONS = [
    ("What is the capital of France?", "The capital of France is Paris."),
    ("What is 17 + 25?", "17 + 25 = 42."),
    ("Name a primary colour.", "Red."),
]
BAD = ["<|user|>\n<|user|>\n<|user|>\n<|user|>", "17 + 25 = 35.", "I cannot help with that request."]


def test_pointwise_probability_is_a_stable_logistic() -> None:
    assert pointwise_probability(0.0, 0.0) == 0.5
    assert pointwise_probability(-2.0, 1.0) == pytest.approx(1 / (1 + 2.718281828459045**-3))
    assert pointwise_probability(1000.0, -1000.0) == 0.0 and pointwise_probability(-1000.0, 1000.0) == 1.0
    assert pointwise_probability(0.3, 1.1) + pointwise_probability(1.1, 0.3) == pytest.approx(1.0)


def test_pointwise_spec_identity_names_its_prompt() -> None:
    spec = load_judge_spec("qwen2.5-coder-0.5b-pointwise")
    assert spec.kind == "local_pointwise" and spec.identity()["prompt"].startswith("pointwise-")
    assert load_judge_spec("pointwise:some/model").kind == "local_pointwise"
    assert spec.identity_hash() != load_judge_spec("qwen2.5-coder-0.5b-pointwise", max_answer_chars=100).identity_hash()


@pytest.mark.slow
def test_pointwise_judge_caches_answers_and_batches_exactly(tmp_path, smollm2_dir, offline_env, monkeypatch):
    monkeypatch.setenv("IMPLICIT_IF_CACHE", str(tmp_path / "cache"))
    spec = load_judge_spec(f"pointwise:{smollm2_dir}", dtype="float32", batch_size=2)
    references = [{"instruction": i, "output": good, "generator": "reference"} for i, good in INSTRUCTIONS]
    model_a = [{"instruction": i, "output": bad, "generator": "a"} for (i, _), bad in zip(INSTRUCTIONS, BAD)]
    model_b = [
        {"instruction": i, "output": bad + " Sorry.", "generator": "b"} for (i, _), bad in zip(INSTRUCTIONS, BAD)
    ]
    cache = tmp_path / "verdicts.sqlite"

    first, summary = judge_outputs(model_a, references, spec, cache_path=cache, both_orders=True, progress=False)
    assert summary.n_new == 6 and not summary.failed
    with sqlite3.connect(cache) as db:
        assert db.execute("SELECT COUNT(*) FROM answer_scores").fetchone()[0] == 6  # 3 references + 3 answers
    for record in first:  # order-free: both orders give the same preference
        raws = [json.loads(r) for r in record["raw_completion"]]
        assert raws[0]["first"] == raws[1]["second"] and raws[0]["second"] == raws[1]["first"]
    # a second model against the same references: only its own answers are graded
    _, summary = judge_outputs(model_b, references, spec, cache_path=cache, both_orders=False, progress=False)
    with sqlite3.connect(cache) as db:
        assert db.execute("SELECT COUNT(*) FROM answer_scores").fetchone()[0] == 9

    # a left-padded batch gives each context the margin it gets alone (float32 body, 1e-4)
    from implicit_if.judging.judges import PointwiseJudge

    judge = PointwiseJudge(spec)
    contexts = [judge.context(i, a) for (i, a) in INSTRUCTIONS] + [judge.context(INSTRUCTIONS[0][0], BAD[0])]
    batched = judge.backend.label_margins(contexts, judge.label_token_ids)
    alone = [judge.backend.label_margins([c], judge.label_token_ids)[0] for c in contexts]
    assert batched == pytest.approx(alone, abs=1e-4)
    # the shared-prefix path equals one plain left-padded pass
    import implicit_if.backends.next_token as next_token

    monkeypatch.setattr(next_token, "MIN_SHARED_PREFIX", 10**9)
    plain = judge.backend.label_margins(contexts, judge.label_token_ids)
    assert batched == pytest.approx(plain, abs=1e-4)
    monkeypatch.undo()
    # and equals the margin read off the model's own full output layer
    import torch

    ids = judge.tokenizer(contexts[0], return_tensors="pt")
    with torch.no_grad():
        logits = judge.backend.model(**ids).logits[0, -1].float()
    yes, no = judge.label_token_ids
    assert alone[0] == pytest.approx(float(logits[yes] - logits[no]), abs=1e-3)
