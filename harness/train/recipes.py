"""Training recipes: YAML data, resolvable by name or file, overridable with `key=value`.

A recipe file may start with `extends: OTHER` (a name or a path relative to the file): the
other recipe is loaded first and this file's keys are merged over it, so the study's grid is
a few lines per cell. Names beginning with `_` are shared bases and are not listed.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..formats import TAG_FORMATS

RECIPE_PACKAGE = __name__.rpartition(".")[0]


class RecipeError(ValueError):
    """A recipe that cannot be found, parsed or validated; the message names the fix."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class ModelSpec(_Strict):
    """Which network to train and how to build it."""

    name_or_path: str | None = Field(None, description="hub id, local dir or embedded model name (pretrained weights)")
    init: Literal["pretrained", "random"] = "pretrained"
    config: dict[str, Any] = Field(
        default_factory=dict, description="random init: model_type and sizes; pretrained: config overrides"
    )
    tokenizer: str | None = Field(None, description="defaults to name_or_path")
    attn_implementation: str = Field("auto", description="auto: flash_attention_2 on GPU when installed, else sdpa")
    gradient_checkpointing: bool = False
    trust_remote_code: bool = False

    @model_validator(mode="after")
    def _check(self) -> ModelSpec:
        if self.init == "pretrained" and not self.name_or_path:
            raise ValueError(
                "model.init is 'pretrained' but model.name_or_path is empty: name the weights to fine-tune"
            )
        if self.init == "random":
            if "model_type" not in self.config:
                raise ValueError("model.init is 'random': model.config needs a model_type (e.g. llama) and its sizes")
            if not (self.tokenizer or self.name_or_path):
                raise ValueError("model.init is 'random': set model.tokenizer to a tokenizer to train with")
        return self


class DataSpec(_Strict):
    """What the model is trained on, and in which chat format."""

    dataset: str = Field(description="a name known to implicit_if.data.load_pairs")
    limit: int | None = Field(None, ge=1, description="keep the first N records (the study uses prefixes)")
    adaptation: Literal["instruction", "response"] = Field(
        "instruction",
        description="instruction: loss on responses given instructions; response: every user turn blanked",
    )
    format: str = Field("tulu", description="tag format: " + " or ".join(TAG_FORMATS))
    max_length: int = Field(2048, ge=8, description="tokens per example; longer ones are truncated")
    offline: bool | None = Field(None, description="None: hub, falling back to fixtures; True: fixtures only")

    @model_validator(mode="after")
    def _check(self) -> DataSpec:
        if self.format not in TAG_FORMATS:
            raise ValueError(f"data.format {self.format!r} is not a tag format: use one of {', '.join(TAG_FORMATS)}")
        return self


class TrainingSpec(_Strict):
    """Optimisation: the study's knobs plus the packing budget."""

    epochs: int = Field(1, ge=1)
    max_steps: int | None = Field(None, ge=1, description="stop after this many optimizer steps (overrides epochs)")
    batch_size: int = Field(64, ge=1, description="examples per optimizer step, across all devices")
    micro_batch_tokens: int = Field(4096, ge=8, description="tokens in one packed forward pass on one device")
    learning_rate: float = Field(gt=0)
    schedule: Literal["linear", "cosine", "constant"] = "linear"
    warmup_ratio: float = Field(0.03, ge=0, le=1)
    warmup_steps: int | None = Field(None, ge=0, description="overrides warmup_ratio")
    min_lr_ratio: float = Field(0.0, ge=0, le=1, description="floor of the decay, as a fraction of learning_rate")
    weight_decay: float = Field(0.0, ge=0)
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    max_grad_norm: float | None = Field(None, gt=0, description="None: no clipping (the study's setting)")
    loss_chunk_tokens: int = Field(
        512,
        ge=0,
        description=(
            "fused output-layer loss over chunks of this many target tokens (never the full logits); "
            "0: plain loss on full logits"
        ),
    )
    freeze_embeddings: bool = Field(
        False, description="keep the input embeddings (and a tied output layer) fixed; the study trained everything"
    )
    precision: Literal["auto", "bf16", "fp32"] = Field("auto", description="auto: bf16 on GPU, fp32 on CPU")
    seed: int = 0
    logging_every: int = Field(1, ge=1)
    checkpoint_every: int | None = Field(None, ge=1, description="save a resumable checkpoint every N steps")
    keep_checkpoints: int = Field(2, ge=1, description="how many recent checkpoints to keep")


