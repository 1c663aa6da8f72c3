"""Uncertainty in one place: bootstrap and binomial intervals shared by every metric and the boards.

All resampling is over *instructions* (the unit the evaluation set samples), seeded, and done
by scipy.stats.bootstrap (vectorised; BCa by default).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_RESAMPLES = 10_000
DEFAULT_SEED = 0


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float
    confidence: float = 0.95
    method: str = "BCa"

    def as_dict(self, prefix: str = "") -> dict[str, float]:
        return {f"{prefix}estimate": self.estimate, f"{prefix}ci_low": self.low, f"{prefix}ci_high": self.high}


def bootstrap_mean_ci(
    values: Sequence[float] | np.ndarray,
    *,
    confidence: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    method: str = "BCa",
) -> Interval:
    """CI of the mean of per-instruction values (pass per-instruction means to resample clusters)."""
    return bootstrap_ci(values, np.mean, confidence=confidence, n_resamples=n_resamples, seed=seed, method=method)


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    statistic: Callable[..., np.ndarray],
    *,
    confidence: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    method: str = "BCa",
) -> Interval:
    """scipy's bootstrap around a vectorised statistic (called with `axis=-1`)."""
    from scipy.stats import bootstrap

    data = np.asarray(values, dtype=float)
    if data.ndim != 1 or data.size == 0:
        raise ValueError("bootstrap needs a non-empty 1-D array of per-instruction values")
    estimate = float(statistic(data, axis=-1))
    if data.size < 2 or np.all(data == data[0]):
        # No spread: every resample gives the same value (BCa would divide by zero).
        return Interval(estimate, estimate, estimate, confidence, "degenerate")
    result = bootstrap(
        (data,),
        statistic,
        confidence_level=confidence,
        n_resamples=n_resamples,
        method=method,
        random_state=np.random.default_rng(seed),
        vectorized=True,
        axis=-1,
    )
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    if not (np.isfinite(low) and np.isfinite(high)):  # BCa can fail on tiny, lumpy samples
        result = bootstrap(
            (data,),
            statistic,
            confidence_level=confidence,
            n_resamples=n_resamples,
            method="percentile",
            random_state=np.random.default_rng(seed),
            vectorized=True,
            axis=-1,
        )
        low, high, method = float(result.confidence_interval.low), float(result.confidence_interval.high), "percentile"
    return Interval(estimate, low, high, confidence, method)


def wilson_interval(successes: int, total: int, confidence: float = 0.95) -> Interval:
    """Wilson score interval for a proportion (well-behaved at 0 and 1, unlike the normal one), as
    scipy computes it (`binomtest(...).proportion_ci(method="wilson")`)."""
    from scipy.stats import binomtest

    if total <= 0:
        raise ValueError("wilson_interval needs total > 0")
    if not 0 <= successes <= total:
        raise ValueError("successes must lie between 0 and total")
    interval = binomtest(successes, total).proportion_ci(confidence_level=confidence, method="wilson")
    return Interval(successes / total, float(interval.low), float(interval.high), confidence, "wilson")


@dataclass(frozen=True)
class PairedBootstrap:
    """Bootstrap of several rows' means, every row resampled with the *same* instructions.

    Sharing the resamples makes every comparison paired: a difference of two rows, or the average
    of a system's seeds, is a linear combination whose bootstrap distribution is the same
    combination of the rows' distributions (`combine`). Intervals follow scipy.stats.bootstrap
    exactly (same index draws for the same seed, same BCa formulas), computed by one matrix
    product instead of materialising every resample.
    """

    estimate: np.ndarray  # (rows,) the statistic on the data
    distribution: np.ndarray  # (rows, n_resamples)
    jackknife: np.ndarray  # (rows, n_columns) leave-one-instruction-out statistics, for BCa
    confidence: float = 0.95
    method: str = "BCa"

    def combine(self, weights: np.ndarray) -> PairedBootstrap:
        """Rows of `weights @ statistics`: e.g. [1, -1] is a paired difference, [.5, .5] a pooled mean."""
        w = np.atleast_2d(np.asarray(weights, dtype=float))
        return PairedBootstrap(
            _stable(w @ self.estimate),
            _stable(w @ self.distribution),
            _stable(w @ self.jackknife),
            self.confidence,
            self.method,
        )

    def intervals(self) -> list[Interval]:
        return [self.interval(row) for row in range(self.estimate.shape[0])]

    def interval(self, row: int) -> Interval:
        estimate, dist = float(self.estimate[row]), self.distribution[row]
        dist = dist[np.isfinite(dist)]
        if dist.size == 0 or dist.min() == dist.max():
            return Interval(estimate, estimate, estimate, self.confidence, "degenerate")
        alpha = (1 - self.confidence) / 2
        method = self.method
        probabilities = np.array([alpha, 1 - alpha])
        if method.lower() == "bca":
            probabilities = _bca_probabilities(estimate, dist, self.jackknife[row], alpha)
            if not np.all(np.isfinite(probabilities)):  # as bootstrap_ci: fall back when BCa fails
                probabilities, method = np.array([alpha, 1 - alpha]), "percentile"
        low, high = np.quantile(dist, probabilities)
        return Interval(estimate, float(low), float(high), self.confidence, method)


