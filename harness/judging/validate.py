"""Judge validation: how often a judge picks the known better answer, and its biases.

The bundled set (`validation/pairs.jsonl`, see its DATA_CARD.md) holds pairs with a known better
answer in ten categories. Every pair is judged in both orders through the production path (the
same cache, the same judge code), so one run gives accuracy, position consistency and the
position and length biases. Reported on the held-out split by default: nothing is tuned on it.

Scoring: a verdict picks the better answer when p(better) > 0.5, and counts half at exactly 0.5.
A judge whose spec averages both orders (or is order-free, as pointwise judges are) is scored on
the averaged verdict; a one-order judge on each order alone (the expected accuracy under the
random order it sees in production).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from ..statistics import bootstrap_mean_ci
from . import JudgeSummary, judge_comparisons
from .cache import comparison_key
from .judges import Comparison
from .specs import JudgeSpec

PAIRS_FILE = Path(__file__).parent / "validation" / "pairs.jsonl"
Split = Literal["dev", "heldout", "all"]
# The categories where a base model's failures sit: the acceptance bar applies to these.
BLATANT = ("loop", "debris", "off_topic", "truncation", "refusal")


class ValidationPair(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    category: str
    split: Literal["dev", "heldout"]
    instruction: str
    better: str
    worse: str
    why: str

    @property
    def shorter_is_better(self) -> bool:
        return len(self.better) < len(self.worse)


def load_pairs(split: Split = "heldout", path: Path = PAIRS_FILE) -> list[ValidationPair]:
    pairs = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                pairs.append(ValidationPair.model_validate_json(line))
            except ValueError as error:
                raise ValueError(f"{path}:{number}: not a validation pair ({error})") from None
    return [p for p in pairs if split == "all" or p.split == split]


class PairVerdicts(BaseModel):
    """p(better answer is better) with the better answer shown first, and shown second."""

    pair: ValidationPair
    p_better_when_first: float | None
    p_better_when_second: float | None


def _decision(p: float | None) -> float:
    """1 picks the better answer, 0 the worse, 0.5 a tie or no usable verdict."""
    if p is None or np.isnan(p):
        return 0.5
    return 1.0 if p > 0.5 else 0.0 if p < 0.5 else 0.5


def correctness(verdicts: PairVerdicts, averaged: bool) -> float:
    first, second = verdicts.p_better_when_first, verdicts.p_better_when_second
    if averaged:
        usable = [p for p in (first, second) if p is not None]
        return _decision(sum(usable) / len(usable) if usable else None)
    return (_decision(first) + _decision(second)) / 2


def summarise(results: Sequence[PairVerdicts], averaged: bool) -> dict:
    """The validation table's row for one judge: estimates with 95% bootstrap intervals."""
    scores = np.array([correctness(r, averaged) for r in results])
    longer_better = np.array([not r.pair.shorter_is_better for r in results])
    # position: picks the first shown, per single-order verdict
    # (the better answer is first in one order, second in the other)
    first_picked = np.array(
        [[_decision(r.p_better_when_first), 1 - _decision(r.p_better_when_second)] for r in results]
    )
    consistent = np.array(
        [float(_decision(r.p_better_when_first) == _decision(r.p_better_when_second)) for r in results]
    )
    picks_longer = np.where(longer_better, scores, 1 - scores)

    def interval(values: np.ndarray) -> dict | None:
        if len(values) == 0:
            return None
        if np.all(values == values[0]):  # a constant: the bootstrap has nothing to resample
            return {"estimate": float(values[0]), "ci_low": float(values[0]), "ci_high": float(values[0])}
        return bootstrap_mean_ci(values, method="percentile").as_dict()

    by_category = {}
    for category in sorted({r.pair.category for r in results}):
        mask = np.array([r.pair.category == category for r in results])
        by_category[category] = interval(scores[mask])
    blatant = np.array([r.pair.category in BLATANT for r in results])
    return {
        "n_pairs": len(results),
        "accuracy": interval(scores),
        "accuracy_blatant": interval(scores[blatant]),
        "accuracy_shorter_better": interval(scores[~longer_better]),
        "position_consistency": interval(consistent),
        "p_prefers_first": interval(first_picked.mean(axis=1)),
        "p_prefers_longer": interval(picks_longer),
        "by_category": by_category,
    }


def baseline_verdicts(pairs: Sequence[ValidationPair], name: str, seed: int = 0) -> list[PairVerdicts]:
    """`longest` prefers the longer answer; `random` flips a seeded coin per verdict."""
    rng = random.Random(seed)
    out = []
    for pair in pairs:
        if name == "longest":
            p = 1.0 if len(pair.better) > len(pair.worse) else 0.0 if len(pair.better) < len(pair.worse) else 0.5
            out.append(PairVerdicts(pair=pair, p_better_when_first=p, p_better_when_second=p))
        elif name == "random":
            out.append(
                PairVerdicts(
                    pair=pair,
                    p_better_when_first=float(rng.random() < 0.5),
                    p_better_when_second=float(rng.random() < 0.5),
                )
            )
        else:
            raise ValueError(f"unknown baseline {name!r}: longest or random")
    return out


def judge_pairs(
    pairs: Sequence[ValidationPair],
    spec: JudgeSpec,
    *,
    cache_path: str | Path | None = None,
    progress: bool = True,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[list[PairVerdicts], dict]:
    """Judge every pair in both orders through the production path; returns the verdicts and run
    facts (new verdicts, seconds, seconds per 1,000 new verdicts)."""
    judge_hash = spec.identity_hash()
    unique: dict[str, Comparison] = {}
    keys = []
    for pair in pairs:
        order = []
        for first, second in ((pair.better, pair.worse), (pair.worse, pair.better)):
            key = comparison_key(judge_hash, pair.instruction, first, second)
            unique[key] = Comparison(key, pair.instruction, first, second)
            order.append(key)
        keys.append(order)
    summary = JudgeSummary(n_pairs=len(pairs))
    started = clock()
    verdicts = judge_comparisons(unique, spec, summary, cache_path=cache_path, progress=progress)
    seconds = clock() - started
    if summary.failed:
        raise RuntimeError(
            f"{len(summary.failed)} judge requests failed (first: {next(iter(summary.failed.values()))}): "
            "rerun to retry"
        )
    results = []
    for pair, (key_better_first, key_better_second) in zip(pairs, keys):
        p_second_a, p_second_b = verdicts[key_better_first].p_second, verdicts[key_better_second].p_second
        results.append(
            PairVerdicts(
                pair=pair,
                p_better_when_first=None if p_second_a is None else 1 - p_second_a,
                p_better_when_second=p_second_b,
            )
        )
    facts = {
        "new_verdicts": summary.n_new,
        "cached_verdicts": summary.n_cached,
        "seconds": round(seconds, 2),
        "seconds_per_1000_verdicts": round(seconds / summary.n_new * 1000, 1) if summary.n_new else None,
    }
    return results, facts


def averages_orders(spec: JudgeSpec) -> bool:
    return spec.both_orders or spec.kind == "local_pointwise"
