"""`implicit-if submit` from a real `lm_eval --log_samples` run: records, claims and the board check."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from implicit_if.cli import app

pytestmark = pytest.mark.slow


def test_submit_from_lm_eval_results(
    smollm2_dir: str, tmp_path: Path, offline_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMPLICIT_IF_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "lm_eval"
    command = [
        str(Path(sys.executable).with_name("lm_eval")),
        "--model",
        "hf",
        "--model_args",
        f"pretrained={smollm2_dir},dtype=float32",
        "--tasks",
        "implicit_if_leak,implicit_if_ranking",
        "--metadata",
        json.dumps({"n_pairs": 8, "distractors": 2, "offline": True}),
        "--gen_kwargs",
        "max_gen_toks=8",
        "--device",
        "cpu",
        "--batch_size",
        "16",
        "--output_path",
        str(out),
        "--log_samples",
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ), timeout=1500)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(next(out.rglob("results_*.json")).read_text())["results"]

    submissions = tmp_path / "submissions"
    result = CliRunner().invoke(
        app,
        [
            "submit",
            str(out),
            "--name",
            "smollm2-lm-eval",
            "--adaptation",
            "instruction",
            "--base-model",
            "HuggingFaceTB/SmolLM2-135M",
            "--license",
            "apache-2.0",
            "--contact",
            "a@b.c",
            "--submissions",
            str(submissions),
        ],
    )
    assert result.exit_code == 0, result.output
    folder = submissions / "smollm2-lm-eval"
    meta = json.loads((folder / "metadata.json").read_text())
    # The run's own provenance, not its local paths: the embedded model's name and pinned package.
    assert meta["model"]["id"] == "smollm2-135m-instruct" and meta["model"]["revision"].startswith("sha256:")
    assert meta["evaluation_set"] == {"dataset": "offline_instructions", "source": "fixture"}
    assert meta["decoding"]["max_new_tokens"] == 8
    # lm-eval's reported numbers are the claims, and `check` recomputed them from the records.
    # Claims are stored in percent to four decimals.
    claimed = meta["claimed"]
    assert claimed["ranking_accuracy"] == pytest.approx(
        results["implicit_if_ranking"]["response_ranking,none"] * 100, abs=5e-5
    )
    for detector, value in claimed["leakage"].items():
        assert value == pytest.approx(results["implicit_if_leak"][f"{detector},none"] * 100, abs=5e-5)
    outputs = json.loads((folder / "outputs.json").read_text())
    assert len(outputs) == results["implicit_if_leak"]["sample_len"] == 85
    ranking = [json.loads(line) for line in (folder / "ranking.jsonl").read_text().splitlines()]
    assert len(ranking) == results["implicit_if_ranking"]["sample_len"] and "instruction_key" in ranking[0]
    check = CliRunner().invoke(app, ["leaderboard", "check", "--submissions", str(submissions)])
    assert check.exit_code == 0, check.output
