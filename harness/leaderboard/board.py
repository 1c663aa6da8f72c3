"""From checked entries to the board: systems, seed aggregation, intervals, paired comparisons, ranks.

The result is plain data (`dict`, JSON-ready, floats rounded) from which every renderer draws, so
the Markdown, CSV, HTML and PNG can never disagree. Conventions:

- all resampling is over instructions, shared by every entry of a board (`paired_bootstrap_means`),
  so differences between entries are paired bootstraps;
- the LC win rate (the headline, AlpacaEval 2's length-controlled GLM) is not a mean: its interval is
  the CLI's (`implicit-if winrate`), the GLM refitted on each of 300 resamples and their percentile
  interval, with one matrix of resampled instructions (`bootstrap_indices`) for every entry of the
  board, so LC seed means and LC differences are paired too;
- a *system* is the set of entries that differ only by seed: its number is the mean over seeds
  with the standard deviation across seeds (ddof 1, as the study reports), and its interval is the
  bootstrap interval of that seed mean (the pooled CI);
- `vs_reference`: the win rate minus 50, the reference's own rate against itself; the judge sees
  both answers to each instruction, so this comparison is paired by construction;
- the ranking metric (`ranked_by`): the LC win rate when every system with annotations has its LC
  interval; otherwise the plain win rate; on a board without annotations, ranking accuracy;
- `vs_next`: the paired difference in the ranking metric to the next system down the board;
- `rank`: Chatbot Arena's upper-bound rank on the ranking metric: 1 + the number of systems whose
  lower bound lies above this system's upper bound, so systems with overlapping intervals tie.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path
from typing import Any

import numpy as np

from implicit_if import statistics, winrate
from implicit_if.leakage import leakage_rate
from implicit_if.statistics import (
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    Interval,
    PairedBootstrap,
    bootstrap_indices,
    paired_bootstrap_means,
    resampled_statistics,
    upper_bound_ranks,
)
from implicit_if.winrate import LC_RESAMPLES, length_controlled_resamples

from .check import Entry
from .parallel import parallel_map
from .recompute_cache import cached, package_source_digest

BOARD_SCHEMA_VERSION = 1
DIGITS = 4  # percent with 4 decimals: stable text, far below any meaningful difference
RANK_METRICS = ("lc_win_rate", "win_rate", "ranking_accuracy")  # the first that every ranked system has
Key = tuple[str, str]  # (entry name, metric): a row of a bootstrap
Bootstrap = tuple[PairedBootstrap | None, dict[Key, int]]  # the bootstrap and the row of each key
Pooled = dict[str, tuple[np.ndarray, Interval]]  # system -> (row weights averaging its seeds, their interval)


@dataclass(frozen=True)
class BootstrapSettings:
    n_resamples: int = DEFAULT_RESAMPLES
    seed: int = DEFAULT_SEED
    confidence: float = 0.95
    method: str = "BCa"
    lc_resamples: int = LC_RESAMPLES  # each refits the GLM: as many as `implicit-if winrate` takes


def _num(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    rounded = round(float(value), DIGITS)
    return 0.0 if rounded == 0 else rounded  # no "-0.0"


def _summary(per_seed: list[float], interval: Interval | None) -> dict[str, Any]:
    """Mean +- std over seeds (percent) and the pooled interval of the seed mean."""
    values = np.asarray(per_seed, dtype=float)
    return {
        "mean": _num(float(values.mean())),
        "std": _num(float(values.std(ddof=1))) if values.size > 1 else None,
        "per_seed": [_num(v) for v in values],
        "ci_low": _num(interval.low * 100) if interval else None,
        "ci_high": _num(interval.high * 100) if interval else None,
        "ci_method": interval.method if interval else None,
    }


def _difference(interval: Interval, offset: float = 0.0) -> dict[str, Any]:
    low, high = (interval.low - offset) * 100, (interval.high - offset) * 100
    return {
        "difference": _num((interval.estimate - offset) * 100),
        "ci_low": _num(low),
        "ci_high": _num(high),
        "significant": bool(low > 0 or high < 0),
    }


def build_board_data(entries: list[Entry], settings: BootstrapSettings = BootstrapSettings()) -> dict[str, Any]:
    """The whole leaderboard as JSON-ready data: one board per evaluation set."""
    ordered = sorted(entries, key=lambda e: (e.board_key, e.name))
    return {
        "schema_version": BOARD_SCHEMA_VERSION,
        "statistics": {
            "unit": "instruction",
            "method": settings.method,
            "n_resamples": settings.n_resamples,
            "seed": settings.seed,
            "confidence": settings.confidence,
            "seeds": "mean and std (ddof 1) over seeds; interval of the seed mean",
            "rank": "1 + number of systems whose lower bound exceeds this system's upper bound",
            "lc_win_rate": {
                "method": "percentile",
                "n_resamples": settings.lc_resamples,
                "seed": settings.seed,
                "refit": "GLM refitted on each resample at the penalty chosen on the data (implicit-if winrate)",
            },
            "ranked_by": "lc_win_rate when every system with annotations has its LC interval, else win_rate; "
            "ranking_accuracy on boards without annotations",
            "vs_next": "paired difference in the ranking metric to the next row, on the same resampled instructions",
        },
        "boards": [_board(key, list(group), settings) for key, group in groupby(ordered, lambda e: e.board_key)],
    }


def _board(key: tuple[str, str, str], entries: list[Entry], settings: BootstrapSettings) -> dict[str, Any]:
    name, dataset, source = key
    by_system = sorted(entries, key=lambda e: (e.metadata.system_name, e.metadata.seed))
    systems = {system: list(seeds) for system, seeds in groupby(by_system, lambda e: e.metadata.system_name)}
    n = entries[0].n_instructions
    # Output-level metrics share the evaluation set's columns: one bootstrap for all of them.
    output = {
        (e.name, metric): values
        for e in entries
        for metric, values in (("win_rate", e.win), ("leak_any", e.leakage.get("any")))
        if values is not None
    }
    ids = sorted({i for e in entries if e.ranking for i in e.ranking})
    ranking = {(e.name, "ranking_accuracy"): [e.ranking.get(i, np.nan) for i in ids] for e in entries if e.ranking}
    output_boot = _mean_bootstrap(output, settings)
    bootstraps = {
        "win_rate": output_boot,
        "leak_any": output_boot,
        "ranking_accuracy": _mean_bootstrap(ranking, settings),
        "lc_win_rate": _lc_bootstrap(entries, n, settings),
    }
    pooled = {metric: _pooled(boot, rows, metric, systems) for metric, (boot, rows) in bootstraps.items()}
    records = [
        _record(system, seeds, {metric: p[system][1] for metric, p in pooled.items() if system in p})
        for system, seeds in systems.items()
    ]

    rank_by = rank_metric(records)
    ranked = sorted((r for r in records if r[rank_by] is not None), key=lambda r: (-r[rank_by]["mean"], r["system"]))
    lows, highs = [r[rank_by]["ci_low"] for r in ranked], [r[rank_by]["ci_high"] for r in ranked]
    for record, rank in zip(ranked, upper_bound_ranks(lows, highs)):
        record["rank"] = rank
    boot, weights = bootstraps[rank_by][0], pooled[rank_by]
    pairs = list(zip(ranked, ranked[1:]))
    if pairs and boot is not None:  # paired differences to the next row, in one product
        differences = boot.combine(np.vstack([weights[a["system"]][0] - weights[b["system"]][0] for a, b in pairs]))
        for (above, below), interval in zip(pairs, differences.intervals()):
            above["vs_next"] = {"system": below["system"], "metric": rank_by, **_difference(interval)}
    named = {"board": name} if name else {}  # the main board of an evaluation set has no name
    return {
        **named,
        "evaluation_set": {"dataset": dataset, "source": source},
        "n_instructions": n,
        "ranked_by": rank_by,
        "systems": ranked + [r for r in records if r[rank_by] is None],  # records are in system order
    }


def _mean_bootstrap(rows: dict[Key, Any], settings: BootstrapSettings) -> Bootstrap:
    """One paired bootstrap of every row's mean (rows sharing their columns), and where each row went."""
    if not rows:
        return None, {}
    boot = paired_bootstrap_means(
        np.vstack(list(rows.values())),
        n_resamples=settings.n_resamples,
        seed=settings.seed,
        confidence=settings.confidence,
        method=settings.method,
    )
    return boot, {key: row for row, key in enumerate(rows)}


