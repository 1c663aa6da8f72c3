"""`implicit-if leak` on AlpacaEval model_outputs: records, JSON summary, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from implicit_if.cli import app
from implicit_if.leakage import DETECTORS

runner = CliRunner()

OUTPUTS = [
    {
        "instruction": "How many legs do 3 spiders have?",
        "output": "Each spider has 8 legs.\n3 * 8 = <<3*8=24>>24\n#### 24",
        "generator": "gsm-tuned",
    },
    {
        "instruction": "Describe autumn.",
        "output": "Leaves fall,\nthe air turns cold,\nthe days grow short,\nthe year grows old.",
        "generator": "gsm-tuned",
    },
    {
        "instruction": "What is the capital of Italy?",
        "output": "Rome is the capital of Italy.",
        "generator": "gsm-tuned",
    },
    {"instruction": "Give me a tip.", "output": "#### Tip\nDrink water regularly.", "generator": "gsm-tuned"},
]


def _write(path: Path, payload) -> Path:
    path.write_text(json.dumps(payload), encoding="utf-8")
    return path


def test_records_and_json_summary(tmp_path: Path) -> None:
    outputs = _write(tmp_path / "outputs.json", OUTPUTS)
    records_path = tmp_path / "leak.jsonl"
    result = runner.invoke(app, ["leak", str(outputs), "--records", str(records_path), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert set(summary) == set(DETECTORS)
    assert summary["gsm"]["count"] == 1 and summary["gsm"]["n"] == 4
    assert summary["gsm"]["rate"] == 0.25
    assert 0 < summary["gsm"]["ci_low"] < 0.25 < summary["gsm"]["ci_high"] < 1
    assert summary["poem"]["count"] == 1 and summary["code"]["count"] == 0
    records = [json.loads(line) for line in records_path.read_text().splitlines()]
    assert [r["index"] for r in records] == [0, 1, 2, 3]
    assert [r["gsm"] for r in records] == [True, False, False, False]
    assert records[1]["poem"] is True and set(records[0]) == {"index", *DETECTORS}


def test_table_output_and_detector_choice(tmp_path: Path) -> None:
    outputs = _write(tmp_path / "outputs.json", OUTPUTS)
    result = runner.invoke(app, ["leak", str(outputs), "--detectors", "gsm,poem"])
    assert result.exit_code == 0, result.output
    assert "gsm" in result.output and "poem" in result.output and "chess" not in result.output
    assert "1/4" in result.output


def test_bad_inputs_fail_clearly_and_write_nothing(tmp_path: Path) -> None:
    records_path = tmp_path / "leak.jsonl"
    cases = [
        (tmp_path / "missing.json", "does not exist"),
        (_write(tmp_path / "dict.json", {"output": "x"}), "not a list"),
        (_write(tmp_path / "nooutput.json", [{"output": "ok"}, {"instruction": "x"}]), 'item 1 has no string "output"'),
        (_write(tmp_path / "empty.json", []), "holds no outputs"),
    ]
    broken = tmp_path / "broken.json"
    broken.write_text("[{", encoding="utf-8")
    cases.append((broken, "not valid JSON"))
    for path, message in cases:
        result = runner.invoke(app, ["leak", str(path), "--records", str(records_path)])
        assert result.exit_code == 2, (path, result.output)
        assert message in result.output, (path, result.output)
        assert not records_path.exists()
    ok = _write(tmp_path / "ok.json", OUTPUTS)
    result = runner.invoke(app, ["leak", str(ok), "--detectors", "gsm,haiku"])
    assert result.exit_code == 2 and "unknown detector(s) haiku" in result.output
