"""`implicit-if submit` from the CLI's output files: a checked folder, or nothing at all."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from leaderboard_fixtures import edit_json, isolated_cache, read_json, write_submission  # noqa: F401 (fixture)
from typer.testing import CliRunner

from implicit_if.cli import app

runner = CliRunner()


@pytest.fixture()
def run_files(tmp_path: Path, isolated_cache: Path) -> Path:  # noqa: F811
    """outputs.json, annotations.json and ranking.jsonl as the harness writes them, on the offline set."""
    from implicit_if.data import load_pairs

    instructions = [p["instruction"] for p in load_pairs("offline_instructions", offline=True)]
    made = write_submission(tmp_path / "made", "run", instructions, rng_seed=5)
    files = tmp_path / "run"
    files.mkdir()
    for name in ("outputs.json", "annotations.json", "ranking.jsonl"):
        shutil.copy(made / name, files / name)
    return files


def submit(files: Path, submissions: Path, *extra: str):
    return runner.invoke(
        app,
        [
            "submit",
            "--name",
            "smollm2-response-seed0",
            "--outputs",
            str(files / "outputs.json"),
            "--annotations",
            str(files / "annotations.json"),
            "--ranking",
            str(files / "ranking.jsonl"),
            "--model-id",
            "smollm2-135m-instruct",
            "--base-model",
            "HuggingFaceTB/SmolLM2-135M",
            "--adaptation",
            "response",
            "--max-new-tokens",
            "256",
            "--license",
            "apache-2.0",
            "--contact",
            "someone@example.org",
            "--submissions",
            str(submissions),
            *extra,
        ],
    )


def test_submit_writes_a_folder_that_passes_check(run_files: Path, tmp_path: Path):
    submissions = tmp_path / "submissions"
    result = submit(run_files, submissions)
    assert result.exit_code == 0, result.output
    folder = submissions / "smollm2-response-seed0"
    assert sorted(p.name for p in folder.iterdir()) == [
        "annotations.json",
        "leakage.jsonl",
        "metadata.json",
        "outputs.json",
        "ranking.jsonl",
    ]
    meta = read_json(folder / "metadata.json")
    from implicit_if.models import EMBEDDED_MODELS

    assert meta["model"] == {
        "id": "smollm2-135m-instruct",
        "base_model": "HuggingFaceTB/SmolLM2-135M",
        "revision": "sha256:" + EMBEDDED_MODELS["smollm2-135m-instruct"].sha256,
    }
    assert meta["evaluation_set"] == {"dataset": "offline_instructions", "source": "fixture"}  # matched by text
    assert meta["reference"] == {"generator": "reference-instruct"}  # from the annotations
    assert meta["judge"]["name"] == "test judge"  # as the annotations name it; no spec of that name exists
    claims = meta["claimed"]
    annotations = read_json(run_files / "annotations.json")
    expected = sum(a["preference"] - 1 for a in annotations) / len(annotations) * 100
    assert claims["win_rate"] == pytest.approx(expected, abs=1e-4)
    assert set(claims["leakage"]) >= {"gsm", "code", "chess"} and "lc_win_rate" in claims
    check = runner.invoke(app, ["leaderboard", "check", "--submissions", str(submissions)])
    assert check.exit_code == 0, check.output
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".submit-")] == []  # staging cleaned up


def test_a_failed_submit_writes_nothing(run_files: Path, tmp_path: Path):
    submissions = tmp_path / "submissions"
    edit_json(run_files / "annotations.json", lambda rows: rows[0].update(output_2="not what was generated"))
    result = submit(run_files, submissions)
    assert result.exit_code == 1
    assert "annotations.json: row 1: output_2 is not the submitted output" in result.output
    assert "nothing was written" in result.output
    assert not (submissions / "smollm2-response-seed0").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".submit-")] == []


def test_outputs_must_come_from_a_known_evaluation_set(run_files: Path, tmp_path: Path):
    edit_json(run_files / "outputs.json", lambda rows: rows[0].update(instruction="An instruction of my own"))
    result = submit(run_files, tmp_path / "submissions")
    assert result.exit_code == 1 and "the outputs match no evaluation set" in result.output


def test_existing_folders_need_force_and_seeds_must_not_clash(run_files: Path, tmp_path: Path):
    submissions = tmp_path / "submissions"
    assert submit(run_files, submissions).exit_code == 0
    again = submit(run_files, submissions)
    assert again.exit_code == 1 and "already exists" in again.output
    assert submit(run_files, submissions, "--force").exit_code == 0
    # Another run claiming the same system and seed is refused.
    other = runner.invoke(
        app,
        [
            "submit",
            "--name",
            "second-try",
            "--outputs",
            str(run_files / "outputs.json"),
            "--ranking",
            str(run_files / "ranking.jsonl"),
            "--model-id",
            "smollm2-135m-instruct",
            "--base-model",
            "x",
            "--adaptation",
            "response",
            "--system",
            "smollm2-response-seed0",
            "--max-new-tokens",
            "256",
            "--license",
            "mit",
            "--contact",
            "a@b.c",
            "--submissions",
            str(submissions),
        ],
    )
    assert other.exit_code == 1 and "seed 0 is also submitted as 'smollm2-response-seed0'" in other.output
    assert not (submissions / "second-try").exists()


def test_local_model_folders_are_not_public_names(run_files: Path, tmp_path: Path):
    weights = tmp_path / "my-model"
    weights.mkdir()
    (weights / "model.safetensors").write_bytes(b"not really weights")
    result = submit(run_files, tmp_path / "submissions", "--model-id", str(weights))
    assert result.exit_code == 1
    assert "is a local folder" in result.output and "--revision sha256:" in result.output


def test_metadata_file_and_missing_fields(run_files: Path, tmp_path: Path):
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps({"license": "mit", "notes": "from a file"}))
    result = runner.invoke(
        app,
        [
            "submit",
            "--name",
            "bare",
            "--outputs",
            str(run_files / "outputs.json"),
            "--metadata",
            str(meta),
            "--submissions",
            str(tmp_path / "s"),
        ],
    )
    assert result.exit_code == 1
    for missing in ("model.id: required", "adaptation: required", "contact: required", "decoding.max_new_tokens"):
        assert missing in result.output, (missing, result.output)


def test_a_broken_record_file_is_refused_in_one_line_naming_file_line_and_fix(run_files: Path, tmp_path: Path):
    """submit reads the run's files through the one record reader, so its errors are the reader's."""
    lines = (run_files / "ranking.jsonl").read_text().splitlines()
    (run_files / "ranking.jsonl").write_text(
        "\n".join([lines[0], '{"instruction_id": 1, "response_id": 1}', *lines[2:]])
    )
    result = submit(run_files, tmp_path / "submissions")
    assert result.exit_code == 1
    assert f"{run_files / 'ranking.jsonl'}:2: field 'logprob' is missing" in result.output
    assert "fix: one JSON object per line" in result.output
    assert not (tmp_path / "submissions").exists() or not any((tmp_path / "submissions").iterdir())
