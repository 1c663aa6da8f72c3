"""The vectorised paired bootstrap must give scipy.stats.bootstrap's intervals, row by row."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import bootstrap

from implicit_if.statistics import (
    bootstrap_indices,
    bootstrap_mean_ci,
    paired_bootstrap_means,
    resampled_statistics,
    upper_bound_ranks,
)

RESAMPLES = 2_000  # enough to compare implementations; the boards use 10,000


def scipy_interval(values: np.ndarray, statistic=np.mean, method: str = "BCa") -> tuple[float, float]:
    result = bootstrap(
        (values,),
        statistic,
        n_resamples=RESAMPLES,
        method=method,
        vectorized=True,
        axis=-1,
        random_state=np.random.default_rng(0),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def win_like(rng: np.random.Generator, rows: int, n: int) -> np.ndarray:
    """Per-instruction preference - 1: losses, wins and draws (exact binary fractions)."""
    return rng.choice([0.0, 0.5, 1.0], size=(rows, n), p=[0.5, 0.1, 0.4])


def test_each_row_matches_scipy_bca_exactly_on_win_values():
    matrix = win_like(np.random.default_rng(3), rows=4, n=120)
    boot = paired_bootstrap_means(matrix, n_resamples=RESAMPLES, seed=0)
    for row, interval in zip(matrix, boot.intervals()):
        low, high = scipy_interval(row)
        assert interval.method == "BCa"
        assert interval.low == pytest.approx(low, abs=1e-9)
        assert interval.high == pytest.approx(high, abs=1e-9)
        assert interval.estimate == pytest.approx(row.mean())


def test_matches_the_shared_single_metric_helper():
    row = win_like(np.random.default_rng(4), rows=1, n=90)[0]
    board = paired_bootstrap_means(row[None, :]).interval(0)  # defaults: 10,000 resamples, seed 0
    single = bootstrap_mean_ci(row)
    assert (board.low, board.high) == pytest.approx((single.low, single.high), abs=1e-9)


def test_continuous_values_and_percentile_method_match_scipy():
    matrix = np.random.default_rng(5).normal(size=(3, 70))
    for method in ("BCa", "percentile"):
        boot = paired_bootstrap_means(matrix, n_resamples=RESAMPLES, seed=0, method=method)
        for row, interval in zip(matrix, boot.intervals()):
            low, high = scipy_interval(row, method=method.lower())
            assert (interval.low, interval.high) == pytest.approx((low, high), abs=1e-6)


def test_missing_values_behave_like_scipy_with_nanmean():
    matrix = win_like(np.random.default_rng(6), rows=2, n=100)
    matrix[0, [3, 50, 77]] = np.nan
    boot = paired_bootstrap_means(matrix, n_resamples=RESAMPLES, seed=0)
    low, high = scipy_interval(matrix[0], statistic=np.nanmean)
    assert boot.estimate[0] == pytest.approx(np.nanmean(matrix[0]))
    assert (boot.interval(0).low, boot.interval(0).high) == pytest.approx((low, high), abs=1e-9)


def test_combined_rows_are_paired_differences():
    rng = np.random.default_rng(7)
    a = win_like(rng, 1, 150)[0]
    b = np.clip(a + rng.choice([0.0, -0.5], size=150, p=[0.8, 0.2]), 0, 1)  # b is a, slightly worse
    boot = paired_bootstrap_means(np.vstack([a, b]), n_resamples=RESAMPLES, seed=0)
    diff = boot.combine([1.0, -1.0]).interval(0)
    low, high = scipy_interval(a - b)
    assert (diff.low, diff.high) == pytest.approx((low, high), abs=1e-9)
    # Pairing matters: the paired interval is far narrower than unpaired intervals suggest.
    unpaired = boot.interval(0).high - boot.interval(0).low + boot.interval(1).high - boot.interval(1).low
    assert diff.high - diff.low < unpaired / 2
    assert diff.low > 0  # a is better on every resample of this data


def test_bootstrap_indices_are_the_draws_scipy_hands_the_statistic():
    n, seen = 37, []

    def statistic(values, axis=-1):
        seen.append(np.array(values, copy=True))
        return np.mean(values, axis=axis)

    bootstrap(
        (np.arange(n, dtype=float),),
        statistic,
        n_resamples=250,
        method="percentile",
        vectorized=True,
        axis=-1,
        random_state=np.random.default_rng(4),
    )
    (drawn,) = [values for values in seen if values.shape == (250, n)]
    assert np.array_equal(drawn.astype(int), bootstrap_indices(n, 250, 4))
    assert not np.array_equal(bootstrap_indices(n, 250, 4), bootstrap_indices(n, 250, 5))


def test_statistics_evaluated_on_shared_resamples_give_scipys_percentile_interval_and_pair():
    # A statistic that is not a mean (the median; the board's is the refitted LC win rate).
    rng = np.random.default_rng(9)
    a = rng.normal(size=60)
    b = a - 0.2 + rng.normal(scale=0.02, size=60)  # b is a, slightly worse
    index = bootstrap_indices(60, RESAMPLES, 0)
    medians = np.vstack([np.median(x[index], axis=1) for x in (a, b)])
    boot = resampled_statistics([np.median(a), np.median(b)], medians)
    for x, interval in zip((a, b), boot.intervals()):
        assert interval.method == "percentile"
        assert (interval.low, interval.high) == pytest.approx(
            scipy_interval(x, statistic=np.median, method="percentile"), abs=1e-9
        )
    diff = boot.combine([1.0, -1.0]).interval(0)
    assert diff.estimate == pytest.approx(np.median(a) - np.median(b))
    assert (diff.low, diff.high) == pytest.approx(tuple(np.quantile(medians[0] - medians[1], [0.025, 0.975])))
    assert diff.low > 0  # paired: a's median beats b's on nearly every resample, though their intervals overlap
    assert boot.interval(1).high > boot.interval(0).low
    with pytest.raises(ValueError, match="one estimate per row"):
        resampled_statistics([0.0], medians)


def test_constant_rows_are_degenerate_not_nan():
    boot = paired_bootstrap_means(np.array([[1.0] * 20, [0.0, 1.0] * 10]), n_resamples=500)
    constant, varied = boot.intervals()
    assert (constant.low, constant.high, constant.method) == (1.0, 1.0, "degenerate")
    assert varied.low < 0.5 < varied.high


def test_same_seed_same_intervals_other_seed_different():
    matrix = win_like(np.random.default_rng(8), 2, 80)
    first = paired_bootstrap_means(matrix, n_resamples=500, seed=1).intervals()
    again = paired_bootstrap_means(matrix, n_resamples=500, seed=1).intervals()
    other = paired_bootstrap_means(matrix, n_resamples=500, seed=2).intervals()
    assert first == again
    assert first != other


def test_rejects_bad_input():
    with pytest.raises(ValueError, match="2-D"):
        paired_bootstrap_means(np.empty((2, 0)))
    with pytest.raises(ValueError, match="method"):
        paired_bootstrap_means(np.ones((1, 3)), method="basic")


def test_upper_bound_ranks_tie_overlapping_intervals():
    # A clearly best; B and C overlap each other; D is below all of them.
    low = [60.0, 40.0, 38.0, 10.0]
    high = [70.0, 50.0, 48.0, 20.0]
    assert upper_bound_ranks(low, high) == [1, 2, 2, 4]
    # B overlaps A: both rank 1, and C (below A, overlapping B) ranks 2.
    assert upper_bound_ranks([50, 45, 30], [60, 55, 48]) == [1, 1, 2]
