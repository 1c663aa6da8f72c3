"""What the rule-based adapter does, as data: which rules are on and their constants.

The defaults are the study's (Hewitt et al. 2024, "Instruction Following without Instruction
Tuning", section on the rule-based adapter; constants read from its public code):

1. ``eos``: the EOS logit rises linearly with the response length L (tokens generated so
   far): ``+ eos_scale * L / eos_horizon`` while ``0 < L < eos_horizon``. The study's code
   drops the bonus back to 0 once L reaches the horizon (250); ``eos_hold_after_horizon``
   keeps it at ``eos_scale`` instead.
2. ``uniform``: a fixed shift for about fifteen tokens named by their text, at every step
   (the study's list is :data:`STUDY_TOKEN_SHIFTS`).
3. ``diversity``: ``- diversity_penalty`` for every vocabulary item that already occurs in
   the response (once per item, however often it occurred). The study's code looked at the
   whole sequence, so the instruction's tokens (and the format tags) were penalised too;
   ``count_instruction_tokens=True`` reproduces that.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

RULE_NAMES = ("eos", "uniform", "diversity")
NO_RULES = ("", "none", "off")
FORMS = ("bare", "spaced")


@dataclass(frozen=True)
class TokenShift:
    """A logit shift for the tokens whose text is `text`.

    `forms` says which spellings count: ``bare`` is the text itself (e.g. "I" at the start of
    a line), ``spaced`` is the word-initial spelling with a leading space (" I", which
    SentencePiece writes "▁I" and byte-level BPE "ĠI").
    """

    text: str
    shift: float
    forms: tuple[str, ...] = FORMS

    def __post_init__(self) -> None:
        if not self.text:
            raise ValueError("a token shift needs a non-empty text")
        object.__setattr__(self, "forms", tuple(self.forms))
        bad = [f for f in self.forms if f not in FORMS]
        if bad or not self.forms:
            raise ValueError(
                f"token shift {self.text!r}: forms must be a non-empty subset of {FORMS}, got {self.forms}"
            )


# The study's list (Llama-2 ids in its code; here by text). Why each one:
STUDY_TOKEN_SHIFTS: tuple[TokenShift, ...] = (
    # Characters of the chat tags ("<|assistant|>"): likely because the prompt shows them, unwanted in answers.
    TokenShift("<", -4.0),
    TokenShift("|", -4.0, ("bare",)),
    # Words that continue the request instead of answering it, or hedge.
    TokenShift("I", -5.0),
    TokenShift("We", -3.0, ("spaced",)),
    TokenShift("What", -5.0, ("spaced",)),
    TokenShift("should", -6.0, ("spaced",)),
    # Formatting that answers tend to use: list markers, headers, indentation, line breaks.
    TokenShift("-", 1.0),
    TokenShift("*", 1.0),
    TokenShift("#", 1.0),
    TokenShift("##", 1.0),
    TokenShift("  ", 1.0, ("bare",)),
    TokenShift("\n", 1.0, ("bare",)),
    # A little enthusiasm.
    TokenShift("!", 1.0),
)


@dataclass(frozen=True)
class RuleConfig:
    """Which rules are on, and their constants (defaults: the study's)."""

    eos: bool = True
    uniform: bool = True
    diversity: bool = True
    eos_scale: float = 15.0
    eos_horizon: int = 250
    eos_hold_after_horizon: bool = False
    token_shifts: tuple[TokenShift, ...] = field(default=STUDY_TOKEN_SHIFTS)
    diversity_penalty: float = 1.5
    count_instruction_tokens: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "token_shifts", _as_token_shifts(self.token_shifts))
        if self.eos_horizon <= 0:
            raise ValueError(f"eos_horizon must be a positive number of tokens, got {self.eos_horizon}")

    @property
    def enabled(self) -> tuple[str, ...]:
        return tuple(name for name in RULE_NAMES if getattr(self, name))

    @property
    def spec(self) -> str:
        """The `--rules` string that selects these rules ("none" when all are off)."""
        return ",".join(self.enabled) or "none"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (for records and for vLLM's per-request extra_args)."""
        data = asdict(self)
        data["token_shifts"] = [[s.text, s.shift, list(s.forms)] for s in self.token_shifts]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RuleConfig:
        return with_options(cls(), **dict(data))

    def changed_options(self) -> dict[str, Any]:
        """The constants that differ from the study's defaults (for provenance records)."""
        default = RuleConfig().to_dict()
        mine = self.to_dict()
        return {k: v for k, v in mine.items() if k not in RULE_NAMES and v != default[k]}


def _as_token_shifts(value: Any) -> tuple[TokenShift, ...]:
    """Accept TokenShift objects, [text, shift(, forms)] lists, a {text: shift} mapping, or JSON of those."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise ValueError(
                f'token_shifts must be JSON such as \'{{"I": -5}}\' or \'[["I", -5, ["bare"]]]\', got {value!r}'
            ) from None
    if isinstance(value, Mapping):
        value = [(text, shift) for text, shift in value.items()]
    shifts: list[TokenShift] = []
    for item in value:
        if isinstance(item, TokenShift):
            shifts.append(item)
        elif isinstance(item, Mapping):
            shifts.append(TokenShift(item["text"], float(item["shift"]), tuple(item.get("forms", FORMS))))
        else:
            text, shift, *rest = item
            shifts.append(TokenShift(str(text), float(shift), tuple(rest[0]) if rest else FORMS))
    return tuple(shifts)


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _coerce(name: str, kind: Any, value: Any) -> Any:
    """Options arrive as strings from the CLI and lm-eval's model_args: convert by field type."""
    kind = str(kind)
    if kind == "bool":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE | _FALSE:
            return text in _TRUE
        raise ValueError(f"rule option {name} must be true or false, got {value!r}")
    if kind in ("int", "float"):
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"rule option {name} must be a number, got {value!r}") from None
        if kind == "int":
            if number != int(number):
                raise ValueError(f"rule option {name} must be a whole number, got {value!r}")
            return int(number)
        return number
    return value


def option_names() -> tuple[str, ...]:
    return tuple(f.name for f in fields(RuleConfig) if f.name not in RULE_NAMES)


def with_options(config: RuleConfig, **options: Any) -> RuleConfig:
    """Override constants (and rule switches) by name, with a clear error for unknown names."""
    kinds = {f.name: f.type for f in fields(RuleConfig)}
    unknown = sorted(set(options) - set(kinds))
    if unknown:
        raise ValueError(f"unknown rule option(s) {', '.join(unknown)}: valid options are {', '.join(option_names())}")
    converted = {name: _coerce(name, kinds[name], value) for name, value in options.items()}
    return replace(config, **converted)


def parse_spec(spec: str | Iterable[str]) -> tuple[str, ...]:
    """'eos,uniform,diversity' -> ('eos', 'uniform', 'diversity'); 'none' -> (); 'all' -> all three."""
    names = [p.strip().lower() for p in (spec.split(",") if isinstance(spec, str) else spec)]
    names = [n for n in names if n]
    if not names or (len(names) == 1 and names[0] in NO_RULES):
        return ()
    if names == ["all"]:
        return RULE_NAMES
    unknown = [n for n in names if n not in RULE_NAMES]
    if unknown:
        raise ValueError(
            f"unknown rule(s) {', '.join(map(repr, unknown))}: use a comma-separated subset of "
            f"{','.join(RULE_NAMES)} (or 'all', or 'none')"
        )
    return tuple(n for n in RULE_NAMES if n in names)
