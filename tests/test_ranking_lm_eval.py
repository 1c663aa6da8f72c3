"""Acceptance: lm-eval's `implicit_if_ranking` gives the same numbers as `implicit-if rank`.

The real `lm_eval` CLI runs in a subprocess with its stock `hf` model (its own tokenisation and
batching); `implicit-if rank` runs on the same model, pairs and plan. Fractions must be equal
and each record's log-probability must agree within 1e-3 per token.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ranking_fixtures import PAIRS, write_pairs
from typer.testing import CliRunner

from implicit_if.cli import app

pytestmark = pytest.mark.slow

N_PAIRS, K = 6, 2


def _lm_eval(model_dir: str, pairs: Path, out: Path) -> tuple[dict, list[dict]]:
    lm_eval = Path(sys.executable).with_name("lm_eval")
    metadata = {"pairs": str(pairs), "n_pairs": N_PAIRS, "distractors": K, "seed": 0}
    command = [
        str(lm_eval),
        "--model",
        "hf",
        "--model_args",
        f"pretrained={model_dir},dtype=float32",
        "--tasks",
        "implicit_if_ranking",
        "--metadata",
        json.dumps(metadata),
        "--device",
        "cpu",
        "--batch_size",
        "8",
        "--output_path",
        str(out),
        "--log_samples",
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ), timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(next(out.rglob("results_*.json")).read_text())["results"]["implicit_if_ranking"]
    samples = [
        json.loads(line) for line in next(out.rglob("samples_implicit_if_ranking_*.jsonl")).read_text().splitlines()
    ]
    return results, samples


@pytest.mark.parametrize("which", ["smollm2_dir", "gemma_dir"])
def test_lm_eval_task_equals_rank_cli(
    which: str, request: pytest.FixtureRequest, tmp_path: Path, offline_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMPLICIT_IF_CACHE", str(tmp_path / "cache"))  # dataset caches stay in the test
    model_dir = request.getfixturevalue(which)
    pairs = write_pairs(tmp_path / "pairs.jsonl", PAIRS)
    results, samples = _lm_eval(model_dir, pairs, tmp_path / "lm_eval")

    out = tmp_path / "scores.jsonl"
    cli = CliRunner().invoke(
        app,
        [
            "rank",
            "--model",
            model_dir,
            "--pairs",
            str(pairs),
            "--limit",
            str(N_PAIRS),
            "--distractors",
            str(K),
            "--seed",
            "0",
            "--output",
            str(out),
            "--json",
        ],
    )
    assert cli.exit_code == 0, cli.output
    summary = json.loads(cli.output[cli.output.index("{") :])

    for metric in ("response_ranking", "response_ranking_sum", "response_ranking_conditional"):
        assert results[f"{metric},none"] == pytest.approx(summary[metric]["estimate"], abs=1e-12), metric
    assert results["response_ranking_ci_low,none"] == pytest.approx(summary["response_ranking"]["ci_low"])
    assert results["n_comparisons,none"] == summary["response_ranking"]["n_comparisons"] == N_PAIRS * K
    assert results["tokenization_mismatch_rate,none"] == 0.0

    ours = {(r["instruction_id"], r["response_id"]): r for r in map(json.loads, out.read_text().splitlines())}
    assert len(samples) == len(ours)
    for sample in samples:
        doc = sample["doc"]
        record = ours[(doc["instruction_id"], doc["response_id"])]
        assert doc["n_tokens"] == record["n_tokens"]
        loglikelihoods = [float(resp[0][0]) for resp in sample["resps"]]
        theirs = loglikelihoods[1] - loglikelihoods[0]
        assert abs(theirs - record["logprob"]) <= 1e-3 * record["n_tokens"]
