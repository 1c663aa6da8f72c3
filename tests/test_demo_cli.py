"""`implicit-if demo`: every entry's records, rules entries without a ranking they did not measure,
and a rerun that reuses each stage instead of recomputing it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from implicit_if.cli import app
from implicit_if.demo import DEFAULT_ENTRIES, RULES_ENTRIES


@pytest.mark.slow
def test_demo_with_rules_on_a_slice(tmp_path: Path, gemma_dir: str, smollm2_dir: str, offline_env: None) -> None:
    out = tmp_path / "demo"
    args = [
        "demo",
        "--out",
        str(out),
        "--limit",
        "3",
        "--max-new-tokens",
        "6",
        "--with-rules",
        "--generate-batch-size",
        "2",
        "--batch-size",
        "4",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "no leaderboard with --limit" in result.output
    rows = {
        line.split()[0]: line
        for line in result.output.splitlines()
        if line.startswith("gemma") or line.startswith("smollm2")
    }
    assert set(rows) == {e.name for e in DEFAULT_ENTRIES + RULES_ENTRIES}

    for entry in DEFAULT_ENTRIES + RULES_ENTRIES:
        folder = out / entry.name
        outputs = json.loads((folder / "outputs.json").read_text())
        assert [o["generator"] for o in outputs] == [entry.name] * 3
        assert len(json.loads((folder / "annotations.json").read_text())) == 3
        assert len((folder / "leakage.jsonl").read_text().splitlines()) == 3
        # Rules change decoding; the fast scorer scores the base model, so no ranking is claimed.
        assert (folder / "ranking.jsonl").exists() == (entry.rules == "none")
        if entry.rules == "none":  # the study's view only: the boards do not use the conditional one
            roles = {
                role
                for line in (folder / "ranking.jsonl").read_text().splitlines()
                for role in json.loads(line)["roles"]
            }
            assert roles and "conditional" not in roles
        ranking_column = rows[entry.name].split("]")[2] if entry.rules == "none" else rows[entry.name]
        assert ("-" in ranking_column.split()) == (entry.rules != "none")

    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.json*") if p.suffix != ".inputs"}
    stamps = {p: t for p, t in stamps.items() if p.name != "leakage.jsonl"}  # leakage is recomputed: it is cheap
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
