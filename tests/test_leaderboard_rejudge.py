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
from implicit_if.leaderboard.rejudge import rejudge, runnable_judge
from implicit_if.leaderboard.render_markdown import render_markdown
from implicit_if.leaderboard.rescore import rescorable, rescore_ranking

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


def test_only_a_builtin_local_judge_with_the_same_configuration_is_rerun(
    submissions: Path, isolated_cache: Path
) -> None:  # noqa: F811
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
    assert systems["study-gemma-3-270m-response"]["self_reported"] == ["log-probabilities", "preferences"]
    assert systems["study-gemma-3-270m-instruction"]["self_reported"] == ["log-probabilities"]  # a checkpoint CI lacks
    assert systems["gemma-3-270m-base"]["self_reported"] == []  # judged offline, ranked by a model CI holds
    markdown = render_markdown(build_board_data(entries))
    assert "Self-reported" in markdown and "| log-probabilities, preferences" in markdown


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


def test_only_models_ci_holds_at_the_pinned_weights_are_rescored() -> None:
    from implicit_if.models.registry import EMBEDDED_MODELS

    pinned = EMBEDDED_MODELS["gemma-3-270m"].revision
    assert rescorable("gemma-3-270m", pinned) == ""
    assert "not the weights" in rescorable("gemma-3-270m", "sha256:" + "0" * 64)
    assert "not one CI holds" in rescorable("someone/their-7b", "0123456789abcdef0123456789abcdef01234567")


@pytest.mark.slow
def test_rescoring_confirms_true_log_probabilities_and_refuses_edited_ones(submissions: Path) -> None:
    folder = submissions / "gemma-3-270m-base"  # ranked by the embedded Gemma 3 270M
    assert rescore_ranking(folder, "gemma-3-270m-base") == []
    lines = (folder / "ranking.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines]
    for row in rows:  # every true response made half a nat per token likelier
        if row["instruction_id"] == row["response_id"]:
            row["logprob"] += 0.5 * row["n_tokens"]
    (folder / "ranking.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    problems = rescore_ranking(folder, "gemma-3-270m-base", sample=40)  # about 7 true pairs among them
    assert len(problems) == 1 and "re-scored pairs differ" in problems[0].message
