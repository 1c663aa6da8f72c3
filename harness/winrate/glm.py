"""Length-controlled win rate: AlpacaEval 2's GLM, fitted on one model's annotations.

The model (no intercept), for annotation i of the model against the reference:

    logit P(model preferred) = w_len * tanh(delta_len_i / sd(delta_len))
                               + w_diff * difficulty(instruction_i) + w_model

with delta_len = len(reference) - len(model) in characters, its standard deviation (ddof 1)
taken over this model's pairs. The target is the continuous preference - 1 in [0, 1]; it is
fitted as AlpacaEval does, by duplicating every annotation into a "won" row weighted by the
preference and a "lost" row weighted by its complement, with an L1 penalty whose strength is
chosen by 5-fold cross-validation (folds over annotations) on the continuous log loss.
LC win rate = mean over the model's annotations of the fitted probability with the length term
set to zero, in percent.

Optional regularisation towards baseline annotations (AlpacaEval's `length_controlled_v1` uses
annotations of deliberately verbose/concise baselines): their rows join the fit with weight
`strength / number of baseline sets` and a zero model indicator, so they share and steady the
length and difficulty weights without touching the model term.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from .preferences import PreferenceTable

FEATURES = ("length", "difficulty", "model")
# The same grid AlpacaEval's LogisticRegressionCV searches (10 values, 1e-4 .. 1e4).
DEFAULT_CS = tuple(float(c) for c in np.logspace(-4, 4, 10))
DEFAULT_REGULARIZATION = 0.2  # AlpacaEval's lambda for length_controlled_v1
N_SPLITS = 5
_EPS = 1e-15
_MAX_NEWTON_STEPS = 100
_MAX_COORDINATE_SWEEPS = 100
_STEP_TOLERANCE = 1e-10


@dataclass(frozen=True)
class GLMData:
    """Design rows of the fit: features, target in [0, 1], sample weight, and which rows are the model's."""

    features: np.ndarray  # (n, 3): tanh length term, difficulty, model indicator
    target: np.ndarray
    weight: np.ndarray
    is_model: np.ndarray


@dataclass(frozen=True)
class LCResult:
    """A fitted length-control GLM and what it predicts for the model."""

    length_controlled_winrate: float
    lc_standard_error: float
    coefficients: dict[str, float]
    C: float
    glm_preference: np.ndarray = field(repr=False)  # per model annotation, 1 + P(model wins | no length gap)
    regularized: bool = False
    n_baseline_annotations: int = 0


def length_term(len_reference: np.ndarray, len_model: np.ndarray) -> np.ndarray:
    """tanh of the length difference standardised by its sample standard deviation (0 if none)."""
    delta = np.asarray(len_reference, dtype=float) - np.asarray(len_model, dtype=float)
    if delta.size < 2:
        return np.zeros_like(delta)
    sd = float(np.std(delta, ddof=1))
    if not math.isfinite(sd) or sd == 0:
        return np.zeros_like(delta)
    return np.tanh(delta / sd)


def difficulty_vector(instructions: Sequence[str], difficulty: Mapping[str, float] | None) -> np.ndarray:
    """Difficulty of each instruction by text (0 without a difficulty table)."""
    if difficulty is None:
        return np.zeros(len(instructions))
    missing = [text for text in instructions if text not in difficulty]
    if missing:
        raise ValueError(
            f"the difficulty table has no entry for {len(missing)} of {len(instructions)} instructions "
            f"(first: {missing[0][:60]!r}); difficulties are matched by exact instruction text: "
            "regenerate the table for these instructions or leave it out"
        )
    return np.asarray([float(difficulty[text]) for text in instructions], dtype=float)


def table_rows(
    table: PreferenceTable, difficulty: Mapping[str, float] | None, is_model: bool, weight: float
) -> GLMData:
    features = (
        np.column_stack(
            [
                length_term(table.len_reference, table.len_model),
                difficulty_vector(table.instruction, difficulty),
                np.full(table.n, 1.0 if is_model else 0.0),
            ]
        )
        if table.n
        else np.zeros((0, 3))
    )
    return GLMData(features, table.preference - 1.0, np.full(table.n, weight), np.full(table.n, is_model))


def stack(parts: Sequence[GLMData]) -> GLMData:
    return GLMData(
        np.vstack([p.features for p in parts]),
        np.concatenate([p.target for p in parts]),
        np.concatenate([p.weight for p in parts]),
        np.concatenate([p.is_model for p in parts]),
    )


