"""`leaderboard check`: each rule catches what it should, with one line naming the file and the fix."""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from leaderboard_fixtures import (
    edit_json,
    isolated_cache,  # noqa: F401 (fixture)
    read_json,
    synthetic_instructions,
    write_json,
    write_jsonl,
    write_submission,
)

from implicit_if.leaderboard import safety
from implicit_if.leaderboard.check import check_submissions
from implicit_if.leaderboard.evaluation_sets import EvaluationSets
from implicit_if.leaderboard.problems import errors

INSTRUCTIONS = synthetic_instructions(60)


@pytest.fixture(autouse=True)
def _cache(isolated_cache):  # noqa: F811
    return isolated_cache


def sets() -> EvaluationSets:
    return EvaluationSets(lambda dataset, source: INSTRUCTIONS)


def check(root: Path, only: list[str] | None = None):
    return check_submissions(root, sets(), only=only)


def error_lines(root: Path) -> list[str]:
    _, problems = check(root)
    return [p.line() for p in errors(problems)]


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    write_submission(tmp_path, "alpha", INSTRUCTIONS, rng_seed=1)
    return tmp_path


def test_a_complete_submission_passes_and_claims_match(root: Path):
    entries, problems = check(root)
    assert problems == []
    (entry,) = entries
    claims = read_json(root / "alpha" / "metadata.json")["claimed"]
    recomputed = entry.recomputed()
    assert recomputed["win_rate"] == pytest.approx(claims["win_rate"], abs=0.006)
    assert recomputed["ranking_accuracy"] == pytest.approx(claims["ranking_accuracy"], abs=0.006)
    assert recomputed["leakage"] == pytest.approx(claims["leakage"], abs=0.006)


def test_alignment_is_by_text_not_position(root: Path):
    def shuffle(rows):
        rows.reverse()
        rows[0]["instruction"] = "  " + rows[0]["instruction"] + "\r\n"  # outer whitespace is forgiven

    edit_json(root / "alpha" / "outputs.json", shuffle)
    edit_json(root / "alpha" / "annotations.json", lambda rows: rows.reverse())
    # Leakage records point into outputs.json by index: rewrite them for the new order.
    rows = [json.loads(line) for line in (root / "alpha" / "leakage.jsonl").read_text().splitlines()]
    for row in rows:
        row["index"] = len(rows) - 1 - row["index"]
    write_jsonl(root / "alpha" / "leakage.jsonl", rows)
    assert error_lines(root) == []


def test_an_instruction_outside_the_evaluation_set_is_named(root: Path):
    edit_json(root / "alpha" / "outputs.json", lambda rows: rows[4].update(instruction="Something else entirely"))
    lines = error_lines(root)
    assert any(
        "alpha/outputs.json" in line and "row 5" in line and "not in the evaluation set" in line for line in lines
    ), lines
    assert any("have no output" in line for line in lines)


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda rows: rows.pop(), "1 of 60 evaluation instructions have no output"),
        (lambda rows: rows.append(dict(rows[0])), "appears more than once"),
        (lambda rows: rows[2].update(output=None), "never null"),
        (lambda rows: [r.update(output="  ") for r in rows], "every output is empty"),
    ],
)
def test_output_completeness_rules(root: Path, change, expected: str):
    edit_json(root / "alpha" / "outputs.json", change)
    lines = error_lines(root)
    assert any(line.startswith("error: alpha/outputs.json") and expected in line for line in lines), lines


def test_some_empty_outputs_are_valid_answers_and_counted(root: Path):
    def empty_two(rows):
        rows[0]["output"] = rows[1]["output"] = ""

    edit_json(root / "alpha" / "outputs.json", empty_two)
    edit_json(root / "alpha" / "annotations.json", lambda rows: [r.update(output_2="") for r in rows[:2]])
    entries, problems = check(root)
    assert errors(problems) == []
    assert entries[0].n_empty_outputs == 2


def test_annotations_must_judge_the_submitted_outputs(root: Path):
    edit_json(root / "alpha" / "annotations.json", lambda rows: rows[3].update(output_2="a nicer answer"))
    lines = error_lines(root)
    assert any(
        "alpha/annotations.json" in line and "row 4: output_2 is not the submitted output" in line for line in lines
    ), lines


def test_every_output_needs_an_annotation_against_the_named_reference(root: Path):
    edit_json(root / "alpha" / "annotations.json", lambda rows: rows.pop(0))
    assert any("1 outputs have no annotation" in line for line in error_lines(root))
    edit_json(root / "alpha" / "annotations.json", lambda rows: rows[0].update(generator_1="gpt-somebody"))
    assert any("generator_1 differs from metadata reference" in line for line in error_lines(root))


