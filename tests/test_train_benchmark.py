"""The throughput benchmark runs end to end at tiny scale and reports both trainers on the same tokens."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_throughput_benchmark_runs_at_tiny_scale(tmp_path: Path, repo_root: Path, smollm2_dir: str) -> None:
    out = tmp_path / "throughput.md"
    command = [
        sys.executable,
        str(repo_root / "benchmarks" / "train_throughput.py"),
        "--size",
        "tiny",
        "--max-length",
        "64",
        "--batch-size",
        "4",
        "--per-device",
        "4",
        "--warmup-steps",
        "0",
        "--timed-steps",
        "1",
        "--repeats",
        "1",
        "--out",
        str(out),
    ]
    command += ["--tokenizer", smollm2_dir]  # resolved in the real model cache; dataset caches go to tmp_path
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "IMPLICIT_IF_OFFLINE": "1",
        "IMPLICIT_IF_CACHE": str(tmp_path / "cache"),
    }
    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert finished.returncode == 0, finished.stderr[-3000:]
    report = json.loads(out.with_suffix(".json").read_text())
    ours, baseline = report["rows"]
    assert ours["trainer"].startswith("implicit-if") and baseline["trainer"].startswith("transformers Trainer")
    # one timed step of 4 examples each: both trainers processed real tokens, and the ratio is theirs
    assert ours["runs"][0]["tokens"] > 0 and baseline["runs"][0]["tokens"] > 0
    assert report["ratio_tokens_per_s"] == pytest.approx(ours["tokens_per_s"] / baseline["tokens_per_s"])
    assert report["peak_tflops"] is None and ours["mfu"] is None  # no MFU claimed without a known peak
    assert "Ratio (packed / padded)" in out.read_text()
