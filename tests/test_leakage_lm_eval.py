"""`implicit_if_leak` through the real lm_eval CLI: greedy answers, then the same detectors and
rates as `implicit-if leak` on those answers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from implicit_if.cli import app
from implicit_if.leakage import DETECTORS

pytestmark = pytest.mark.slow


def test_lm_eval_leak_task_matches_the_cli(
    smollm2_dir: str, tmp_path: Path, offline_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMPLICIT_IF_CACHE", str(tmp_path / "cache"))  # dataset caches stay in the test
    out = tmp_path / "lm_eval"
    command = [
        str(Path(sys.executable).with_name("lm_eval")),
        "--model",
        "hf",
        "--model_args",
        f"pretrained={smollm2_dir},dtype=float32",
        "--tasks",
        "implicit_if_leak",
        "--metadata",
        json.dumps({"n_instructions": 4, "offline": True}),
        "--gen_kwargs",
        "max_gen_toks=48",
        "--device",
        "cpu",
        "--batch_size",
        "4",
        "--output_path",
        str(out),
        "--log_samples",
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ), timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(next(out.rglob("results_*.json")).read_text())["results"]["implicit_if_leak"]
    samples = sorted(
        (json.loads(line) for line in next(out.rglob("samples_implicit_if_leak_*.jsonl")).read_text().splitlines()),
        key=lambda s: s["doc_id"],
    )
    assert len(samples) == 4
    assert samples[0]["doc"]["prompt"].startswith("<|user|>\n") and samples[0]["doc"]["prompt"].endswith(
        "<|assistant|>\n"
    )

    outputs = [
        {"instruction": s["doc"]["instruction"], "output": s["resps"][0][0], "generator": "smollm2"} for s in samples
    ]
    assert all(o["output"].strip() for o in outputs), "greedy decoding produced an empty answer"
    model_outputs = tmp_path / "outputs.json"
    model_outputs.write_text(json.dumps(outputs), encoding="utf-8")
    records_path = tmp_path / "leak.jsonl"
    cli = CliRunner().invoke(app, ["leak", str(model_outputs), "--records", str(records_path), "--json"])
    assert cli.exit_code == 0, cli.output
    summary = json.loads(cli.output)
    records = [json.loads(line) for line in records_path.read_text().splitlines()]
    for name in DETECTORS:
        assert results[f"{name},none"] == pytest.approx(summary[name]["rate"]), name
        assert [bool(s[name]) for s in samples] == [r[name] for r in records], name