def test_failed_judgements_are_dropped_and_the_claim_must_follow(root: Path):
    annotations = read_json(root / "alpha" / "annotations.json")
    kept = [a["preference"] - 1 for a in annotations[2:]]
    annotations[0]["preference"] = None
    annotations[1]["preference"] = 3.0  # out of range
    write_json(root / "alpha" / "annotations.json", annotations)
    _, problems = check(root)
    assert any(p.severity == "warning" and "2 preferences are NaN or outside [1, 2]" in p.message for p in problems)
    expected = float(np.mean(kept) * 100)
    claimed = read_json(root / "alpha" / "metadata.json")["claimed"]["win_rate"]
    if abs(claimed - expected) > 0.05:  # the claim was made on all rows: it must now be reported
        assert any(f"set claimed.win_rate to {expected:.2f}" in p.fix for p in errors(problems))
    edit_json(root / "alpha" / "metadata.json", lambda m: m["claimed"].update(win_rate=round(expected, 2)))
    entries, problems = check(root)
    assert errors(problems) == []
    assert entries[0].recomputed()["win_rate"] == pytest.approx(expected)
    assert entries[0].n_dropped_preferences == 2


@pytest.mark.parametrize("field, value", [("win_rate", 1.0), ("ranking_accuracy", 99.0)])
def test_claims_are_recomputed(root: Path, field: str, value: float):
    edit_json(root / "alpha" / "metadata.json", lambda m: m["claimed"].update({field: value}))
    lines = error_lines(root)
    assert any(
        f"claimed {field} {value} but the records give" in line and "alpha/metadata.json" in line for line in lines
    ), lines


def test_leakage_claims_and_records(root: Path):
    edit_json(root / "alpha" / "metadata.json", lambda m: m["claimed"]["leakage"].update(gsm=50.0))
    assert any("claimed leakage.gsm 50.0" in line for line in error_lines(root))
    edit_json(root / "alpha" / "metadata.json", lambda m: m["claimed"]["leakage"].pop("gsm"))
    rows = [json.loads(line) for line in (root / "alpha" / "leakage.jsonl").read_text().splitlines()]
    rows[-1]["index"] = 999
    write_jsonl(root / "alpha" / "leakage.jsonl", rows)
    lines = error_lines(root)
    assert any("index is past the end of outputs.json" in line for line in lines), lines
    assert any("1 outputs have no leakage record" in line for line in lines), lines


def test_ranking_rules(root: Path):
    path = root / "alpha" / "ranking.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    without_true = [r for r in rows if not (r["instruction_id"] == 0 and r["response_id"] == 0)]
    write_jsonl(path, without_true)
    assert any("lack their true pair" in line for line in error_lines(root))
    rows[0]["logprob"] = math.nan
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))  # json writes NaN, which we refuse
    assert any("'logprob' is missing or not a finite number" in line for line in error_lines(root))


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda m: m.update(chat_fromat="tulu"), "chat_fromat: unknown field"),
        (lambda m: m["model"].update(revision="main"), "model.revision"),
        (lambda m: m.update(trust_remote_code=True), "trust_remote_code"),
        (lambda m: m.update(adaptation="single-task"), "adaptation"),
        (lambda m: m.update(name="beta"), "differs from the folder name"),
        (lambda m: m.pop("license"), "license: required field is missing"),
        (lambda m: m.pop("judge"), "'judge' is not set"),
    ],
)
def test_metadata_schema(root: Path, change, expected: str):
    edit_json(root / "alpha" / "metadata.json", change)
    lines = error_lines(root)
    assert any("alpha/metadata.json" in line and expected in line for line in lines), lines


