"""The committed validation table of the shipped judges (`validation/results.json`, written by
`implicit-if judges validate --split heldout --output ...`), read for boards and summaries."""

from __future__ import annotations

import functools
import json
from pathlib import Path

RESULTS_FILE = Path(__file__).parent / "validation" / "results.json"


@functools.cache
def _table() -> dict:
    if not RESULTS_FILE.is_file():
        return {}
    return json.loads(RESULTS_FILE.read_text(encoding="utf-8"))


def held_out_accuracy(judge_config: str) -> float | None:
    """Accuracy in percent on the held-out split, rounded to 0.1, of the validated judge with this
    identity hash (the `judge_config` its annotations carry; a name proves nothing); else None."""
    table = _table()
    if table.get("split") != "heldout":
        return None
    for row in table.get("judges", []):
        if row.get("judge_config") == judge_config and row.get("kind") != "baseline":
            return round(100 * row["accuracy"]["estimate"], 1)
    return None
