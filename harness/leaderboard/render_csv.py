"""The board as CSV: one row per system and evaluation set, every number with fixed decimals."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

from .formatting import decimal

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


# The fields of a summary and of a paired difference, the estimate first.
SUMMARY = ("mean", "std", "ci_low", "ci_high")
DIFFERENCE = ("difference", "ci_low", "ci_high")


def _columns(prefix: str, values: dict[str, Any] | None, keys: tuple[str, ...] = SUMMARY) -> dict[str, str]:
    """The estimate (the first key) as `prefix`, the others as `prefix_<key>`."""
    return {prefix + (f"_{key}" if i else ""): decimal((values or {}).get(key)) for i, key in enumerate(keys)}


def csv_rows(data: dict[str, Any]) -> list[dict[str, str]]:
    detectors = sorted({d for board in data["boards"] for s in board["systems"] for d in s["leakage"]})
    return [
        {
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
            **_columns("win_rate", system["win_rate"]),
            **_columns("vs_reference", system["vs_reference"], DIFFERENCE),
            "vs_next_system": (system["vs_next"] or {}).get("system", ""),
            **_columns("vs_next", system["vs_next"], DIFFERENCE),
            **_columns("lc_win_rate", system["lc_win_rate"]),
            **_columns("ranking_accuracy", system["ranking_accuracy"]),
            **_columns("leakage_any", system["leakage_any"]),
            **{f"leakage_{d}": decimal(system["leakage"].get(d)) for d in detectors},
            "n_empty_outputs": str(system["n_empty_outputs"]),
            "n_dropped_preferences": str(system["n_dropped_preferences"]),
            "flags": "; ".join(system["flags"]),
            "self_reported": "; ".join(system["self_reported"]),
        }
        for board in data["boards"]
        for system in board["systems"]
    ]


def render_csv(data: dict[str, Any]) -> str:
    rows = csv_rows(data)
    buffer = io.StringIO()
    if rows:
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow([csv_cell(name) for name in rows[0]])  # headers too: detector names are text
        writer.writerows([csv_cell(row[name]) for name in rows[0]] for row in rows)
    return buffer.getvalue()