def test_links_and_pickles_and_remote_code_are_refused(root: Path, tmp_path: Path):
    folder = root / "alpha"
    outside = tmp_path.parent / "secret.txt"
    outside.write_text("not yours")
    os.symlink(outside, folder / "README.md")
    (folder / "weights").mkdir()
    (folder / "weights" / "pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    (folder / "weights" / "modeling_custom.py").write_text("import os\n")
    (folder / "weights" / "config.json").write_text(json.dumps({"auto_map": {"AutoModel": "modeling_custom.X"}}))
    (folder / "weights" / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    (folder / "notes.txt").write_text("hi")
    lines = error_lines(root)
    expected = {
        "alpha/README.md: is a link": "link",
        "alpha/weights/pytorch_model.bin: is not safetensors": "pickle",
        "alpha/weights/modeling_custom.py: is code": "code",
        "alpha/weights/config.json: asks for remote code": "remote code",
        "alpha/notes.txt: is not a file a submission may hold": "stray file",
    }
    for fragment in expected:
        assert any(fragment in line for line in lines), (fragment, lines)
    assert not any("model.safetensors" in line for line in lines)


def test_unsafe_folder_names_and_size_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    write_submission(tmp_path, "Bad Name", INSTRUCTIONS)
    assert any(
        "'Bad Name'" in line or "Bad Name: is not a safe submission name" in line for line in error_lines(tmp_path)
    )
    (tmp_path / "Bad Name").rename(tmp_path / "good")
    edit_json(tmp_path / "good" / "metadata.json", lambda m: m.update(name="good"))
    monkeypatch.setattr(safety, "MAX_RECORD_BYTES", 1000)
    assert any("good/outputs.json: is" in line and "over the" in line for line in error_lines(tmp_path))


def test_rules_across_entries(root: Path):
    shutil.copytree(root / "alpha", root / "alpha-again")  # a copy under another name
    edit_json(root / "alpha-again" / "metadata.json", lambda m: m.update(name="alpha-again", seed=7))
    write_submission(root, "beta", INSTRUCTIONS, rng_seed=2, system="alpha", seed=0)  # alpha's system and seed
    write_submission(root, "gamma", INSTRUCTIONS, rng_seed=3, system="alpha", seed=1, adaptation="instruction")
    lines = error_lines(root)
    assert any("alpha-again/metadata.json" in line and "identical to 'alpha'" in line for line in lines), lines
    assert any("beta/metadata.json" in line and "seed 0 is also submitted as 'alpha'" in line for line in lines), lines
    assert any("gamma/metadata.json" in line and "differs in adaptation" in line for line in lines), lines


def test_only_reports_the_named_folders(root: Path):
    write_submission(root, "broken", INSTRUCTIONS, rng_seed=5)
    edit_json(root / "broken" / "metadata.json", lambda m: m.update(seed=-1))
    assert error_lines(root)
    entries, problems = check(root, only=["alpha"])
    assert errors(problems) == [] and [e.name for e in entries] == ["alpha"]
    _, problems = check(root, only=["nope"])
    assert any("no such submission folder" in p.message for p in problems)


def test_check_writes_nothing(root: Path):
    edit_json(root / "alpha" / "metadata.json", lambda m: m["claimed"].update(win_rate=3.0))
    before = sorted((p, p.stat().st_mtime_ns) for p in root.rglob("*"))
    assert error_lines(root)
    assert sorted((p, p.stat().st_mtime_ns) for p in root.rglob("*")) == before


def length_gamed(instructions: list[str], seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Outputs that win exactly when they are much longer than the reference (and mostly are)."""
    rng = np.random.default_rng(seed)
    outputs, annotations = [], []
    for text in instructions:
        reference = "r" * int(rng.integers(200, 400))
        longer = rng.random() < 0.85
        answer = "m" * (
            len(reference) + int(rng.integers(200, 600))
            if longer
            else max(5, len(reference) - int(rng.integers(100, 190)))
        )
        won = longer if rng.random() < 0.95 else not longer
        outputs.append({"instruction": text, "output": answer, "generator": "gamed"})
        annotations.append(
            {
                "instruction": text,
                "output_1": reference,
                "output_2": answer,
                "generator_1": "reference-instruct",
                "preference": 2.0 if won else 1.0,
            }
        )
    return outputs, annotations


def test_a_large_gap_between_lc_and_raw_win_rate_is_flagged(tmp_path: Path):
    instructions = synthetic_instructions(200)
    folder = write_submission(tmp_path, "gamed", instructions, with_claims=False)
    outputs, annotations = length_gamed(instructions)
    write_json(folder / "outputs.json", outputs)
    write_json(folder / "annotations.json", annotations)
    (folder / "leakage.jsonl").unlink()
    entries, problems = check_submissions(tmp_path, EvaluationSets(lambda d, s: instructions))
    assert errors(problems) == []
    (entry,) = entries
    raw, lc = entry.recomputed()["win_rate"], entry.recomputed()["lc_win_rate"]
    assert raw > 70 and lc is not None and raw - lc > 20
    (warning,) = problems
    assert warning.severity == "warning" and warning.file == "gamed/metadata.json"
    assert "suspicious gap" in warning.message and entry.flags
    # The board carries the flag into every view.
    from implicit_if.leaderboard.board import BootstrapSettings, build_board_data
    from implicit_if.leaderboard.render_markdown import render_markdown

    data = build_board_data(entries, BootstrapSettings(n_resamples=500))
    assert data["boards"][0]["systems"][0]["flags"] == entry.flags
    markdown = render_markdown(data)
    assert "| gamed ⚑" in markdown and f"- gamed: {entry.flags[0]}" in markdown


def test_fast_and_careful_ranking_readers_agree(root: Path, monkeypatch: pytest.MonkeyPatch):
    from implicit_if.leaderboard import metrics, records

    path = root / "alpha" / "ranking.jsonl"
    fast, _ = records.read_ranking(path)
    monkeypatch.setattr(records, "_ranking_columns_fast", lambda path: None)
    careful, _ = records.read_ranking(path)
    assert fast is not None and careful is not None
    assert metrics.ranking_values(fast)[0] == metrics.ranking_values(careful)[0]
    assert len(metrics.ranking_values(fast)[0]) == len(INSTRUCTIONS)


def test_ranking_matches_the_ranking_module_on_its_own_records(root: Path):
    """Records as `implicit-if rank` writes them (roles, conditional pairs, dataset keys, ties)."""
    from implicit_if.leaderboard import metrics, records
    from implicit_if.ranking import build_records, plan_comparisons, scoring_jobs, summarize

    jobs = scoring_jobs(plan_comparisons(40, k=5, seed=3), conditional=True)
    rng = np.random.default_rng(0)
    scores = [(float(rng.choice([-20.0, -30.0, -40.0])), int(rng.choice([5, 10]))) for _ in jobs]  # many ties
    rows = build_records(jobs, scores, [f"alpaca-{i}" for i in range(40)])
    assert any("conditional" in r["roles"] and "distractor" not in r["roles"] for r in rows)
    write_jsonl(root / "alpha" / "ranking.jsonl", rows)
    expected = summarize(rows)["response_ranking"]["estimate"] * 100
    columns, issues = records.read_ranking(root / "alpha" / "ranking.jsonl")
    values, issues = metrics.ranking_values(columns)
    assert issues == [] and sorted(values) == sorted(f"alpaca-{i}" for i in range(40))
    assert float(np.mean(list(values.values())) * 100) == pytest.approx(expected)
    edit_json(root / "alpha" / "metadata.json", lambda m: m["claimed"].update(ranking_accuracy=round(expected, 2)))
    edit_json(
        root / "alpha" / "metadata.json", lambda m: m.update(ranking_plan={"n_pairs": 40, "distractors": 5, "seed": 3})
    )
    entries, problems = check(root)
    assert errors(problems) == [] and entries[0].recomputed()["ranking_accuracy"] == pytest.approx(expected)


def test_leakage_records_must_agree_with_the_detectors(root: Path):
    path = root / "alpha" / "leakage.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    leaky = next(i for i, row in enumerate(rows) if any(v for k, v in row.items() if k != "index"))
    rows[leaky] = {key: (False if key != "index" else value) for key, value in rows[leaky].items()}  # hide it
    write_jsonl(path, rows)
    edit_json(root / "alpha" / "metadata.json", lambda m: m["claimed"].pop("leakage"))
    lines = error_lines(root)
    assert any(f"alpha/leakage.jsonl: row {leaky + 1}: the detectors find otherwise" in line for line in lines), lines


def _ranking_rows(root: Path) -> list[dict]:
    return [json.loads(line) for line in (root / "alpha" / "ranking.jsonl").read_text().splitlines()]


def test_cherry_picked_ranking_is_refused(root: Path):
    """Keeping only the instructions whose true response won would raise the accuracy: refused."""
    rows = _ranking_rows(root)
    true_score = {
        r["instruction_id"]: r["logprob"] / r["n_tokens"] for r in rows if r["instruction_id"] == r["response_id"]
    }
    lost = {
        r["instruction_id"]
        for r in rows
        if r["instruction_id"] != r["response_id"] and r["logprob"] / r["n_tokens"] >= true_score[r["instruction_id"]]
    }
    write_jsonl(root / "alpha" / "ranking.jsonl", [r for r in rows if r["instruction_id"] not in lost])
    edit_json(root / "alpha" / "metadata.json", lambda m: m["claimed"].pop("ranking_accuracy"))
    lines = error_lines(root)
    assert any("alpha/ranking.jsonl" in line and "planned comparisons are missing" in line for line in lines), lines


def test_comparisons_outside_the_plan_or_another_seed_are_refused(root: Path):
    rows = _ranking_rows(root)
    extra = {**rows[1], "response_id": (rows[1]["response_id"] + 7) % 60, "response_key": "alpaca-x"}
    write_jsonl(root / "alpha" / "ranking.jsonl", rows + [extra])
    assert any("not in the plan" in line for line in error_lines(root))
    write_jsonl(root / "alpha" / "ranking.jsonl", rows)
    edit_json(root / "alpha" / "metadata.json", lambda m: m.update(ranking_plan={"seed": 1}))
    assert any("not in the plan" in line and "seed 1" in line for line in error_lines(root))


def test_string_ids_cannot_be_checked_against_the_plan_and_are_refused(root: Path):
    rows = [
        {**r, "instruction_id": f"x{r['instruction_id']}", "response_id": f"x{r['response_id']}"}
        for r in _ranking_rows(root)
    ]
    write_jsonl(root / "alpha" / "ranking.jsonl", rows)
    assert any("integer positions" in line for line in error_lines(root))
