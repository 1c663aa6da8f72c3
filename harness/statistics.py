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
        result = bootstrap((data,), statistic, confidence_level=confidence, n_resamples=n_resamples,
                           method="percentile", random_state=np.random.default_rng(seed), vectorized=True, axis=-1)
        low, high, method = float(result.confidence_interval.low), float(result.confidence_interval.high), "percentile"
    return Interval(estimate, low, high, confidence, method)


def wilson_interval(successes: int, total: int, confidence: float = 0.95) -> Interval:
    """Wilson score interval for a proportion (well-behaved at 0 and 1, unlike the normal one)."""
    from scipy.stats import norm

    if total <= 0:
        raise ValueError("wilson_interval needs total > 0")
    if not 0 <= successes <= total:
        raise ValueError("successes must lie between 0 and total")
    z = float(norm.ppf(0.5 + confidence / 2))
    p = successes / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * np.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return Interval(p, float(max(0.0, centre - half)), float(min(1.0, centre + half)), confidence, "wilson")
