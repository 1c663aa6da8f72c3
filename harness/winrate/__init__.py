"""Win rates over AlpacaEval annotations: plain, length-controlled, with 95% intervals.

Pure functions over lists of annotation records (`instruction`, `output_1` = reference,
`output_2` = model, `preference` in [1, 2]). The CLI (`implicit-if winrate`), the lm-eval task
and the leaderboard all call these.

    compute_metrics(annotations)                      -> dict for one model
    compute_metrics_by_model({name: annotations})     -> dicts for several models, one reference
    length_controlled_winrate(annotations)            -> LCResult (the GLM fit)
    length_controlled_resamples(table, index)         -> the fit and its LC win rate refitted on each resample
    estimate_instruction_difficulty({name: annotations}) -> {instruction: difficulty}
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..statistics import bootstrap_ci, bootstrap_mean_ci
from .bias import judge_bias
from .difficulty import difficulty_csv_text, estimate_instruction_difficulty, read_difficulty_csv
from .glm import (
    DEFAULT_REGULARIZATION,
    LCResult,
    lc_bootstrap_statistic,
    lc_resample_winrates,
    length_controlled_fit,
)
from .plain import discrete_scores, plain_metrics
from .preferences import PreferenceTable, check_annotations, normalise_preference, preference_table

__all__ = [
    "DEFAULT_REGULARIZATION",
    "LC_RESAMPLES",
    "LCResult",
    "annotate_with_glm",
    "check_annotations",
    "compute_metrics",
    "compute_metrics_by_model",
    "difficulty_csv_text",
    "estimate_instruction_difficulty",
    "length_controlled_resamples",
    "length_controlled_winrate",
    "normalise_preference",
    "read_difficulty_csv",
]

# Each LC resample refits the GLM, so the LC interval uses fewer resamples than the plain ones.
LC_RESAMPLES = 300

Annotations = Sequence[Mapping[str, Any]]


def length_controlled_winrate(
    annotations: Annotations,
    *,
    difficulty: Mapping[str, float] | None = None,
    baseline_annotations: Sequence[Annotations] = (),
    regularization: float | None = DEFAULT_REGULARIZATION,
    seed: int = 0,
) -> LCResult:
    """Fit AlpacaEval 2's length-control GLM on one model's annotations (see `glm`).

    `regularization=None` (or no `baseline_annotations`) is AlpacaEval's `length_controlled_noreg`.
    """
    return length_controlled_fit(
        preference_table(annotations),
        difficulty=difficulty,
        baseline_tables=[preference_table(b) for b in baseline_annotations],
        regularization=regularization,
        seed=seed,
    )


def length_controlled_resamples(
    table: PreferenceTable,
    index: np.ndarray,
    *,
    rows_of: np.ndarray | None = None,
    difficulty: Mapping[str, float] | None = None,
    baseline_annotations: Sequence[Annotations] = (),
    regularization: float | None = DEFAULT_REGULARIZATION,
    seed: int = 0,
) -> tuple[LCResult, np.ndarray]:
    """The GLM fitted on `table` (as `length_controlled_winrate`), and its LC win rate (percent) refitted
    at the fitted penalty on each row of the index matrix `index` (`glm.lc_resample_winrates`).

    With `index = statistics.bootstrap_indices(table.n, lc_resamples, seed)` these are the resamples of
    the LC interval `compute_metrics` reports (its percentile interval is theirs). With `rows_of`
    (unit -> row of `table`, -1 where it has none) the units are a board's instructions, shared by
    every entry, so the entries' resamples are paired.
    """
    baseline_tables = [preference_table(b) for b in baseline_annotations]
    fit = length_controlled_fit(
        table, difficulty=difficulty, baseline_tables=baseline_tables, regularization=regularization, seed=seed
    )
    values = lc_resample_winrates(
        table, index, fit.C, difficulty, baseline_tables, regularization, rows_of=rows_of, seed=seed
    )
    return fit, values


def compute_metrics(
    annotations: Annotations,
    *,
    difficulty: Mapping[str, float] | None = None,
    baseline_annotations: Sequence[Annotations] = (),
    regularization: float | None = DEFAULT_REGULARIZATION,
    confidence_intervals: bool = True,
    lc_resamples: int = LC_RESAMPLES,
    seed: int = 0,
) -> dict[str, Any]:
    """All numbers for one model against the reference (AlpacaEval's keys plus 95% CIs).

    Keys: win_rate, standard_error, discrete_win_rate, n_wins, n_wins_base, n_draws, n_total,
    n_dropped, length_controlled_winrate, lc_standard_error, glm_coefficients, glm_C,
    lc_regularized, judge_bias (the judge's position consistency and P(prefers the longer) in
    this run, see `bias`), and with `confidence_intervals` `<metric>_ci_low` / `<metric>_ci_high` for
    win_rate, discrete_win_rate and length_controlled_winrate (percent, seeded bootstrap over
    annotations: BCa for the plain rates, percentile with GLM refits for LC).
    """
    table = preference_table(annotations)
    metrics: dict[str, Any] = {
        **plain_metrics(table),
        "n_dropped": table.n_dropped,
        "judge_bias": judge_bias(annotations),
    }
    if table.n == 0:
        metrics.update(length_controlled_winrate=math.nan, lc_standard_error=math.nan)
        return metrics
    baseline_tables = [preference_table(b) for b in baseline_annotations]
    fit = length_controlled_fit(
        table, difficulty=difficulty, baseline_tables=baseline_tables, regularization=regularization, seed=seed
    )
    metrics.update(
        length_controlled_winrate=fit.length_controlled_winrate,
        lc_standard_error=fit.lc_standard_error,
        glm_coefficients=fit.coefficients,
        glm_C=fit.C,
        lc_regularized=fit.regularized,
    )
    if confidence_intervals:
        metrics.update(_intervals(table, fit, difficulty, baseline_tables, regularization, lc_resamples, seed))
    return metrics


def _intervals(
    table, fit: LCResult, difficulty, baseline_tables, regularization, lc_resamples, seed
) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, values in (
        ("win_rate", (table.preference - 1) * 100),
        ("discrete_win_rate", discrete_scores(table) * 100),
    ):
        interval = bootstrap_mean_ci(values, seed=seed)
        out[f"{name}_ci_low"], out[f"{name}_ci_high"] = interval.low, interval.high
    if table.n >= 2:
        statistic = lc_bootstrap_statistic(table, difficulty, baseline_tables, regularization, fit.C, seed)
        interval = bootstrap_ci(
            np.arange(table.n, dtype=float), statistic, n_resamples=lc_resamples, seed=seed, method="percentile"
        )
        out["length_controlled_winrate_ci_low"], out["length_controlled_winrate_ci_high"] = interval.low, interval.high
    else:
        out["length_controlled_winrate_ci_low"] = out["length_controlled_winrate_ci_high"] = math.nan
    return out


def compute_metrics_by_model(
    annotations_by_model: Mapping[str, Annotations],
    *,
    difficulty: Mapping[str, float] | str | None = "joint",
    regularization: float | None = None,
    **options: Any,
) -> dict[str, dict[str, Any]]:
    """Metrics for several models judged against the same reference.

    `difficulty="joint"` estimates instruction difficulty from all of them together (needs two
    or more models; with one it falls back to no difficulty term). With `regularization`, each
    model's GLM is regularised towards the other models' annotations.
    """
    if difficulty == "joint":
        difficulty = estimate_instruction_difficulty(annotations_by_model) if len(annotations_by_model) >= 2 else None
    elif isinstance(difficulty, str):
        raise ValueError(f"difficulty must be 'joint', a mapping or None, not {difficulty!r}")
    results = {}
    for name, records in annotations_by_model.items():
        others = [a for other, a in annotations_by_model.items() if other != name] if regularization else []
        results[name] = compute_metrics(
            records, difficulty=difficulty, baseline_annotations=others, regularization=regularization, **options
        )
    return results


def annotate_with_glm(annotations: Annotations, fit: LCResult) -> list[dict[str, Any]]:
    """Copies of the records with the normalised `preference` and, where kept, `glm_preference`.

    Dropped records keep their fields and get `preference` NaN -> None (JSON null), so the file
    stays one record per input record.
    """
    table = preference_table(annotations)
    glm = dict(zip(table.kept_rows.tolist(), fit.glm_preference.tolist()))
    out = []
    for row, record in enumerate(annotations):
        value = normalise_preference(record.get("preference"), record.get("output_1"), record.get("output_2"))
        out.append({**record, "preference": None if math.isnan(value) else value, "glm_preference": glm.get(row)})
    return out
