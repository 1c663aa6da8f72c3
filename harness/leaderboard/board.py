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
from collections import defaultdict
from dataclasses import dataclass
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
    by_set: dict[tuple[str, str, str], list[Entry]] = defaultdict(list)
    for entry in entries:
        by_set[entry.board_key].append(entry)
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
        "boards": [_board(key, sorted(group, key=lambda e: e.name), settings) for key, group in sorted(by_set.items())],
    }


def _board(key: tuple[str, str, str], entries: list[Entry], settings: BootstrapSettings) -> dict[str, Any]:
    name, dataset, source = key
    systems: dict[str, list[Entry]] = defaultdict(list)
    for entry in entries:
        systems[entry.metadata.system_name].append(entry)
    for seeds in systems.values():
        seeds.sort(key=lambda e: e.metadata.seed)
    names = sorted(systems)
    n = entries[0].n_instructions
    boot = dict(
        n_resamples=settings.n_resamples, seed=settings.seed, confidence=settings.confidence, method=settings.method
    )

    # Output-level metrics share the evaluation set's columns: one bootstrap for all of them.
    rows: list[np.ndarray] = []
    row_of: dict[tuple[str, str], int] = {}
    for entry in entries:
        for metric, values in (("win_rate", entry.win), ("leak_any", entry.leakage.get("any"))):
            if values is not None:
                row_of[(entry.name, metric)] = len(rows)
                rows.append(values)
    output_boot = paired_bootstrap_means(np.vstack(rows), **boot) if rows else None

    ranking_ids = sorted({i for e in entries if e.ranking for i in e.ranking})
    ranking_row: dict[str, int] = {}
    ranking_rows = []
    for entry in entries:
        if entry.ranking:
            ranking_row[entry.name] = len(ranking_rows)
            ranking_rows.append([entry.ranking.get(i, np.nan) for i in ranking_ids])
    ranking_boot = paired_bootstrap_means(np.asarray(ranking_rows), **boot) if ranking_rows else None
    lc_boot, lc_row = _lc_bootstrap(entries, n, settings)

    def weights(system: str, metric: str, table: dict, width: int) -> np.ndarray | None:
        """Row weights that average a system's seeds (None unless every seed has the metric)."""
        keys = [(e.name, metric) if metric not in {"ranking", "lc"} else e.name for e in systems[system]]
        if not all(k in table for k in keys):
            return None
        w = np.zeros(width)
        for k in keys:
            w[table[k]] = 1 / len(keys)
        return w

    def pooled(boot: Any, metric: str, table: dict, width: int) -> dict[str, tuple[np.ndarray, Interval]]:
        """Each system's seed-mean weights and interval, all systems in one matrix product."""
        found = {s: weights(s, metric, table, width) for s in names}
        have = [s for s in names if found[s] is not None]
        if boot is None or not have:
            return {}
        combined = boot.combine(np.vstack([found[s] for s in have]))
        return {s: (found[s], combined.interval(i)) for i, s in enumerate(have)}  # type: ignore[misc]

    win = pooled(output_boot, "win_rate", row_of, len(rows))
    leak = pooled(output_boot, "leak_any", row_of, len(rows))
    ranking = pooled(ranking_boot, "ranking", ranking_row, len(ranking_rows))
    lc = pooled(lc_boot, "lc", lc_row, len(lc_row))
    records: list[dict[str, Any]] = []
    for system in names:
        seeds = systems[system]
        first = seeds[0].metadata
        per_seed = [e.recomputed() for e in seeds]  # the numbers the claims are checked against
        record: dict[str, Any] = {
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
        }
        for metric, pooled_metric in (("win_rate", win), ("lc_win_rate", lc), ("ranking_accuracy", ranking)):
            values = [numbers[metric] for numbers in per_seed]
            interval = pooled_metric[system][1] if system in pooled_metric else None
            # LC may lack an interval (too few annotations to resample), never a value on some seed
            shown = all(v is not None for v in values) and (interval is not None or metric == "lc_win_rate")
            record[metric] = _summary(values, interval) if shown else None  # type: ignore[arg-type]
        record["vs_reference"] = _difference(win[system][1], offset=0.5) if system in win else None
        if system in leak:
            detectors = sorted(set.intersection(*(set(e.leakage) for e in seeds)) - {"any"})
            record["leakage_any"] = _summary([leakage_rate(e.leakage["any"]) * 100 for e in seeds], leak[system][1])
            record["leakage"] = {d: _num(float(np.mean([n["leakage"][d] for n in per_seed]))) for d in detectors}
        else:
            record["leakage_any"], record["leakage"] = None, {}
        records.append(record)

    rank_by = rank_metric(records)
    ranked = [r for r in records if r[rank_by] is not None]
    unranked = [r for r in records if r[rank_by] is None]
    ranked.sort(key=lambda r: (-r[rank_by]["mean"], r["system"]))
    ranks = upper_bound_ranks([r[rank_by]["ci_low"] for r in ranked], [r[rank_by]["ci_high"] for r in ranked])
    boot_for, pooled_for = {
        "lc_win_rate": (lc_boot, lc),
        "win_rate": (output_boot, win),
        "ranking_accuracy": (ranking_boot, ranking),
    }[rank_by]
    for record, rank in zip(ranked, ranks):
        record["rank"], record["vs_next"] = rank, None
    if len(ranked) > 1 and boot_for is not None:  # paired differences to the next row, in one product
        differences = boot_for.combine(
            np.vstack([pooled_for[a["system"]][0] - pooled_for[b["system"]][0] for a, b in zip(ranked, ranked[1:])])
        )
        for position, (above, below) in enumerate(zip(ranked, ranked[1:])):
            above["vs_next"] = {
                "system": below["system"],
                "metric": rank_by,
                **_difference(differences.interval(position)),
            }
    for record in unranked:
        record["rank"], record["vs_next"] = None, None
    named = {"board": name} if name else {}  # the main board of an evaluation set has no name
    return {
        **named,
        "evaluation_set": {"dataset": dataset, "source": source},
        "n_instructions": n,
        "ranked_by": rank_by,
        "systems": ranked + sorted(unranked, key=lambda r: r["system"]),
    }


def rank_metric(records: list[dict[str, Any]]) -> str:
    """The board's ranking metric: LC when every system with annotations has its LC interval (a
    system without annotations, such as the reference itself, is unranked either way); otherwise the
    first of RANK_METRICS that some system has."""
    judged = [r for r in records if r["win_rate"] is not None]
    if judged and all(r["lc_win_rate"] is not None and r["lc_win_rate"]["ci_low"] is not None for r in judged):
        return "lc_win_rate"
    return next((m for m in RANK_METRICS[1:] if any(r[m] is not None for r in records)), RANK_METRICS[1])


def _lc_bootstrap(entries: list[Entry], n: int, settings: BootstrapSettings) -> tuple[PairedBootstrap | None, dict]:
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
    return boot, {e.name: row for row, e in enumerate(usable)}


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
