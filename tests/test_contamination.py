"""Contamination check: n-gram overlap per evaluation example, flagged, via the API and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from implicit_if.cli import app
from implicit_if.contamination import build_index, check_example, contamination_records, contamination_summary, tokens

TRAIN = [
    "Write a short story about a lighthouse keeper who befriends a seagull during a long and stormy winter.",
    "List the planets of the solar system in order from the sun.",
    "Give three tips for staying healthy.",
]


def test_tokens_ignore_case_and_punctuation() -> None:
    assert tokens("Hello, WORLD!  It's 2024.") == ["hello", "world", "it", "s", "2024"]


def test_shared_13gram_is_found_and_flagged() -> None:
    copied = (
        "Please write a short story about a lighthouse keeper who befriends a seagull during a long and stormy night"
    )
    record = check_example(copied, build_index(TRAIN, 13))
    assert record["n_overlapping"] >= 1 and record["flagged"] and record["matched_train"] == [0]
    assert 0 < record["overlap"] < 1
    fresh = "Write a short story about a baker who opens a shop on the moon and sells bread to astronauts daily"
    assert check_example(fresh, build_index(TRAIN, 13))["flagged"] is False


def test_short_examples_are_checked_whole() -> None:
    index = build_index(TRAIN, 13)
    same = check_example("give three TIPS for staying healthy", index)
    assert same["whole_text_check"] and same["flagged"] and same["matched_train"] == [2]
    # A prefix of a word is not a match: "planet" is not "planets".
    assert check_example("the planet", index)["flagged"] is False
    assert check_example("", index)["flagged"] is False


def test_min_overlap_threshold_and_summary() -> None:
    copied = (
        "write a short story about a lighthouse keeper who befriends a seagull "
        "during a long and stormy summer by the sea"
    )
    loose = contamination_records([copied, "unrelated text"], TRAIN, n=13)
    strict = contamination_records([copied, "unrelated text"], TRAIN, n=13, min_overlap=0.9)
    assert loose[0]["flagged"] and not strict[0]["flagged"]
    summary = contamination_summary(loose)
    assert summary["n_flagged"] == 1 and summary["flagged_indices"] == [0]
    assert summary["ci_low"] < 0.5 < summary["ci_high"]
    with pytest.raises(ValueError, match="min_overlap"):
        contamination_records(["x"], TRAIN, min_overlap=2.0)


def test_cli_with_files(tmp_path: Path) -> None:
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps({"instruction": t, "response": "ok"}) + "\n" for t in TRAIN), encoding="utf-8")
    evaluation = tmp_path / "eval.json"
    evaluation.write_text(
        json.dumps(
            [{"instruction": "Give three tips for staying healthy."}, {"instruction": "Name a river in Africa."}]
        ),
        encoding="utf-8",
    )
    out = tmp_path / "overlap.jsonl"
    result = CliRunner().invoke(
        app, ["contamination", "--train", str(train), "--eval", str(evaluation), "--output", str(out), "--json"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output[result.output.index("{") :])
    assert summary["n_flagged"] == 1 and summary["n_examples"] == 2
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["flagged"] for r in records] == [True, False]


def test_cli_rejects_unknown_sources(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["contamination", "--train", "no_such_set", "--eval", "alpaca_eval"])
    assert result.exit_code == 2 and "neither a file nor a dataset name" in result.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"title": "x"}\n', encoding="utf-8")
    result = CliRunner().invoke(app, ["contamination", "--train", str(bad)])
    assert result.exit_code == 2 and "none of the text fields" in result.output
