"""`implicit-if rank`: clear errors before any model loads, and an end-to-end run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ranking_fixtures import PAIRS, write_pairs
from typer.testing import CliRunner

from implicit_if.cli import app
from implicit_if.ranking import plan_comparisons, scoring_jobs, summarize

runner = CliRunner()


def _rank(*args: str):
    return runner.invoke(app, ["rank", "--model", "smollm2-135m-instruct", *args])


def test_bad_pairs_file_is_named_with_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "pairs.jsonl"
    bad.write_text('{"instruction": "a", "response": "b"}\n{"instruction": "only"}\n', encoding="utf-8")
    result = _rank("--pairs", str(bad))
    assert result.exit_code == 2
    assert "pairs.jsonl:2" in result.output and '"response"' in result.output

    bad.write_text("not json\n", encoding="utf-8")
    result = _rank("--pairs", str(bad))
    assert result.exit_code == 2 and "not valid JSON" in result.output


def test_missing_file_too_few_pairs_and_bad_options(tmp_path: Path) -> None:
    assert "does not exist" in _rank("--pairs", str(tmp_path / "nope.jsonl")).output
    few = write_pairs(tmp_path / "few.jsonl", PAIRS[:3])
    result = _rank("--pairs", str(few), "--distractors", "5")
    assert result.exit_code == 2 and "cannot give 5 distractors" in result.output
    assert "unknown chat format" in _rank("--pairs", str(few), "--format", "chatml").output
    assert "unknown --scorer" in _rank("--pairs", str(few), "--scorer", "turbo").output


@pytest.mark.slow
def test_rank_end_to_end(tmp_path: Path, smollm2_dir: str, offline_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMPLICIT_IF_CACHE", str(tmp_path / "cache"))  # dataset caches stay in the test
    pairs = write_pairs(tmp_path / "pairs.jsonl")
    out = tmp_path / "scores.jsonl"
    result = runner.invoke(
        app,
        [
            "rank",
            "--model",
            smollm2_dir,
            "--pairs",
            str(pairs),
            "--distractors",
            "2",
            "--seed",
            "3",
            "--output",
            str(out),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output[result.output.index("{") :])
    records = [json.loads(line) for line in out.read_text().splitlines()]

    jobs = scoring_jobs(plan_comparisons(len(PAIRS), 2, seed=3))
    assert [(r["instruction_id"], r["response_id"]) for r in records] == [(i, j) for i, j, _ in jobs]
    for record in records:
        assert record["logprob"] < 0 and record["n_tokens"] >= 2
        assert record["mean_logprob"] == pytest.approx(record["logprob"] / record["n_tokens"])
    # Same response, same token count under any instruction (tokenised on its own, plus EOS).
    counts = {}
    for record in records:
        assert counts.setdefault(record["response_id"], record["n_tokens"]) == record["n_tokens"]
    # The printed summary is the metric over the written records.
    again = summarize(records, seed=3)
    for variant in ("response_ranking", "response_ranking_sum", "response_ranking_conditional"):
        assert summary[variant]["estimate"] == pytest.approx(again[variant]["estimate"])
        assert summary[variant]["n_comparisons"] == len(PAIRS) * 2
    # A response is far likelier under its own instruction than under an unrelated one: a
    # scorer that mixed up prompts or positions would be near chance here.
    assert summary["response_ranking_conditional"]["estimate"] >= 0.9
    assert summary["response_ranking"]["estimate"] > 0.5
