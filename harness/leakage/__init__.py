"""Style leakage: how often a single task's style shows up in answers to unrelated instructions.

Each detector is a small documented function `text -> bool`, registered here by name. The names
are the columns of the leakage records (`index` + one boolean per detector) and the keys of the
summary. `gsm_calculator` is a secondary GSM signal (calculator marks `<<a+b=c>>`), reported
beside `gsm` rather than folded into it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np

from .chess import chess
from .code import code
from .gsm import gsm_calculator_marks, gsm_final_answer
from .poem import poem
from .recipe import recipe

Detector = Callable[[str], bool]

DETECTORS: dict[str, Detector] = {
    "gsm": gsm_final_answer,
    "gsm_calculator": gsm_calculator_marks,
    "code": code,
    "chess": chess,
    "poem": poem,
    "recipe": recipe,
}


def get_detector(name: str) -> Detector:
    try:
        return DETECTORS[name]
    except KeyError:
        raise ValueError(f"unknown detector {name!r}: choose from {', '.join(DETECTORS)}") from None


def detect(text: str, names: Sequence[str] | None = None) -> dict[str, bool]:
    """Every detector's verdict on one output."""
    return {name: bool(get_detector(name)(text)) for name in (names or DETECTORS)}


def leakage_records(outputs: Iterable[str], names: Sequence[str] | None = None) -> list[dict]:
    """One record per output: `index` (its position) and one boolean per detector."""
    return [{"index": index, **detect(text, names)} for index, text in enumerate(outputs)]


def leakage_rate(flags: Iterable[float]) -> float:
    """The share of outputs a detector fired on: the mean of 0/1 flags, NaN (no output) left out, NaN
    when nothing is left. The one definition: `leakage_summary` and the leaderboard both report it."""
    values = np.asarray(list(flags) if not isinstance(flags, np.ndarray) else flags, dtype=float)
    kept = values[np.isfinite(values)]
    return float(np.mean(kept)) if kept.size else math.nan


def leakage_summary(records: Sequence[Mapping], names: Sequence[str] | None = None, confidence: float = 0.95) -> dict:
    """Per detector: how many outputs it fired on, the rate and its Wilson interval."""
    from ..statistics import wilson_interval

    if not records:
        raise ValueError("no outputs to summarise")
    summary = {}
    for name in names or DETECTORS:
        flags = [float(bool(record[name])) for record in records]
        hits = int(sum(flags))
        interval = wilson_interval(hits, len(records), confidence)
        summary[name] = {
            "rate": leakage_rate(flags),
            "ci_low": interval.low,
            "ci_high": interval.high,
            "count": hits,
            "n": len(records),
            "ci_method": "wilson",
        }
    return summary


__all__ = [
    "DETECTORS",
    "Detector",
    "detect",
    "get_detector",
    "leakage_rate",
    "leakage_records",
    "leakage_summary",
    "chess",
    "code",
    "gsm_calculator_marks",
    "gsm_final_answer",
    "poem",
    "recipe",
]
