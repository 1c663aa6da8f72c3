"""Plain (not length-controlled) win rates, exactly as AlpacaEval 2 defines them.

- win rate: mean of `preference - 1`, in percent (a weighted judge's continuous preference
  counts fractionally);
- standard error: of that mean, sample standard deviation (ddof 1) over sqrt(n), in percent;
- discrete win rate: each preference rounded to a win or a loss, exact draws counted as half.
"""

from __future__ import annotations

import math

import numpy as np

from .preferences import PreferenceTable


def discrete_scores(table: PreferenceTable) -> np.ndarray:
    """Per-annotation 0 / 0.5 / 1: the model lost, drew or won (rounding a continuous preference)."""
    return np.where(table.preference > 1.5, 1.0, np.where(table.preference < 1.5, 0.0, 0.5))


def win_rate_percent(wins: np.ndarray) -> float:
    """Mean of `preference - 1` in percent over the finite values (NaN marks a dropped preference)."""
    kept = wins[np.isfinite(wins)]
    return float(np.mean(kept)) * 100 if kept.size else math.nan


def plain_metrics(table: PreferenceTable) -> dict[str, float | int]:
    """AlpacaEval 2's head-to-head numbers for one model against the reference."""
    wins = table.preference - 1.0
    n = table.n
    if n == 0:
        nan = math.nan
        return {
            "win_rate": nan,
            "standard_error": nan,
            "discrete_win_rate": nan,
            "n_wins": 0,
            "n_wins_base": 0,
            "n_draws": 0,
            "n_total": 0,
        }
    standard_error = float(np.std(wins, ddof=1) / math.sqrt(n)) * 100 if n > 1 else math.nan
    return {
        "win_rate": win_rate_percent(wins),
        "standard_error": standard_error,
        "discrete_win_rate": float(np.mean(discrete_scores(table))) * 100,
        "n_wins": int(np.sum(wins > 0.5)),
        "n_wins_base": int(np.sum(wins < 0.5)),
        "n_draws": int(np.sum(table.is_draw)),
        "n_total": n,
    }
