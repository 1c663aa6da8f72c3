"""Judge configurations are data: a YAML file per judge, validated on load.

A SPEC on the command line is one of
- a built-in name (a file in `judging/specs/`, e.g. `smollm2-local`, `gpt-4o-mini-logprobs`);
- a path to a YAML file with the fields of `JudgeSpec`;
- a shorthand `KIND:MODEL`: `logprobs:MODEL`, `verdict:MODEL` (OpenAI-compatible endpoint),
  `local:MODEL` or `local-vllm:MODEL` (our backends).

Secrets never live in a spec: `api_key_env` names the environment variable holding the key.
`identity()` is what makes two verdicts interchangeable (the cache key's judge part): it leaves
out the endpoint address, the key, and knobs such as concurrency that do not change a verdict.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .prompt import POINTWISE_PROMPT_VERSION, PROMPT_VERSION

SPEC_DIR = Path(__file__).parent / "specs"
JudgeKind = Literal["openai_logprobs", "openai_verdict", "local", "local_pointwise"]
SHORTHAND_KINDS = {
    "logprobs": {"kind": "openai_logprobs"},
    "verdict": {"kind": "openai_verdict"},
    "local": {"kind": "local", "backend": "hf"},
    "local-vllm": {"kind": "local", "backend": "vllm"},
    "pointwise": {"kind": "local_pointwise", "backend": "hf"},
}
DEFAULT_BASE_URL = "https://api.openai.com/v1"
# The offline judge of the demo, `eval`, `judge` and the lm-eval task: the most accurate shipped
# judge on the held-out validation pairs that fits the demo's time budget (docs/judging.md).
DEFAULT_OFFLINE_JUDGE = "qwen2.5-coder-1.5b-pointwise"


class JudgeSpec(BaseModel):
    """One judge. Fields that do not apply to a kind are ignored by it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Recorded as `annotator` in annotations.")
    kind: JudgeKind
    model: str = Field(description="Served model name (endpoint) or embedded name / hub id / path (local).")
    # OpenAI-compatible endpoints
    base_url: str = DEFAULT_BASE_URL
    api_key_env: str = "OPENAI_API_KEY"
    top_logprobs: int = Field(20, ge=2, le=20)
    max_tokens: int | None = Field(None, ge=1, description="Default: 1 for logprobs, 8 for verdict.")
    temperature: float = Field(0.0, ge=0.0)
    concurrency: int = Field(8, ge=1)
    timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(6, ge=0)
    backoff_base_s: float = Field(0.5, gt=0)
    backoff_max_s: float = Field(30.0, gt=0)
    price_per_million_input: float | None = Field(None, ge=0, description="USD, for the cost summary.")
    price_per_million_output: float | None = Field(None, ge=0)
    # local judges
    backend: Literal["hf", "vllm"] = "hf"
    dtype: str = "auto"
    batch_size: int = Field(8, ge=1)
    # all
    both_orders: bool = Field(False, description="Judge both orders and average (for position-biased judges).")
    max_answer_chars: int | None = Field(4000, ge=1, description="Each answer is clipped to this many characters.")
    # `judge --estimate` only (not part of the identity: they change no verdict)
    tokenizer: str | None = Field(
        None, description="HF name/path or embedded model name of the judge's tokenizer, for token estimates."
    )
    latency_s: float | None = Field(None, gt=0, description="Seconds one request takes, for time estimates.")

    @model_validator(mode="before")
    @classmethod
    def _no_secrets(cls, values: Any) -> Any:
        if isinstance(values, dict):
            for key in values:
                if "key" in key.lower() and key != "api_key_env":
                    raise ValueError(
                        f"judge specs must not contain secrets ({key!r}): put the API key in an "
                        "environment variable and name it with api_key_env"
                    )
        return values

    @property
    def is_local(self) -> bool:
        return self.kind in ("local", "local_pointwise")

    @property
    def effective_max_tokens(self) -> int:
        return self.max_tokens or (1 if self.kind == "openai_logprobs" else 8)

    @property
    def effective_dtype(self) -> str:
        """The precision a local hf judge runs in here (`auto` depends on the hardware, so verdicts record
        what it resolved to); other backends interpret the field themselves."""
        if not self.is_local or self.backend != "hf":
            return self.dtype
        from ..backends.hf import pick_device, resolve_dtype_name

        return resolve_dtype_name(self.dtype, pick_device(None))

    def identity(self) -> dict[str, Any]:
        """The fields that determine a verdict (no address, no secret, no throughput knobs)."""
        prompt = POINTWISE_PROMPT_VERSION if self.kind == "local_pointwise" else PROMPT_VERSION
        ident: dict[str, Any] = {
            "kind": self.kind,
            "model": self.model,
            "prompt": prompt,
            "max_answer_chars": self.max_answer_chars,
        }
        if self.is_local:
            ident.update(backend=self.backend, dtype=self.effective_dtype)
        else:
            ident.update(temperature=self.temperature, max_tokens=self.effective_max_tokens)
            if self.kind == "openai_logprobs":
                ident["top_logprobs"] = self.top_logprobs
        return ident

    def identity_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()[:16]


def builtin_spec_names() -> list[str]:
    return sorted(p.stem for p in SPEC_DIR.glob("*.yaml"))


def load_judge_spec(spec: str, **overrides: Any) -> JudgeSpec:
    """Resolve a SPEC string (see the module docstring); `overrides` replace fields (None = keep)."""
    fields = _spec_fields(spec)
    fields.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return JudgeSpec(**fields)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'spec'}: {e['msg']}" for e in error.errors())
        raise ValueError(f"invalid judge spec {spec!r}: {problems}") from None


def _spec_fields(spec: str) -> dict[str, Any]:
    import yaml

    path = SPEC_DIR / f"{spec}.yaml"
    if not path.exists() and (spec.endswith((".yaml", ".yml", ".json")) or Path(spec).is_file()):
        path = Path(spec)
        if not path.is_file():
            raise ValueError(f"judge spec file {spec} does not exist")
    if path.is_file():
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as error:
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise ValueError(f"judge spec {path} is not valid YAML ({reason}): fix its syntax") from None
        if not isinstance(loaded, dict):
            raise ValueError(f"judge spec {path} must be a mapping of JudgeSpec fields")
        loaded.setdefault("name", path.stem)
        return loaded
    kind, sep, model = spec.partition(":")
    if sep and kind in SHORTHAND_KINDS and model:
        return {"name": spec, "model": model, **SHORTHAND_KINDS[kind]}
    raise ValueError(
        f"unknown judge {spec!r}: use a built-in ({', '.join(builtin_spec_names())}), a YAML file, "
        f"or KIND:MODEL with KIND one of {', '.join(SHORTHAND_KINDS)}"
    )