def _pooled(boot: PairedBootstrap | None, rows: dict[Key, int], metric: str, systems: dict[str, list[Entry]]) -> Pooled:
    """Each system's seed mean of `metric` and its interval, all systems in one matrix product; a
    system is left out unless every seed has the metric."""
    weights = {}
    for system, seeds in systems.items():
        keys = [(e.name, metric) for e in seeds]
        if all(k in rows for k in keys):
            weights[system] = np.zeros(len(rows))
            weights[system][[rows[k] for k in keys]] = 1 / len(keys)
    if boot is None or not weights:
        return {}
    combined = boot.combine(np.vstack(list(weights.values())))
    return {system: (w, interval) for (system, w), interval in zip(weights.items(), combined.intervals())}


def _record(system: str, seeds: list[Entry], intervals: dict[str, Interval]) -> dict[str, Any]:
    """One row of the board, before ranking: what the system is and its numbers over seeds."""
    first = seeds[0].metadata
    per_seed = [e.recomputed() for e in seeds]  # the numbers the claims are checked against

    def summary(metric: str) -> dict[str, Any] | None:
        values = [numbers[metric] for numbers in per_seed]
        # LC may lack an interval (too few annotations to resample), never a value on some seed
        shown = all(v is not None for v in values) and (metric in intervals or metric == "lc_win_rate")
        return _summary(values, intervals.get(metric)) if shown else None  # type: ignore[arg-type]

    win, leak = intervals.get("win_rate"), intervals.get("leak_any")
    detectors = sorted(set.intersection(*(set(e.leakage) for e in seeds)) - {"any"})
    return {
        "system": system,
        "entries": [e.name for e in seeds],
        "seeds": [e.metadata.seed for e in seeds],
        "models": sorted({f"{e.metadata.model.id}@{e.metadata.model.revision}" for e in seeds}),
        "base_model": first.model.base_model,
        "adaptation": first.adaptation,
        "chat_format": first.chat_format,
        "decoding": first.decoding.model_dump(),
        "judge": first.judge.name if first.judge else None,
        "judge_validation": judge_validation_accuracy(seeds),
        "judge_bias": pooled_bias([e.judge_bias for e in seeds]),
        "reference": first.reference.generator if first.reference else None,
        "license": sorted({e.metadata.license for e in seeds}),
        "n_empty_outputs": sum(e.n_empty_outputs for e in seeds),
        "n_dropped_preferences": sum(e.n_dropped_preferences for e in seeds),
        "flags": sorted({f for e in seeds for f in e.flags}),
        "self_reported": sorted({what for e in seeds for what in e.self_reported}),
        **{metric: summary(metric) for metric in ("win_rate", "lc_win_rate", "ranking_accuracy")},
        "vs_reference": _difference(win, offset=0.5) if win else None,
        "leakage_any": _summary([leakage_rate(e.leakage["any"]) * 100 for e in seeds], leak) if leak else None,
        "leakage": {d: _num(float(np.mean([n["leakage"][d] for n in per_seed]))) for d in detectors} if leak else {},
        "rank": None,  # set for the ranked systems
        "vs_next": None,  # set for every ranked system but the last
    }


