"""Hostile submission files: the checker answers each with a problem line, never a crash or a hang."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from leaderboard_fixtures import (
    isolated_cache,  # noqa: F401 (fixture)
    synthetic_instructions,
    write_submission,
)

from implicit_if.leaderboard.check import check_submissions
from implicit_if.leaderboard.evaluation_sets import EvaluationSets

INSTRUCTIONS = synthetic_instructions(30)
DEEP = 200_000


@pytest.fixture(autouse=True)
def _cache(isolated_cache):  # noqa: F811
    return isolated_cache


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    write_submission(tmp_path / "subs", "alpha", INSTRUCTIONS, rng_seed=1)
    return tmp_path / "subs"


def problems_of(root: Path) -> list[str]:
    _, problems = check_submissions(root, EvaluationSets(lambda d, s: INSTRUCTIONS))
    return [f"{p.file}: {p.message}" for p in problems if p.severity == "error"]


def test_a_fifo_is_refused_without_being_opened(root: Path) -> None:
    (root / "alpha" / "weights").mkdir()
    os.mkfifo(root / "alpha" / "weights" / "model.safetensors")
    assert any("not a regular file" in line for line in problems_of(root))


def test_a_hard_link_is_refused(root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.md"
    outside.write_text("# not yours")
    os.link(outside, root / "alpha" / "README.md")
    assert any("alpha/README.md" in line and "hard links" in line for line in problems_of(root))


def _safetensors(header: bytes, data: bytes = b"", length: int | None = None) -> bytes:
    """The format: 8-byte little-endian header length, the JSON header, then the tensors' bytes."""
    return struct.pack("<Q", len(header) if length is None else length) + header + data


def _header(**tensor: object) -> bytes:
    return json.dumps({"w": {"dtype": "F32", "shape": [9], "data_offsets": [0, 36], **tensor}}).encode()


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"\x80\x04\x95pickle-bytes-here-" * 4, id="pickle"),
        pytest.param(b"\x10\x00\x00", id="shorter-than-its-length-field"),
        pytest.param(_safetensors(_header(), bytes(36))[:-5], id="truncated-data"),
        pytest.param(_safetensors(_header(), bytes(36), length=10_000), id="header-length-beyond-file"),
        pytest.param(_safetensors(_header(), bytes(36), length=2**63), id="header-length-huge"),
        pytest.param(_safetensors(b"not json at all!"), id="header-not-json"),
        pytest.param(_safetensors(_header()[:48], length=48), id="header-json-cut-short"),
        pytest.param(_safetensors(b"[1, 2]"), id="header-not-an-object"),
        pytest.param(_safetensors(_header(), bytes(8)), id="offsets-outside-data"),
        pytest.param(_safetensors(_header(shape=[0], data_offsets=[4, 0]), bytes(4)), id="offsets-reversed"),
        pytest.param(_safetensors(_header(data_offsets=None), bytes(36)), id="offsets-missing"),
        pytest.param(_safetensors(_header(dtype=None), bytes(36)), id="dtype-missing"),
    ],
)
def test_weights_named_safetensors_are_judged_by_their_header(root: Path, payload: bytes) -> None:
    (root / "alpha" / "weights").mkdir()
    (root / "alpha" / "weights" / "model.safetensors").write_bytes(payload)
    lines = problems_of(root)
    assert any(line.startswith("alpha/weights/model.safetensors: is not safetensors (") for line in lines), lines


@pytest.mark.parametrize("framework", ["numpy", "torch"])
def test_real_safetensors_pass(root: Path, framework: str) -> None:
    path = str(root / "alpha" / "weights" / "model.safetensors")
    (root / "alpha" / "weights").mkdir()
    if framework == "numpy":
        import numpy as np
        from safetensors.numpy import save_file

        save_file({"w": np.zeros((3, 2), np.float32), "b": np.arange(4, dtype=np.int8)}, path)
    else:
        import torch
        from safetensors.torch import save_file

        save_file({"w": torch.zeros(3, 2)}, path, metadata={"format": "pt"})
    assert problems_of(root) == []


def test_non_utf8_ranking_is_refused(root: Path) -> None:
    path = root / "alpha" / "ranking.jsonl"
    path.write_bytes(path.read_bytes().replace(b'"alpaca-0"', b'"alpaca-\xff"', 1))
    assert any("ranking.jsonl" in line and "UTF-8" in line for line in problems_of(root))


@pytest.mark.parametrize(
    "name", ["ranking.jsonl", "leakage.jsonl", "outputs.json", "annotations.json", "metadata.json"]
)
def test_deep_nesting_is_one_problem_line_not_a_crash(root: Path, name: str) -> None:
    """In a child process: pyarrow once segfaulted on this (exit -11, no message)."""
    path = root / "alpha" / name
    deep = "[" * DEEP + "]" * DEEP
    if name.endswith(".jsonl"):
        path.write_text(path.read_text() + deep + "\n")
    else:
        path.write_text(deep)
    script = (
        "import sys, json\n"
        "from pathlib import Path\n"
        "from implicit_if.leaderboard.check import check_submissions\n"
        "from implicit_if.leaderboard.evaluation_sets import EvaluationSets\n"
        f"instructions = {json.dumps(INSTRUCTIONS)}\n"
        "_, problems = check_submissions(Path(sys.argv[1]), EvaluationSets(lambda d, s: instructions))\n"
        "print(json.dumps([f'{p.file}: {p.message}' for p in problems if p.severity == 'error']))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(root)], capture_output=True, text=True, timeout=120, env={**os.environ}
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = json.loads(done.stdout.strip().splitlines()[-1])
    assert any(f"alpha/{name}" in line for line in lines), lines
    assert all("\n" not in line for line in lines)
