"""The board as CSV: one row per system and evaluation set, every number with fixed decimals."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

# OWASP's CSV-injection rule: a spreadsheet evaluates a cell that starts with one of these as a
# formula, so such a cell gets a leading single quote, which makes it text. A negative number is
# kept as it is, but only when it is a plain one ("-1.2345"), never "-1+cmd|..." or "-inf".
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
PLAIN_NEGATIVE = re.compile(r"-[0-9]+(\.[0-9]+)?")


def csv_cell(text: str) -> str:
    """`text` as a cell no spreadsheet will evaluate, and that stays one cell."""
    if text.startswith(FORMULA_START) and not PLAIN_NEGATIVE.fullmatch(text):
        text = "'" + text
    # Python's csv module quotes a cell holding "\n" (our line terminator) but not a lone "\r", which
    # other readers take for a line end: a new row. As "\n" the cell is quoted and stays whole.
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def _summary_columns(prefix: str, summary: dict[str, Any] | None) -> dict[str, str]:
    summary = summary or {}
    return {
        prefix: _number(summary.get("mean")),
        f"{prefix}_std": _number(summary.get("std")),
        f"{prefix}_ci_low": _number(summary.get("ci_low")),
        f"{prefix}_ci_high": _number(summary.get("ci_high")),
    }


def _difference_columns(prefix: str, diff: dict[str, Any] | None) -> dict[str, str]:
    diff = diff or {}
    return {
        prefix: _number(diff.get("difference")),
        f"{prefix}_ci_low": _number(diff.get("ci_low")),
        f"{prefix}_ci_high": _number(diff.get("ci_high")),
    }


def csv_rows(data: dict[str, Any]) -> list[dict[str, str]]:
    detectors = sorted({d for board in data["boards"] for s in board["systems"] for d in s["leakage"]})
    rows = []
    for board in data["boards"]:
        for system in board["systems"]:
            row = {
                "board": board.get("board", ""),
                "evaluation_set": board["evaluation_set"]["dataset"],
                "source": board["evaluation_set"]["source"],
                "rank": "" if system["rank"] is None else str(system["rank"]),
                "ranked_by": board["ranked_by"],
                "system": system["system"],
                "entries": ";".join(system["entries"]),
                "seeds": ";".join(str(s) for s in system["seeds"]),
                "base_model": system["base_model"],
                "adaptation": system["adaptation"],
                "chat_format": system["chat_format"],
                "judge": system["judge"] or "",
                "reference": system["reference"] or "",
                **_summary_columns("win_rate", system["win_rate"]),
                **_difference_columns("vs_reference", system["vs_reference"]),
                "vs_next_system": (system["vs_next"] or {}).get("system", ""),
                **_difference_columns("vs_next", system["vs_next"]),
                **_summary_columns("lc_win_rate", system["lc_win_rate"]),
                **_summary_columns("ranking_accuracy", system["ranking_accuracy"]),
                **_summary_columns("leakage_any", system["leakage_any"]),
                **{f"leakage_{d}": _number(system["leakage"].get(d)) for d in detectors},
                "n_empty_outputs": str(system["n_empty_outputs"]),
                "n_dropped_preferences": str(system["n_dropped_preferences"]),
                "flags": "; ".join(system["flags"]),
                "self_reported": "; ".join(system["self_reported"]),
            }
            rows.append(row)
    return rows


def render_csv(data: dict[str, Any]) -> str:
    rows = csv_rows(data)
    buffer = io.StringIO()
    if rows:
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow([csv_cell(name) for name in rows[0]])  # headers too: detector names are text
        writer.writerows([csv_cell(row[name]) for name in rows[0]] for row in rows)
    return buffer.getvalue()
