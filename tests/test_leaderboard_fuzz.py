"""Property-based fuzzing of the submission checker: mutate a real submission folder and assert the
checker never crashes, never hangs, never writes, and answers every problem in one line.

The fast suite runs a few hundred seeded examples; the slow run (CI) runs 5,000. Every mutation
starts from a complete, valid folder written by the test fixtures (records, claims, metadata).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from leaderboard_fixtures import synthetic_instructions, write_submission

from implicit_if.leaderboard.check import check_submission, check_submissions
from implicit_if.leaderboard.evaluation_sets import EvaluationSets

INSTRUCTIONS = synthetic_instructions(12)
FILES = ["metadata.json", "outputs.json", "annotations.json", "ranking.jsonl", "leakage.jsonl", "README.md"]
SECONDS_PER_EXAMPLE = 20

json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12,
)
names = st.one_of(
    st.sampled_from(
        [
            "notes.txt",
            "weights",
            ".hidden",
            "a\nok: forged",
            "ümlaut.json",
            "x" * 300,
            "metadata.json.bak",
            "..",
            "weights/evil.py",
        ]
    ),
    st.text(min_size=1, max_size=20),
)


@st.composite
def mutations(draw):
    kind = draw(
        st.sampled_from(
            ["bytes", "truncate", "field", "line", "encoding", "delete", "extra", "deep", "duplicate", "weights"]
        )
    )
    target = draw(st.sampled_from(FILES))
    return kind, target, draw(st.binary(max_size=200)), draw(json_value), draw(names), draw(st.integers(0, 10**6))


def _set_anywhere(document, value, pick: int):
    """Replace one value somewhere inside a parsed JSON document (chosen by `pick`)."""
    if isinstance(document, list) and document:
        index = pick % len(document)
        if isinstance(document[index], (dict, list)) and pick % 3:
            document[index] = _set_anywhere(document[index], value, pick // 3)
        else:
            document[index] = value
        return document
    if isinstance(document, dict) and document:
        key = sorted(document)[pick % len(document)]
        if isinstance(document[key], (dict, list)) and pick % 3:
            document[key] = _set_anywhere(document[key], value, pick // 3)
        else:
            document[key] = value
        return document
    return value


def mutate(folder: Path, mutation) -> None:
    kind, target, blob, value, name, pick = mutation
    path = folder / target
    if kind == "bytes" and path.exists():
        data = bytearray(path.read_bytes())
        at = pick % (len(data) + 1)
        data[at : at + len(blob)] = blob
        path.write_bytes(bytes(data))
    elif kind == "truncate" and path.exists():
        data = path.read_bytes()
        path.write_bytes(data[: pick % (len(data) + 1)])
    elif kind == "field" and path.suffix == ".json" and path.exists():
        document = json.loads(path.read_text())
        path.write_text(json.dumps(_set_anywhere(document, value, pick), allow_nan=True))
    elif kind == "line" and path.suffix == ".jsonl" and path.exists():
        lines = path.read_text().splitlines()
        index = pick % len(lines)
        lines[index] = json.dumps(_set_anywhere(json.loads(lines[index]), value, pick // 7), allow_nan=True)
        path.write_text("\n".join(lines) + "\n")
    elif kind == "encoding" and path.exists():
        path.write_bytes(
            path.read_text(encoding="utf-8", errors="replace").encode(
                ["utf-16", "latin-1", "utf-32"][pick % 3], errors="replace"
            )
        )
    elif kind == "delete" and path.exists():
        path.unlink()
    elif kind == "extra":
        try:
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(blob)
        except (OSError, ValueError):
            pass
    elif kind == "deep" and path.exists():
        depth = 1000 + pick % 100_000
        path.write_text(("[" * depth + "]" * depth) + ("\n" if path.suffix == ".jsonl" else ""))
    elif kind == "duplicate" and path.exists():
        path.write_bytes(path.read_bytes() * 2)
    elif kind == "weights":
        weights = folder / "weights"
        weights.mkdir(exist_ok=True)
        special = pick % 4
        if special == 0:
            os.mkfifo(weights / "model.safetensors")
        elif special == 1:
            (weights / "model.safetensors").write_bytes(blob)
        elif special == 2:
            (weights / "config.json").write_text(json.dumps(value))
        else:
            os.symlink("/etc/passwd", weights / "tokenizer.json")


def snapshot(folder: Path) -> dict[str, bytes | None]:
    state = {}
    for path in sorted(folder.rglob("*")):
        if path.is_symlink() or not path.is_file():
            state[str(path)] = None
        else:
            state[str(path)] = path.read_bytes()
    return state


class Hang(Exception):
    pass


def _alarm(*_):
    raise Hang()


def run_one(base: Path, work: Path, mutation) -> None:
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(base, work, symlinks=True)
    folder = work / "alpha"
    mutate(folder, mutation)
    before = snapshot(work)
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(SECONDS_PER_EXAMPLE)
    try:
        _, problems = check_submission(folder, "alpha", EvaluationSets(lambda d, s: INSTRUCTIONS))
        _, across = check_submissions(work, EvaluationSets(lambda d, s: INSTRUCTIONS))
    except Hang:
        pytest.fail(f"the checker hung on {mutation[:2]}")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert snapshot(work) == before, f"the checker wrote into the submission on {mutation[:2]}"
    for problem in [*problems, *across]:
        assert "\n" not in problem.line() and "\r" not in problem.line(), problem.line()


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fuzz-base")
    write_submission(root / "subs", "alpha", INSTRUCTIONS, rng_seed=3)
    return root / "subs"


def _fuzz(base: Path, tmp_path_factory: pytest.TempPathFactory, examples: int) -> None:
    work = tmp_path_factory.mktemp("fuzz-work") / "subs"

    @seed(20261130)
    @settings(
        max_examples=examples, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(mutations())
    def property_holds(mutation) -> None:
        run_one(base, work, mutation)

    property_holds()


def test_the_checker_survives_mutated_submissions(base: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    _fuzz(base, tmp_path_factory, 150)


@pytest.mark.slow
def test_the_checker_survives_5000_mutated_submissions(base: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    _fuzz(base, tmp_path_factory, 5000)