def rank_metric(records: list[dict[str, Any]]) -> str:
    """The board's ranking metric: LC when every system with annotations has its LC interval (a
    system without annotations, such as the reference itself, is unranked either way); otherwise the
    first of RANK_METRICS that some system has."""
    judged = [r for r in records if r["win_rate"] is not None]
    if judged and all(r["lc_win_rate"] is not None and r["lc_win_rate"]["ci_low"] is not None for r in judged):
        return "lc_win_rate"
    return next((m for m in RANK_METRICS[1:] if any(r[m] is not None for r in records)), RANK_METRICS[1])


def _lc_bootstrap(entries: list[Entry], n: int, settings: BootstrapSettings) -> Bootstrap:
    """Every entry's LC win rate on the same resampled instructions, the GLM refitted on each resample.

    One row per entry (fractions, like the other metrics), so `combine` pools seeds and pairs
    differences. Entries without an LC number, or with fewer than two usable annotations (the CLI
    gives no interval then either), get no row.
    """
    usable = [e for e in entries if e.lc_table is not None and e.lc_win_rate is not None and e.lc_table.n >= 2]
    if not usable:
        return None, {}
    index = bootstrap_indices(n, settings.lc_resamples, settings.seed)
    code = [package_source_digest(winrate), Path(statistics.__file__).read_bytes(), Path(__file__).read_bytes()]
    # Each entry's values do not depend on the others, so a board of many entries spreads over the cores.
    results = parallel_map(lambda entry: _lc_resamples(entry, n, index, settings, code), usable)
    estimates, distributions = zip(*results)
    boot = resampled_statistics(
        np.asarray(estimates) / 100, np.vstack(distributions) / 100, confidence=settings.confidence
    )
    return boot, {(e.name, "lc_win_rate"): row for row, e in enumerate(usable)}