def fit_coefficients(data: GLMData, C: float, seed: int = 0) -> np.ndarray:
    """L1-penalised logistic regression with a continuous target and no intercept.

    Minimises liblinear's objective ||w||_1 + C * sum_i s_i * [log(1 + e^z_i) - y_i z_i] (the
    duplicated-rows form AlpacaEval hands to scikit-learn, written directly) by proximal Newton
    steps: coordinate descent on the quadratic model, then a backtracking line search (the
    method of liblinear's newGLMNET). With three features this is a few milliseconds, which
    matters because every bootstrap resample refits. Deterministic; `seed` is kept for API
    symmetry with solvers that shuffle.
    """
    X, y, s = data.features, data.target, data.weight
    k = X.shape[1]

    def penalised(w: np.ndarray) -> float:
        z = X @ w
        return C * float(np.sum(s * (np.logaddexp(0.0, z) - y * z))) + float(np.sum(np.abs(w)))

    w = np.zeros(k)
    value = penalised(w)
    for _ in range(_MAX_NEWTON_STEPS):
        p = _sigmoid(X @ w)
        grad = C * (X.T @ (s * (p - y)))
        hess = C * ((X.T * (s * p * (1 - p))) @ X)
        step = _l1_quadratic_step(w, grad, hess)
        decrease = float(grad @ step) + float(np.sum(np.abs(w + step)) - np.sum(np.abs(w)))
        size = 1.0
        while size > 1e-10:  # Armijo backtracking on the true objective
            candidate = penalised(w + size * step)
            if candidate <= value + 0.01 * size * decrease:
                break
            size /= 2
        else:
            break
        w, value = w + size * step, candidate
        if np.max(np.abs(size * step)) < _STEP_TOLERANCE:
            break
    return w


def _l1_quadratic_step(w: np.ndarray, grad: np.ndarray, hess: np.ndarray) -> np.ndarray:
    """argmin_d grad.d + d'Hd/2 + ||w + d||_1 by cyclic coordinate descent (soft thresholding)."""
    step = np.zeros_like(w)
    for _ in range(_MAX_COORDINATE_SWEEPS):
        largest_change = 0.0
        for j in range(w.size):
            curvature = hess[j, j]
            if curvature <= 1e-12:  # a feature that is zero everywhere keeps weight 0
                new = 0.0
            else:
                centre = w[j] + step[j] - (grad[j] + hess[j] @ step) / curvature
                new = np.sign(centre) * max(abs(centre) - 1.0 / curvature, 0.0)
            largest_change = max(largest_change, abs(new - w[j] - step[j]))
            step[j] = new - w[j]
        if largest_change < _STEP_TOLERANCE:
            break
    return step


def continuous_log_loss(coef: np.ndarray, data: GLMData) -> float:
    """Weighted mean of -[y log p + (1-y) log(1-p)] with continuous y."""
    p = np.clip(_sigmoid(data.features @ coef), _EPS, 1 - _EPS)
    losses = -(data.target * np.log(p) + (1 - data.target) * np.log(1 - p))
    return float(np.sum(losses * data.weight) / np.sum(data.weight))


def choose_C(data: GLMData, Cs: Sequence[float] = DEFAULT_CS, seed: int = 0) -> float:
    """Penalty strength with the lowest cross-validated continuous log loss (folds over annotations)."""
    n = data.target.size
    if n < 2 * N_SPLITS:
        return max(Cs)  # too few annotations to cross-validate: the weakest penalty on the grid
    folds = [(np.setdiff1d(np.arange(n), test), test) for test in np.array_split(np.arange(n), N_SPLITS)]
    mean_losses = []
    for C in Cs:
        losses = [
            continuous_log_loss(fit_coefficients(_subset(data, train), C, seed), _subset(data, test))
            for train, test in folds
        ]
        mean_losses.append(np.mean(losses))
    return float(Cs[int(np.argmin(mean_losses))])


def length_controlled_fit(
    table: PreferenceTable,
    *,
    difficulty: Mapping[str, float] | None = None,
    baseline_tables: Sequence[PreferenceTable] = (),
    regularization: float | None = DEFAULT_REGULARIZATION,
    Cs: Sequence[float] = DEFAULT_CS,
    seed: int = 0,
) -> LCResult:
    """Fit the GLM on one model's cleaned annotations and predict its LC win rate.

    `baseline_tables` (cleaned annotations of other models against the same reference) are used
    only when `regularization` is a positive number; otherwise this is AlpacaEval's
    `length_controlled_noreg`.
    """
    if table.n == 0:
        raise ValueError("no usable annotations: every preference was NaN or outside [1, 2]")
    data, regularized = _training_data(table, difficulty, baseline_tables, regularization)
    C = choose_C(data, Cs, seed)
    coef = fit_coefficients(data, C, seed)
    return _predict(table, difficulty, coef, C, regularized, data.target.size - table.n)


