"""`implicit-if eval` runs ranking, leakage and judging on a model and writes its records."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from implicit_if.cli import app


def test_eval_rejects_unknown_format() -> None:
    result = CliRunner().invoke(app, ["eval", "some-model", "--format", "alpaca"])
    assert result.exit_code == 2 and "unknown chat format" in result.output


@pytest.mark.slow
def test_eval_on_a_checkpoint_directory(tmp_path: Path, smollm2_dir: str, offline_env: None) -> None:
    checkpoint = tmp_path / "my-checkpoint"
    shutil.copytree(smollm2_dir, checkpoint)  # stands in for `implicit-if train --output DIR`
    result = CliRunner().invoke(
        app,
        [
            "eval",
            str(checkpoint),
            "--limit",
            "3",
            "--max-new-tokens",
            "8",
            "--judge",
            "smollm2-local",
            "--batch-size",
            "4",
        ],
    )
    assert result.exit_code == 0, result.output
    folder = checkpoint / "eval"
    outputs = json.loads((folder / "outputs.json").read_text())
    assert len(outputs) == 3 and all(o["generator"] == "my-checkpoint" for o in outputs)
    ranking = [json.loads(line) for line in (folder / "ranking.jsonl").read_text().splitlines()]
    assert {r["instruction_id"] for r in ranking} and all(r["n_tokens"] > 0 for r in ranking)
    summary = json.loads((folder / "summary.json").read_text())
    assert 0 <= summary["ranking"]["response_ranking"]["estimate"] <= 1
    assert 0 <= summary["ranking"]["response_ranking_conditional"]["estimate"] <= 1  # eval keeps the second view
    assert 0 <= summary["winrate"]["win_rate"] <= 100
    assert set(summary["leakage"]) >= {"gsm", "code", "chess", "poem", "recipe"}
    from implicit_if.backends.hf import resolve_dtype_name

    assert summary["dtype"] == resolve_dtype_name("auto", "cpu")  # what ran is recorded, not "auto"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dataset", "gsm8k"], "not an evaluation set"),
        (["--backend", "tgi"], "cannot run an evaluation"),
    ],
)
def test_eval_refuses_what_cannot_run_before_loading_anything(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["eval", "no-such-model", *args])
    assert result.exit_code == 2 and message in result.output and len(result.output.strip().splitlines()) == 1


@pytest.mark.slow
def test_eval_on_alpaca_eval_falls_back_to_the_fixture_offline_and_judges_against_a_given_reference(
    tmp_path: Path, smollm2_dir: str, offline_env: None
) -> None:
    from implicit_if.data import load_pairs

    pairs = load_pairs("alpaca_eval", offline=True, limit=3)
    reference = tmp_path / "reference.json"
    reference.write_text(
        json.dumps([{"instruction": p["instruction"], "output": "I do not know.", "generator": "shrug"} for p in pairs])
    )
    result = CliRunner().invoke(
        app,
        [
            "eval",
            smollm2_dir,
            "--dataset",
            "alpaca_eval",
            "--limit",
            "3",
            "--out",
            str(tmp_path / "run"),
            "--format",
            "chat_template",
            "--max-new-tokens",
            "8",
            "--judge",
            "smollm2-local",
            "--reference",
            str(reference),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "falls back to the bundled offline fixture" in result.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["evaluation_set"] == {"dataset": "alpaca_eval", "source": "fixture"}
    annotations = json.loads((tmp_path / "run" / "annotations.json").read_text())
    assert [a["instruction"] for a in annotations] == [p["instruction"] for p in pairs]
    assert {a["generator_1"] for a in annotations} == {"shrug"} and {a["output_1"] for a in annotations} == {
        "I do not know."
    }
