"""Every command that writes a file refuses a bad output path in one line, before doing any work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from implicit_if.cli import app


@pytest.fixture()
def inputs(tmp_path: Path) -> dict[str, Path]:
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps([{"instruction": "Say hi.", "output": "Hi!", "generator": "m", "dataset": "d"}]))
    annotations = tmp_path / "annotations.json"
    annotations.write_text(
        json.dumps([{"instruction": "Say hi.", "output_1": "Hello", "output_2": "Hi!", "preference": 2}])
    )
    return {"outputs": outputs, "annotations": annotations}


def commands(inputs: dict[str, Path], bad: Path) -> dict[str, list[str]]:
    # the model names do not exist: the path must be refused before anything is loaded
    return {
        "generate": ["generate", "--model", "no-such-model", "--dataset", "offline_instructions", "--output", str(bad)],
        "rank": ["rank", "--model", "no-such-model", "--dataset", "alpaca", "--output", str(bad)],
        "winrate": ["winrate", str(inputs["annotations"]), "--output", str(bad)],
        "leak": ["leak", str(inputs["outputs"]), "--records", str(bad)],
        "judge": [
            "judge",
            "--outputs",
            str(inputs["outputs"]),
            "--reference",
            str(inputs["outputs"]),
            "--output",
            str(bad),
        ],
    }


@pytest.mark.parametrize("command", ["generate", "rank", "winrate", "leak", "judge"])
@pytest.mark.parametrize("kind", ["directory", "missing folder"])
def test_a_bad_output_path_is_refused_first_in_one_line(
    command: str, kind: str, inputs: dict[str, Path], tmp_path: Path
) -> None:
    bad = tmp_path / "a-folder" if kind == "directory" else tmp_path / "missing" / "out.json"
    if kind == "directory":
        bad.mkdir()
    result = CliRunner().invoke(app, commands(inputs, bad)[command])
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert str(bad) in result.output and ("directory" in result.output or "does not exist" in result.output)


def test_bad_inputs_are_one_line_errors(tmp_path: Path, inputs: dict[str, Path]) -> None:
    (tmp_path / "latin.json").write_bytes(b"\xff\xfe not utf-8")
    (tmp_path / "object.json").write_text('{"a": 1}')
    (tmp_path / "spec.yaml").write_text(": : [")
    cases = [
        [
            "judge",
            "--outputs",
            str(tmp_path / "latin.json"),
            "--reference",
            str(inputs["outputs"]),
            "--output",
            str(tmp_path / "o.json"),
        ],
        [
            "judge",
            "--outputs",
            str(inputs["outputs"]),
            "--reference",
            str(inputs["outputs"]),
            "--judge",
            str(tmp_path / "spec.yaml"),
            "--output",
            str(tmp_path / "o.json"),
        ],
        ["winrate", str(inputs["annotations"]), "--difficulty", str(tmp_path / "missing.csv")],
        ["submit", "--outputs", str(tmp_path / "object.json"), "--name", "x", "--submissions", str(tmp_path / "subs")],
    ]
    for case in cases:
        result = CliRunner().invoke(app, case)
        assert result.exit_code != 0, case
        assert "Traceback" not in result.output and result.output.startswith("error:"), (case, result.output)
        assert not (tmp_path / "o.json").exists()
