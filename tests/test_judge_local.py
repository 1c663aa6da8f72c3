"""The local judge (SmolLM2-135M-Instruct through the hf backend), and the lm-eval task around it."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from implicit_if.judging import judge_outputs, load_judge_spec

INSTRUCTIONS = [
    ("What is the capital of France?", "The capital of France is Paris.", "Bananas are yellow."),
    ("Give me a synonym for 'happy'.", "A synonym for happy is 'joyful'.", "happy happy happy happy"),
    ("How many legs does a spider have?", "A spider has eight legs.", "A spider has eight legs."),
]


def _files():
    references = [{"instruction": i, "output": good, "generator": "reference"} for i, good, _ in INSTRUCTIONS]
    outputs = [{"instruction": i, "output": other, "generator": "candidate"} for i, _, other in INSTRUCTIONS]
    return outputs, references


@pytest.mark.slow
def test_local_judge_scores_labels_caches_and_averages_orders(tmp_path, smollm2_dir, offline_env, monkeypatch):
    monkeypatch.setenv("IMPLICIT_IF_CACHE", str(tmp_path / "cache"))
    spec = load_judge_spec(f"local:{smollm2_dir}", dtype="float32")
    outputs, references = _files()
    cache = tmp_path / "verdicts.sqlite"
    annotations, summary = judge_outputs(outputs, references, spec, cache_path=cache, both_orders=True, progress=False)
    assert (summary.n_pairs, summary.n_identical, summary.n_comparisons, summary.n_new) == (3, 1, 4, 4)
    assert annotations[2]["preference"] == 1.5 and annotations[2]["order"] == "identical"
    for record in annotations[:2]:
        assert record["order"] == "both" and 1 <= record["preference"] <= 2
        # each order's verdict is the softmax over the two label log-probabilities; the record is their mean
        per_order = []
        for raw, model_first in zip(record["raw_completion"], (False, True)):
            labels = json.loads(raw)
            p_second = 1 / (1 + math.exp(labels["A"] - labels["B"]))
            per_order.append(1 + ((1 - p_second) if model_first else p_second))
        assert record["preference"] == pytest.approx(sum(per_order) / 2, abs=1e-3)
    # the same labels scored as continuations by the backend's generic path agree with the fast path
    from implicit_if.judging.judges import Comparison, LocalJudge

    judge = LocalJudge(spec)
    comparison = Comparison("k", INSTRUCTIONS[0][0], INSTRUCTIONS[0][1], INSTRUCTIONS[0][2])
    fast = judge.label_logprobs([judge.context(comparison)])
    # a left-padded batch of contexts of different lengths gives each the label log-probabilities it gets alone
    contexts = [judge.context(Comparison("k", i, good, other)) for i, good, other in INSTRUCTIONS]
    assert len({len(judge.tokenizer(c)["input_ids"]) for c in contexts}) == len(contexts)
    ids = judge.label_token_ids
    batched = judge.backend.next_token_logprobs(contexts, ids)
    for context, together in zip(contexts, batched):
        assert together == pytest.approx(judge.backend.next_token_logprobs([context], ids)[0], abs=1e-4)
    judge.label_token_ids = None
    generic = judge.label_logprobs([judge.context(comparison)])
    assert fast[0] == pytest.approx(generic[0], abs=1e-4)
    # a second run asks nothing: every verdict comes from the cache, identical
    again, summary = judge_outputs(outputs, references, spec, cache_path=cache, both_orders=True, progress=False)
    assert (summary.n_cached, summary.n_new) == (4, 0)
    assert again == annotations


@pytest.mark.slow
def test_lm_eval_cli_runs_the_alpacaeval_task(tmp_path, smollm2_dir, offline_env):
    """The real `lm_eval` CLI: generation, one judge pass (local SmolLM2), LC and plain win rates."""
    lm_eval = Path(sys.executable).parent / "lm_eval"
    annotations = tmp_path / "annotations.json"
    metadata = {
        "judge": f"local:{smollm2_dir}",
        "judge_cache": str(tmp_path / "verdicts.sqlite"),
        "annotations_path": str(annotations),
        "offline": True,
    }
    env = {**os.environ, "IMPLICIT_IF_CACHE": str(tmp_path / "cache")}
    result = subprocess.run(
        [
            str(lm_eval),
            "--model",
            "hf",
            "--model_args",
            f"pretrained={smollm2_dir},dtype=float32",
            "--tasks",
            "implicit_if_alpacaeval",
            "--limit",
            "4",
            "--device",
            "cpu",
            "--batch_size",
            "4",
            "--gen_kwargs",
            "max_gen_toks=32",
            "--metadata",
            json.dumps(metadata),
            "--output_path",
            str(tmp_path / "results"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=1500,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    [results_file] = (tmp_path / "results").rglob("results_*.json")
    metrics = json.loads(results_file.read_text(encoding="utf-8"))["results"]["implicit_if_alpacaeval"]
    values = {name.split(",")[0]: value for name, value in metrics.items() if "," in name}
    for name in ("lc_win_rate", "win_rate", "discrete_win_rate", "lc_win_rate_ci_low", "lc_win_rate_ci_high"):
        assert 0 <= values[name] <= 100, name
    assert values["lc_win_rate_ci_low"] <= values["lc_win_rate"] <= values["lc_win_rate_ci_high"]
    # the annotations the task wrote give the same numbers through the plain Python API
    from implicit_if.winrate import compute_metrics

    written = json.loads(annotations.read_text(encoding="utf-8"))
    assert len(written) == 4 and {r["annotator"] for r in written} == {f"local:{smollm2_dir}"}
    assert compute_metrics(written)["win_rate"] == pytest.approx(values["win_rate"])