class Recipe(_Strict):
    name: str
    description: str = ""
    notes: str = ""
    model: ModelSpec
    data: DataSpec
    training: TrainingSpec

    @model_validator(mode="after")
    def _check(self) -> Recipe:
        if self.training.micro_batch_tokens < self.data.max_length:
            raise ValueError(
                f"training.micro_batch_tokens ({self.training.micro_batch_tokens}) is smaller than data.max_length "
                f"({self.data.max_length}): a full-length example could not fit; "
                "raise micro_batch_tokens or lower max_length"
            )
        return self

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, allow_unicode=True)

    def digest(self) -> str:
        """Content hash of the resolved recipe (what a checkpoint must match to be resumed)."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()


def _recipe_dir() -> Any:
    return resources.files(RECIPE_PACKAGE) / "recipes"


def list_recipes() -> dict[str, str]:
    """Bundled recipe names and their one-line descriptions, sorted by name."""
    found: dict[str, str] = {}
    for entry in _recipe_dir().iterdir():
        if entry.name.endswith(".yaml") and not entry.name.startswith("_"):
            name = entry.name[: -len(".yaml")]
            found[name] = str(_load_raw(name).get("description", ""))
    return dict(sorted(found.items()))


def _read_yaml(text: str, origin: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise RecipeError(f"recipe {origin} is not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise RecipeError(f"recipe {origin} must be a YAML mapping of sections (model, data, training)")
    return data


def _locate(name_or_file: str, relative_to: Path | None = None) -> tuple[str, Path | None, str]:
    """(text, path of a user file or None for a bundled one, origin for messages)."""
    candidate = Path(name_or_file).expanduser()
    if relative_to is not None and not candidate.is_absolute():
        candidate = relative_to / candidate
    if name_or_file.endswith((".yaml", ".yml")) or candidate.exists():
        if not candidate.is_file():
            raise RecipeError(
                f"recipe file {candidate} does not exist: "
                f"check the path, or give a bundled name ({', '.join(list_recipes())})"
            )
        return candidate.read_text(encoding="utf-8"), candidate, str(candidate)
    bundled = _recipe_dir() / f"{name_or_file}.yaml"
    if not bundled.is_file():
        raise RecipeError(
            f"unknown recipe {name_or_file!r}: give a bundled name ({', '.join(list_recipes())}) "
            "or the path of a .yaml file (`implicit-if train --list-recipes`)"
        )
    return bundled.read_text(encoding="utf-8"), None, f"bundled:{name_or_file}"


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """`override` over `base`, recursing into mappings; pure."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _load_raw(name_or_file: str, relative_to: Path | None = None, seen: tuple[str, ...] = ()) -> dict[str, Any]:
    text, path, origin = _locate(name_or_file, relative_to)
    if origin in seen:
        raise RecipeError(f"recipe {origin} extends itself through {' -> '.join(seen)}: break the cycle")
    data = _read_yaml(text, origin)
    parent = data.pop("extends", None)
    if parent is None:
        return data
    base = _load_raw(str(parent), path.parent if path else None, (*seen, origin))
    base.pop("name", None)  # a child never inherits its parent's name
    return deep_merge(base, data)


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """`section.key=value` strings -> nested mapping; values are read as YAML scalars (3, 1e-5, null, true)."""
    nested: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise RecipeError(f"override {item!r} is not key=value: write e.g. training.epochs=3")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        parts = key.strip().split(".")
        cursor = nested
        for part in parts[:-1]:
            cursor = cursor.setdefault(part, {})
            if not isinstance(cursor, dict):
                raise RecipeError(
                    f"override {item!r} sets a key inside {part!r}, which another override set to a value"
                )
        cursor[parts[-1]] = value
    return nested


def _explain(error: ValidationError, origin: str) -> str:
    problems = []
    for issue in error.errors():
        where = ".".join(str(p) for p in issue["loc"]) or "recipe"
        message = issue["msg"].removeprefix("Value error, ")
        if issue["type"] == "extra_forbidden":
            message = (
                "unknown key (check the spelling; `implicit-if train --recipe NAME --dry-run` shows the valid keys)"
            )
        problems.append(f"{where}: {message}")
    return f"recipe {origin} is invalid: " + "; ".join(problems)


def load_recipe(name_or_file: str, overrides: list[str] | dict[str, Any] | None = None) -> Recipe:
    """Resolve a bundled name or a YAML file, apply overrides, validate."""
    raw = _load_raw(name_or_file)
    raw.setdefault("name", Path(name_or_file).stem if name_or_file.endswith((".yaml", ".yml")) else name_or_file)
    if overrides:
        extra = parse_overrides(overrides) if isinstance(overrides, list) else overrides
        raw = deep_merge(raw, extra)
    try:
        return Recipe.model_validate(raw)
    except ValidationError as error:
        raise RecipeError(_explain(error, name_or_file)) from None