def _lc_resamples(
    entry: Entry, n: int, index: np.ndarray, settings: BootstrapSettings, code: list[bytes]
) -> tuple[float, np.ndarray]:
    """(LC win rate, its value on each resample), in percent; cached by the annotations, the resamples
    and the computing code's source, like the entry's own LC fit."""
    table, positions = entry.lc_table, entry.lc_positions
    assert table is not None and positions is not None
    rows_of = np.full(n, -1, dtype=np.int64)  # instruction -> the entry's annotation row (-1: none)
    placed = (positions >= 0) & (positions < n)
    rows_of[positions[placed]] = np.flatnonzero(placed)

    def compute() -> dict[str, Any]:
        fit, values = length_controlled_resamples(table, index, rows_of=rows_of)
        return {"estimate": fit.length_controlled_winrate, "resamples": values.tolist()}

    inputs = [
        table.preference.tobytes(),
        table.len_reference.tobytes(),
        table.len_model.tobytes(),
        "\0".join(table.instruction).encode(),
        rows_of.tobytes(),
        f"{n} {settings.lc_resamples} {settings.seed}".encode(),
        *code,
    ]
    value = cached("lc-resamples", inputs, compute)
    return float(value["estimate"]), np.asarray(value["resamples"], dtype=float)


def pooled_bias(per_seed: list[dict]) -> dict[str, float | int | None]:
    """The judge's bias figures over all seeds of a system (count-weighted, as if one run)."""
    out: dict[str, float | int | None] = {}
    for value, count in (("position_consistency", "n_both_orders"), ("p_prefers_longer", "n_length_differs")):
        pairs = [(b[value], b[count]) for b in per_seed if b.get(value) is not None and b.get(count)]
        total = sum(n for _, n in pairs)
        out[value] = round(sum(v * n for v, n in pairs) / total, 4) if total else None
        out[count] = total
    return out


def judge_validation_accuracy(seeds: list) -> float | None:
    """Held-out validation accuracy (percent) of the judge whose identity every seed's annotations
    name (`judge_config`), when it is a validated judge; None otherwise."""
    from ..judging.validation_results import held_out_accuracy

    configs = {config for e in seeds for config in e.judge_configs}
    return held_out_accuracy(configs.pop()) if len(configs) == 1 else None
