"""Leakage on the board is measured by the harness on outputs.json, never taken from leakage.jsonl.

The attacks use a copy of a real committed submission (smollm2-135m-instruct: code leaks in 11.8%
of its outputs, poem in 1.2%, so 12.9% leak in some way).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from leaderboard_fixtures import (
    edit_json,
    isolated_cache,  # noqa: F401 (fixture)
    read_json,
    write_jsonl,
)

from implicit_if.leaderboard.check import check_submissions
from implicit_if.leaderboard.evaluation_sets import EvaluationSets
from implicit_if.leaderboard.problems import errors
from implicit_if.leakage import DETECTORS, leakage_rate

REAL = Path(__file__).resolve().parents[1] / "leaderboards" / "submissions" / "smollm2-135m-instruct"
NAME = REAL.name


@pytest.fixture()
def root(tmp_path: Path, isolated_cache: Path) -> Path:  # noqa: F811
    if not REAL.is_dir():
        pytest.skip(f"{REAL} is absent")
    shutil.copytree(REAL, tmp_path / NAME)
    return tmp_path


def check(root: Path):
    return check_submissions(root, EvaluationSets())


def leakage_rows(root: Path) -> list[dict]:
    return [json.loads(line) for line in (root / NAME / "leakage.jsonl").read_text().splitlines()]


def any_leak(entry) -> float:
    return leakage_rate(entry.leakage["any"]) * 100


def test_the_real_submission_passes_with_every_detector_measured(root: Path):
    entries, problems = check(root)
    assert errors(problems) == []
    (entry,) = entries
    assert set(entry.leakage) == {*DETECTORS, "any"}
    assert any_leak(entry) == pytest.approx(100 * 11 / 85)  # 12.9%: 10 code + 1 poem, no overlap
    assert entry.recomputed()["leakage"]["code"] == pytest.approx(100 * 10 / 85)


def test_dropping_a_detector_column_is_refused(root: Path):
    """The attack: drop `code` from the records and the claims; the board used to show 1.2% instead of 12.9%."""
    write_jsonl(
        root / NAME / "leakage.jsonl", [{k: v for k, v in row.items() if k != "code"} for row in leakage_rows(root)]
    )
    edit_json(root / NAME / "metadata.json", lambda m: m["claimed"]["leakage"].pop("code"))
    entries, problems = check(root)
    assert entries == []
    (problem,) = errors(problems)
    assert problem.file == f"{NAME}/leakage.jsonl"
    assert "detector column(s) code missing" in problem.message and "implicit-if leak" in problem.fix
    assert "\n" not in problem.line()


def test_a_made_up_detector_column_is_refused(root: Path):
    rows = leakage_rows(root)
    for row in rows:
        row['=HYPERLINK("http://x")'] = True  # would have become a detector, a CSV header and 100% leakage
    write_jsonl(root / NAME / "leakage.jsonl", rows)
    entries, problems = check(root)
    assert entries == []
    (problem,) = errors(problems)
    assert problem.file == f"{NAME}/leakage.jsonl" and "unknown column(s) '=HYPERLINK" in problem.message
    assert "not a detector this harness runs" in problem.message


def test_identifier_columns_are_allowed_and_checked(root: Path):
    outputs = read_json(root / NAME / "outputs.json")
    rows = [{**row, "instruction": outputs[row["index"]]["instruction"]} for row in leakage_rows(root)]
    write_jsonl(root / NAME / "leakage.jsonl", rows)
    assert errors(check(root)[1]) == []
    rows[3]["instruction"] = "some other instruction"
    write_jsonl(root / NAME / "leakage.jsonl", rows)
    assert any(
        "row 4: index is past the end of outputs.json or its instruction differs" in p.message
        for p in errors(check(root)[1])
    )


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda rows: rows[5].update(code="false"), "row 6: a detector value is not true/false"),
        (lambda rows: rows.append(dict(rows[0])), "index appears more than once"),
        (lambda rows: rows.pop(), "1 outputs have no leakage record"),
    ],
)
def test_records_must_match_the_recomputation_row_for_row(root: Path, change, expected: str):
    rows = leakage_rows(root)
    change(rows)
    write_jsonl(root / NAME / "leakage.jsonl", rows)
    lines = [p.line() for p in errors(check(root)[1])]
    assert any(f"{NAME}/leakage.jsonl" in line and expected in line for line in lines), lines


def test_without_records_the_board_still_measures_leakage_and_checks_the_claims(root: Path):
    (root / NAME / "leakage.jsonl").unlink()
    entries, problems = check(root)
    assert errors(problems) == []
    assert any_leak(entries[0]) == pytest.approx(100 * 11 / 85)
    edit_json(root / NAME / "metadata.json", lambda m: m["claimed"]["leakage"].update(code=0.0))
    lines = [p.line() for p in errors(check(root)[1])]
    assert any("claimed leakage.code 0.0 but the records give 11.76" in line for line in lines), lines


def test_a_leakage_claim_needs_the_outputs_it_is_measured_on(root: Path):
    for name in ("outputs.json", "annotations.json", "leakage.jsonl"):
        (root / NAME / name).unlink()
    edit_json(root / NAME / "metadata.json", lambda m: [m["claimed"].pop(k) for k in ("win_rate", "lc_win_rate")])
    lines = [p.line() for p in errors(check(root)[1])]
    assert lines == [
        f"error: {NAME}/metadata.json: claims leakage but outputs.json is missing "
        "(fix: add the outputs.json the detectors should scan, or remove the claim)"
    ]
