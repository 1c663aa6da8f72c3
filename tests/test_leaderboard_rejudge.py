"""Self-reported preferences: CI re-judges entries of offline judges and refuses edited verdicts;
the boards mark what CI could not reproduce."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from leaderboard_fixtures import isolated_cache  # noqa: F401 (fixture)
from typer.testing import CliRunner

from implicit_if.cli import app
from implicit_if.judging.specs import load_judge_spec
from implicit_if.leaderboard.board import build_board_data
from implicit_if.leaderboard.check import check_submissions
from implicit_if.leaderboard.render_markdown import render_markdown
from implicit_if.leaderboard.rejudge import rejudge, runnable_judge

ENTRY = "study-gemma-3-270m-response-seed0"  # judged by the shipped offline judge


@pytest.fixture()
def submissions(repo_root: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "submissions"
    shutil.copytree(repo_root / "leaderboards" / "submissions", copy)
    return copy


def annotations(folder: Path) -> list[dict]:
    return json.loads((folder / "annotations.json").read_text(encoding="utf-8"))


def with_annotator(folder: Path, name: str) -> None:
    rows = annotations(folder)
    for row in rows:
        row["annotator"] = name
    (folder / "annotations.json").write_text(json.dumps(rows), encoding="utf-8")


def test_only_a_builtin_local_judge_with_the_same_configuration_is_rerun(submissions: Path, isolated_cache: Path) -> None:  # noqa: F811
    rows = annotations(submissions / ENTRY)
    assert runnable_judge(rows).spec.name == "qwen2.5-coder-1.5b-pointwise"
    cases = {
        "configuration": [{**r, "judge_config": "0" * 16} for r in rows],
        "endpoint": [{**r, "annotator": "gpt-4o-mini-logprobs"} for r in rows],
        "not a built-in": [{**r, "annotator": "my-own-judge"} for r in rows],
        "more than one judge": [rows[0], {**rows[1], "annotator": "gpt-4o-mini-logprobs"}],
    }
    for reason, changed in cases.items():
        check = runnable_judge(changed)
        assert not check.runnable and reason in check.reason


def test_every_board_says_what_ci_could_not_reproduce(submissions: Path, isolated_cache: Path) -> None:  # noqa: F811
    with_annotator(submissions / ENTRY, "gpt-4o-mini-logprobs")  # as if an API judge had judged it
    entries, problems = check_submissions(submissions)
    assert not [p for p in problems if p.severity == "error"]
    systems = {s["system"]: s for board in build_board_data(entries)["boards"] for s in board["systems"]}
    assert systems["study-gemma-3-270m-response"]["self_reported"] == ["preferences"]
    assert systems["study-gemma-3-270m-base"]["self_reported"] == ["log-probabilities"]  # ranked, judged offline
    assert systems["study-gemma-3-270m-gsm"]["self_reported"] == []  # judged offline, not ranked
    markdown = render_markdown(build_board_data(entries))
    assert "Self-reported" in markdown and "| preferences" in markdown


def test_the_cli_rejudges_only_what_it_can_and_says_so(submissions: Path, isolated_cache: Path) -> None:  # noqa: F811
    with_annotator(submissions / ENTRY, "gpt-4o-mini-logprobs")
    result = CliRunner().invoke(app, ["leaderboard", "check", "--submissions", str(submissions), "--rejudge", ENTRY])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "cannot be re-judged" in line]
    assert len(lines) == 1 and "endpoint" in lines[0]


@pytest.mark.slow
def test_the_judge_confirms_true_verdicts_and_refuses_edited_ones(submissions: Path, tmp_path: Path) -> None:
    load_judge_spec("qwen2.5-coder-1.5b-pointwise")  # the shipped judge, from its pinned wheel
    rows = [r for r in annotations(submissions / ENTRY) if r["order"] != "identical"][:4]
    cache = tmp_path / "verdicts.sqlite"
    assert rejudge(rows, "x/annotations.json", cache_path=cache, progress=False) == []
    forged = [dict(r) for r in rows]
    forged[2]["preference"] = 1.0 if forged[2]["preference"] >= 1.5 else 2.0  # the verdict turned around
    problems = rejudge(forged, "x/annotations.json", cache_path=cache, progress=False)
    assert len(problems) == 1 and "1 of 4 preferences differ" in problems[0].message and "row 3" in problems[0].message
