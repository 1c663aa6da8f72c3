"""Our pairwise judge prompt, and reading a judge's answer back.

The judge sees an instruction and two answers labelled A and B and replies with one label.
`p_second` (the probability that the answer shown second is better) is what every judge kind
returns; which of the two is the model's output is decided elsewhere (see `pairing`).
Changing the wording changes verdicts: bump PROMPT_VERSION so cached verdicts are not reused.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping

PROMPT_VERSION = "pairwise-v1"
LABELS = ("A", "B")  # first shown, second shown

SYSTEM = (
    "You judge answers to instructions. You compare two answers and decide which one follows "
    "the instruction better: helpful, correct, relevant, and as long as the instruction needs. "
    "The order in which the answers are shown says nothing about their quality."
)

USER = """Instruction:
{instruction}

Answer A:
{first}

Answer B:
{second}

Which answer follows the instruction better? Reply with a single letter: A or B."""


def clip(text: str, max_chars: int | None) -> str:
    """Keep the judge prompt within a context window; the cut is marked so the judge can see it."""
    if max_chars is None or len(text) <= max_chars:
        return text
    return text[:max_chars] + " [...]"


def judge_messages(
    instruction: str, first: str, second: str, max_answer_chars: int | None = None
) -> list[dict[str, str]]:
    """Chat messages asking which of two answers is better."""
    user = USER.format(
        instruction=instruction, first=clip(first, max_answer_chars), second=clip(second, max_answer_chars)
    )
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


# A label opening the reply and standing alone ("B", "B.", "**A**", "Answer: B\n...") decides;
# otherwise the reply must mention exactly one of the labels.
_LABEL_AT_START = re.compile(r"^\W*(?i:answer\W*)?([AB])(?:\W*$|[.:)*\]\n])")
_LABEL_ANYWHERE = re.compile(r"\b([AB])\b")


def parse_verdict(text: str) -> float | None:
    """A discrete verdict from free text: 1.0 (B, second better), 0.0 (A), None (no clear label)."""
    match = _LABEL_AT_START.match(text or "")
    if match is None:
        labels = set(_LABEL_ANYWHERE.findall(text or ""))
        if len(labels) != 1:  # neither, or both mentioned: not a verdict
            return None
        label = labels.pop()
    else:
        label = match.group(1)
    return 1.0 if label == LABELS[1] else 0.0


def checked_logprob(value: object) -> float:
    """A log-probability as a float; ValueError unless it is a finite number at most 0 (a reply can say anything)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"log-probability {value!r} is not a number")
    number = float(value)
    if not math.isfinite(number) or number > 1e-6:
        raise ValueError(f"log-probability {number!r} is not finite and at most 0")
    return number


def label_probability(top_logprobs: Iterable[Mapping[str, object]]) -> float | None:
    """p(second better) from the first generated token's top log-probabilities.

    Tokens that are a label once stripped of spaces (`"B"`, `" B"`) pool their probability, as
    a tokenizer may offer both. None when neither label is among the candidates.
    """
    mass = {label: 0.0 for label in LABELS}
    for entry in top_logprobs:
        token = str(entry.get("token", "")).strip()
        if token in mass:
            mass[token] += math.exp(checked_logprob(entry["logprob"]))
    total = mass[LABELS[0]] + mass[LABELS[1]]
    if total <= 0:
        return None
    return mass[LABELS[1]] / total


# -- pointwise: one answer at a time ----------------------------------------------------------------
# At 0.5-1.5B the A/B labels bind to the position, not the content; a yes/no verdict on one answer
# at a time does carry the content (see docs/judging.md, the validation table).

POINTWISE_PROMPT_VERSION = "pointwise-v1"
POINTWISE_LABELS = ("Yes", "No")

POINTWISE_SYSTEM = (
    "You grade answers to instructions. A good answer does what the instruction asks: it is correct, "
    "relevant, complete, follows every stated constraint, and contains nothing but the answer."
)

POINTWISE_USER = """Instruction:
{instruction}

Answer:
{answer}

Is this a good answer to the instruction? Reply with Yes or No."""


def pointwise_messages(instruction: str, answer: str, max_answer_chars: int | None = None) -> list[dict[str, str]]:
    """Chat messages asking whether one answer is good."""
    user = POINTWISE_USER.format(instruction=instruction, answer=clip(answer, max_answer_chars))
    return [{"role": "system", "content": POINTWISE_SYSTEM}, {"role": "user", "content": user}]


def pointwise_probability(score_first: float, score_second: float) -> float:
    """p(second better) from two answers' yes-minus-no logit margins (a Bradley-Terry comparison)."""
    gap = score_second - score_first
    if gap >= 0:
        return 1.0 / (1.0 + math.exp(-gap))
    return math.exp(gap) / (1.0 + math.exp(gap))


def pair_probability(logprob_first_label: float, logprob_second_label: float) -> float:
    """p(second better) from the two label log-probabilities a local model assigns."""
    high = max(logprob_first_label, logprob_second_label)
    a, b = math.exp(logprob_first_label - high), math.exp(logprob_second_label - high)
    return b / (a + b)
