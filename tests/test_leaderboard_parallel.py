"""Many submissions are checked in parallel processes, with exactly the serial result."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from leaderboard_fixtures import (
    edit_json,
    isolated_cache,  # noqa: F401 (fixture)
    synthetic_instructions,
    write_submission,
)

from implicit_if.leaderboard import check, parallel
from implicit_if.leaderboard.evaluation_sets import EvaluationSets


def _check(root: Path, instructions: list[str], parallel_from: int, monkeypatch: pytest.MonkeyPatch, cache: Path):
    monkeypatch.setattr(parallel, "PARALLEL_FROM", parallel_from)
    monkeypatch.setenv("IMPLICIT_IF_CACHE", str(cache))  # a cold recompute cache for each run
    return check.check_submissions(root, EvaluationSets(lambda dataset, source: instructions))


def test_parallel_check_equals_the_serial_one(
    tmp_path: Path, isolated_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    instructions = synthetic_instructions(40)
    root = tmp_path / "submissions"
    for k in range(18):
        write_submission(root, f"system{k:02d}", instructions, rng_seed=k, win_probability=0.2 + 0.03 * k)
    edit_json(root / "system07" / "metadata.json", lambda meta: meta["claimed"].update(win_rate=99.0))  # a false claim

    serial_entries, serial_problems = _check(root, instructions, 10**6, monkeypatch, tmp_path / "cache-serial")
    parallel_entries, parallel_problems = _check(root, instructions, 2, monkeypatch, tmp_path / "cache-parallel")

    assert parallel_problems == serial_problems
    assert any(p.file.startswith("system07") for p in serial_problems)
    assert [e.name for e in parallel_entries] == [e.name for e in serial_entries]
    for a, b in zip(serial_entries, parallel_entries):
        assert a.recomputed() == b.recomputed() and a.flags == b.flags
        np.testing.assert_array_equal(a.win, b.win)
