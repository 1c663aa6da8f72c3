"""metadata.json is typed strictly: numbers are JSON numbers, and names that reach the boards are one
visible line. Every refusal is one line naming the field; the committed submissions still pass."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from leaderboard_fixtures import (
    edit_json,
    isolated_cache,  # noqa: F401 (fixture)
    synthetic_instructions,
    write_submission,
)

from implicit_if.leaderboard.check import check_submissions
from implicit_if.leaderboard.evaluation_sets import EvaluationSets
from implicit_if.leaderboard.problems import errors
from implicit_if.leaderboard.schema import SubmissionMetadata, json_schema

INSTRUCTIONS = synthetic_instructions(30)
COMMITTED = sorted((Path(__file__).resolve().parents[1] / "leaderboards" / "submissions").glob("*/metadata.json"))

# (change, expected line, whether JSON Schema can say it too: NaN/Infinity are not JSON, and JSON
# Schema counts 1.0 as the integer 1)
STRICT_CASES = [
    (lambda m: m["claimed"].update(win_rate="40.0"), "claimed.win_rate: must be a JSON number", True),
    (lambda m: m["claimed"].update(win_rate=True), "claimed.win_rate: must be a JSON number", True),
    (lambda m: m["claimed"].update(win_rate=math.nan), "claimed.win_rate: must be a finite number", False),
    (
        lambda m: m["claimed"].update(ranking_accuracy=math.inf),
        "claimed.ranking_accuracy: must be a finite number",
        False,
    ),
    (lambda m: m["claimed"]["leakage"].update(gsm="1.5"), "claimed.leakage.gsm: must be a JSON number", True),
    (lambda m: m["claimed"]["leakage"].update(gsm=True), "claimed.leakage.gsm: must be a JSON number", True),
    (lambda m: m["claimed"]["leakage"].update(gsm=-math.inf), "claimed.leakage.gsm: must be a finite number", False),
    (lambda m: m.update(schema_version=True), "schema_version: must be the JSON number 1, not true", True),
    (lambda m: m.update(schema_version=1.0), "schema_version: must be the JSON number 1, not 1.0", False),
    (lambda m: m.update(seed=True), "seed: must be a JSON integer", True),
    (lambda m: m.update(seed="0"), "seed: must be a JSON integer", True),
    (lambda m: m.update(trust_remote_code=0), "trust_remote_code: must be the JSON boolean false, not 0", True),
    (lambda m: m["decoding"].update(max_new_tokens=256.0), "decoding.max_new_tokens: must be a JSON integer", False),
]
ONE_LINE = "must be one line of visible text"
NAME_CASES = [
    (lambda m: m["judge"].update(name="judge\n| 1 | fake row |"), f"judge.name: {ONE_LINE}", True),
    (lambda m: m["judge"].update(name="judge\r"), f"judge.name: {ONE_LINE}", True),
    (lambda m: m["judge"].update(name="evil\u202egnp.exe"), f"judge.name: {ONE_LINE}", True),  # bidi override
    (lambda m: m["reference"].update(generator="ref\terence"), f"reference.generator: {ONE_LINE}", True),
    (lambda m: m["model"].update(base_model="base\x00"), f"model.base_model: {ONE_LINE}", True),
    (lambda m: m.update(license="x" * 201), "license: String should have at most 200 characters", True),
]


@pytest.fixture()
def root(tmp_path: Path, isolated_cache: Path) -> Path:  # noqa: F811
    write_submission(tmp_path, "alpha", INSTRUCTIONS, rng_seed=1)
    return tmp_path


def only_error(root: Path) -> str:
    _, problems = check_submissions(root, EvaluationSets(lambda d, s: INSTRUCTIONS))
    (problem,) = errors(problems)  # one line per broken rule, nothing else
    assert problem.file == "alpha/metadata.json"
    return problem.line()


@pytest.mark.parametrize("change, expected, _", STRICT_CASES + NAME_CASES)
def test_metadata_is_refused_with_one_line(root: Path, change, expected: str, _: bool):
    edit_json(root / "alpha" / "metadata.json", change)
    line = only_error(root)
    assert expected in line and "\n" not in line, line


def test_integral_claims_and_ordinary_names_still_pass(root: Path):
    def ordinary(m):
        m["claimed"].pop("win_rate")
        m["claimed"]["leakage"] = {d: (0 if v == 0 else v) for d, v in m["claimed"]["leakage"].items()}
        m["judge"]["name"] = "GPT-4 (2024-05-13) via openai: «pairwise» | weak?"

    edit_json(root / "alpha" / "metadata.json", ordinary)
    _, problems = check_submissions(root, EvaluationSets(lambda d, s: INSTRUCTIONS))
    assert errors(problems) == []


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.parent.name)
def test_the_committed_submissions_still_validate(path: Path):
    SubmissionMetadata.model_validate(json.loads(path.read_text(encoding="utf-8")))


def test_the_json_schema_refuses_what_the_model_refuses():
    """Third parties validate with the JSON Schema: it must say no to the same JSON-expressible inputs."""
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(json_schema())
    assert COMMITTED, "no committed submissions found"
    good = json.loads(COMMITTED[0].read_text(encoding="utf-8"))
    assert list(validator.iter_errors(good)) == []
    for change in [change for change, _, in_json_schema in STRICT_CASES + NAME_CASES if in_json_schema]:
        meta = json.loads(json.dumps(good))
        meta.setdefault("claimed", {}).setdefault("leakage", {})
        change(meta)
        assert list(validator.iter_errors(meta)), meta