def _training_data(table, difficulty, baseline_tables, regularization) -> tuple[GLMData, bool]:
    parts = [table_rows(table, difficulty, is_model=True, weight=1.0)]
    usable = [b for b in baseline_tables if b.n]
    regularized = bool(regularization) and bool(usable)
    if regularized:
        per_set = float(regularization) / len(usable)
        parts += [table_rows(b, difficulty, is_model=False, weight=per_set) for b in usable]
    return stack(parts), regularized


def _predict(table, difficulty, coef, C, regularized, n_baseline) -> LCResult:
    no_length = np.column_stack([np.zeros(table.n), difficulty_vector(table.instruction, difficulty), np.ones(table.n)])
    p = _sigmoid(no_length @ coef)
    sem = float(np.std(p, ddof=1) / math.sqrt(p.size)) * 100 if p.size > 1 else math.nan
    return LCResult(
        length_controlled_winrate=float(np.mean(p)) * 100,
        lc_standard_error=sem,
        coefficients=dict(zip(FEATURES, (float(c) for c in coef))),
        C=C,
        glm_preference=1.0 + p,
        regularized=regularized,
        n_baseline_annotations=n_baseline,
    )


def lc_bootstrap_statistic(
    table: PreferenceTable, difficulty, baseline_tables, regularization, C: float, seed: int = 0
):
    """A vectorised statistic for `implicit_if.statistics.bootstrap_ci` over annotation indices.

    Each resample refits the GLM at the already chosen penalty `C` (cross-validating inside every
    resample would cost 50 fits each) and returns its LC win rate; baseline rows stay fixed.
    """

    def statistic(indices: np.ndarray, axis: int = -1) -> np.ndarray:
        batch = np.atleast_2d(np.asarray(indices)).astype(int)
        out = lc_resample_winrates(table, batch, C, difficulty, baseline_tables, regularization, seed=seed)
        return out[0] if np.ndim(indices) == 1 else out

    return statistic


def lc_resample_winrates(
    table: PreferenceTable,
    index: np.ndarray,
    C: float,
    difficulty=None,
    baseline_tables: Sequence[PreferenceTable] = (),
    regularization: float | None = DEFAULT_REGULARIZATION,
    *,
    rows_of: np.ndarray | None = None,
    seed: int = 0,
) -> np.ndarray:
    """The LC win rate (percent) refitted at penalty `C` on each resample: a statistic over an index matrix.

    Row r of `index` (resamples x units) lists the units drawn by resample r. A unit is a row of
    `table` when `rows_of` is None (the CLI: `implicit-if winrate` resamples annotations); otherwise
    unit u is `table`'s row `rows_of[u]`, and -1 marks a unit the table lacks (a dropped preference),
    which leaves that resample one row shorter, as a NaN leaves a mean. So one index matrix over a
    board's instructions resamples every entry with the same instructions: their LC win rates, seed
    means and differences are paired. Baseline rows stay fixed, as in `lc_bootstrap_statistic`.
    """
    index = np.atleast_2d(np.asarray(index, dtype=int))
    values = np.empty(index.shape[0])
    for r, units in enumerate(index):
        rows = units if rows_of is None else rows_of[units]
        rows = rows[rows >= 0]
        if rows.size == 0:
            values[r] = math.nan
            continue
        sub = _subset_table(table, rows)
        data, regularized = _training_data(sub, difficulty, baseline_tables, regularization)
        coef = fit_coefficients(data, C, seed)
        values[r] = _predict(sub, difficulty, coef, C, regularized, 0).length_controlled_winrate
    return values


def _subset(data: GLMData, rows: np.ndarray) -> GLMData:
    return GLMData(data.features[rows], data.target[rows], data.weight[rows], data.is_model[rows])


def _subset_table(table: PreferenceTable, rows: np.ndarray) -> PreferenceTable:
    return PreferenceTable(
        preference=table.preference[rows],
        is_draw=table.is_draw[rows],
        instruction=tuple(table.instruction[i] for i in rows),
        len_reference=table.len_reference[rows],
        len_model=table.len_model[rows],
        kept_rows=table.kept_rows[rows],
        n_dropped=0,
    )


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -z))