def paired_bootstrap_means(
    matrix: Sequence[Sequence[float]] | np.ndarray,
    *,
    confidence: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    method: str = "BCa",
    chunk: int = 1_000,
) -> PairedBootstrap:
    """Bootstrap the mean of each row of `matrix` (rows x instructions), resampling instructions.

    NaN marks a missing value (the row's mean then ignores it, as np.nanmean). Each resample is
    turned into per-instruction counts, so a chunk of resamples for all rows is one matrix product.
    A row's interval equals `bootstrap_mean_ci(row, seed=seed)` for rows without NaN.
    """
    values = np.atleast_2d(np.asarray(matrix, dtype=float))
    if values.ndim != 2 or values.shape[1] == 0:
        raise ValueError("paired_bootstrap_means needs a 2-D (rows x instructions) matrix with columns")
    if method.lower() not in {"bca", "percentile"}:
        raise ValueError(f"method must be 'BCa' or 'percentile', not {method!r}")
    present = np.isfinite(values)
    filled = np.where(present, values, 0.0)
    n = values.shape[1]
    totals, counts = filled.sum(axis=1), present.sum(axis=1).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        estimate = totals / counts
        # Leave instruction i out: only rows where it is present change.
        jackknife = np.where(present, (totals[:, None] - filled) / (counts[:, None] - 1), estimate[:, None])
    rng = np.random.default_rng(seed)
    distribution = np.empty((values.shape[0], n_resamples))
    gappy = np.flatnonzero(~present.all(axis=1))  # only these rows need per-resample denominators
    for start in range(0, n_resamples, chunk):
        rows = min(chunk, n_resamples - start)
        # Same draws, in the same order, as scipy.stats.bootstrap's resampling.
        index = rng.integers(0, n, (rows, n))
        weights = np.bincount((index + n * np.arange(rows)[:, None]).ravel(), minlength=rows * n)
        weights = weights.reshape(rows, n).astype(float)
        sums = (weights @ filled.T).T
        denominators = np.full_like(sums, float(n))
        if gappy.size:
            denominators[gappy] = (weights @ present[gappy].T.astype(float)).T
        with np.errstate(invalid="ignore", divide="ignore"):
            distribution[:, start : start + rows] = sums / denominators
    return PairedBootstrap(_stable(estimate), _stable(distribution), _stable(jackknife), confidence, method)


def bootstrap_indices(n: int, n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> np.ndarray:
    """The (n_resamples, n) matrix of instruction indices scipy.stats.bootstrap draws with this seed (one batch).

    Hand the same matrix to every row's statistic and all their resamples share instructions: the
    way to pair a statistic that is not a mean (the LC win rate refits its GLM on each resample).
    """
    return np.random.default_rng(seed).integers(0, n, (n_resamples, n))


def resampled_statistics(
    estimate: Sequence[float] | np.ndarray,
    distribution: Sequence[Sequence[float]] | np.ndarray,
    *,
    confidence: float = 0.95,
) -> PairedBootstrap:
    """Percentile intervals of statistics already evaluated on shared resamples (rows x resamples).

    For statistics that `paired_bootstrap_means` cannot compute (not a mean), evaluated on the rows of
    one `bootstrap_indices` matrix; a row's interval equals scipy.stats.bootstrap's percentile interval
    for that seed, and `combine` pools seeds and takes paired differences as for means.
    """
    values = np.atleast_2d(np.asarray(distribution, dtype=float))
    point = np.atleast_1d(np.asarray(estimate, dtype=float))
    if point.shape != (values.shape[0],):
        raise ValueError("resampled_statistics needs one estimate per row of the distribution")
    no_jackknife = np.full((values.shape[0], 1), np.nan)  # only BCa needs it
    return PairedBootstrap(_stable(point), _stable(values), no_jackknife, confidence, "percentile")


def upper_bound_ranks(low: Sequence[float], high: Sequence[float]) -> list[int]:
    """Chatbot Arena's rank: 1 + the number of rows whose lower bound exceeds this row's upper bound.

    Rows whose intervals overlap share a rank, so a rank never claims more than the data show.
    """
    lows, highs = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
    return [int(1 + np.sum(lows > h)) for h in highs]


def _stable(values: np.ndarray) -> np.ndarray:
    # Round away the last bits that depend on summation order (BLAS threads), so counting ties in
    # the bootstrap distribution, and hence the intervals, is the same on every machine.
    return np.round(values, 12)


def _bca_probabilities(estimate: float, dist: np.ndarray, jackknife: np.ndarray, alpha: float) -> np.ndarray:
    """The BCa quantile levels of scipy.stats.bootstrap (Efron & Tibshirani 14.3, 15.36)."""
    from scipy.special import ndtr, ndtri

    # Resamples that equal the estimate in exact arithmetic count as ties even when summation order
    # left them a few ulps apart (means of 0/0.5/1 values tie often).
    tolerance = 1e-9 * max(1.0, abs(estimate))
    below, at_most = np.count_nonzero(dist < estimate - tolerance), np.count_nonzero(dist <= estimate + tolerance)
    z0 = ndtri((below + at_most) / (2 * dist.size))
    jack = jackknife[np.isfinite(jackknife)]
    k = float(jack.size)
    u = (k - 1) * (jack.mean() - jack)
    with np.errstate(invalid="ignore", divide="ignore"):
        a = (np.sum(u**3) / k**3) / (np.sum(u**2) / k**2) ** 1.5 / 6
    z = np.array([ndtri(alpha), -ndtri(alpha)])
    return ndtr(z0 + (z0 + z) / (1 - a * (z0 + z)))
