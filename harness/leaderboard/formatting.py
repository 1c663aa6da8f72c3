"""Text shared by the boards' views: fixed decimals, so the same data always give the same bytes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

DASH = "–"
# The board table's columns, header: how the HTML page sorts its cells.
COLUMNS = {
    "Rank": "number",
    "System": "text",
    "Adaptation": "text",
    "Base model": "text",
    "Seeds": "text",
    "LC win rate %": "number",
    "LC 95% CI": "number",
    "vs next": "number",
    "Win rate %": "number",
    "Win rate 95% CI": "number",
    "Ranking %": "number",
    "Ranking 95% CI": "number",
    "Leakage %": "number",
    "Judge": "text",
    "Reference": "text",
    "Self-reported": "text",
}
METRIC_NAMES = {"lc_win_rate": "LC win rate", "win_rate": "win rate", "ranking_accuracy": "ranking accuracy"}
LC_WIN_RATE = "AlpacaEval 2's length-controlled win rate, the headline"  # what the notes call the LC win rate


def asset_text(name: str) -> str:
    """A stylesheet or script shipped beside this module (the pages inline them or link them)."""
    return (Path(__file__).parent / name).read_text(encoding="utf-8")


def decimal(value: float | None) -> str:
    """Four fixed decimals, or '' for none: the CSV's numbers and the HTML page's sort keys."""
    return "" if value is None else f"{value:.4f}"


def pct(value: float | None, digits: int = 1) -> str:
    return DASH if value is None else f"{value:.{digits}f}"


def mean_std(summary: dict[str, Any] | None) -> str:
    """'43.3' for one seed, '43.3 ± 2.1' over several (the study's mean +- std)."""
    if not summary:
        return DASH
    text = pct(summary["mean"])
    return text if summary.get("std") is None else f"{text} ± {pct(summary['std'])}"


def ci(summary: dict[str, Any] | None) -> str:
    if not summary or summary.get("ci_low") is None:
        return DASH
    return f"[{pct(summary['ci_low'])}, {pct(summary['ci_high'])}]"


def difference(diff: dict[str, Any] | None) -> str:
    """'+3.1 [0.4, 5.9]*' where * marks an interval that excludes zero."""
    if not diff or diff.get("difference") is None:
        return DASH
    star = "*" if diff["significant"] else ""
    return f"{diff['difference']:+.1f} [{pct(diff['ci_low'])}, {pct(diff['ci_high'])}]{star}"


def resamples(settings: dict[str, Any]) -> str:
    """'2,000 resamples, seed 0': how a bootstrap was drawn, for the boards' notes."""
    return f"{settings['n_resamples']:,} resamples, seed {settings['seed']}"


def metric_name(metric: str) -> str:
    """A board metric's name in prose: 'LC win rate', 'win rate', 'ranking accuracy'."""
    return METRIC_NAMES.get(metric, metric.replace("_", " "))


def ranked_by(board: dict[str, Any]) -> str:
    """'Ranked by LC win rate; vs next: the paired LC win rate difference to the next row.'"""
    name = metric_name(board["ranked_by"])
    return f"Ranked by {name}; vs next: the paired {name} difference to the next row."


def evaluation_set_title(board: dict[str, Any]) -> str:
    evaluation_set = board["evaluation_set"]
    source = " (bundled offline fixture)" if evaluation_set["source"] == "fixture" else ""
    title = f"{evaluation_set['dataset']}{source}, {board['n_instructions']} instructions"
    return f"{board['board']}: {title}" if board.get("board") else title


def seeds(system: dict[str, Any]) -> str:
    return ", ".join(str(s) for s in system["seeds"])


def leakage_detail(system: dict[str, Any]) -> str:
    """'gsm 2.1, poem 0.8': the detectors that fired, in percent of outputs."""
    return ", ".join(f"{name} {pct(value)}" for name, value in sorted(system["leakage"].items()) if value)


def leakage(system: dict[str, Any]) -> str:
    """Any-detector rate, then the detectors that fired: '3.5 (gsm 2.1, poem 1.4)'."""
    if not system.get("leakage_any"):
        return DASH
    head, detail = mean_std(system["leakage_any"]), leakage_detail(system)
    return f"{head} ({detail})" if detail else head


def judge(system: dict[str, Any]) -> str:
    """The judge's name, with its held-out validation accuracy when it is a shipped judge."""
    name = system.get("judge")
    if not name:
        return DASH
    accuracy = system.get("judge_validation")
    return name if accuracy is None else f"{name} (val. {accuracy:.1f}%)"


def self_reported(system: dict[str, Any]) -> str:
    """What CI could not reproduce for this row ('log-probabilities'), or a dash when it reproduced everything."""
    return ", ".join(system["self_reported"]) or DASH


def instances_page(board: dict[str, Any]) -> str:
    """`instances-<board>.html`, the board's instance browser: its name (or evaluation set) as a safe file name."""
    evaluation_set = board["evaluation_set"]
    label = board.get("board") or f"{evaluation_set['dataset']}-{evaluation_set['source']}"
    return "instances-" + re.sub(r"[^a-z0-9._-]+", "-", label.lower()).strip("-") + ".html"
