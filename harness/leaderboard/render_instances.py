"""The instance browser: per board, every instruction with each entry's answer beside the reference.

One page per board (`instances-<board>.html` next to `index.html`), its data one JSON document
embedded in the page, its style (`instances.css`) inlined, and one script shared by all pages
(`instances.js`, from the package), so it opens from disk with no network. Shown per instruction:
the reference answer, each entry's answer (long ones cut at `MAX_CHARS`, with the path of the
full record), the judge's preference, the leakage detectors that fired (with the evidence
highlighted where a detector has one), and the ranking result. Filters: by detector, by verdict,
and by a verdict that flipped between the two orders (for judges run in both).

Nothing from a submission is ever parsed as HTML: the script builds the page with `textContent`,
and the JSON is escaped so that no `</script>` or comment can end its element.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

from ..leakage import DETECTORS
from ..leakage.spans import matched_span
from .check import Entry
from .formatting import asset_text, evaluation_set_title
from .metrics import instruction_key

MAX_CHARS = 1200  # per answer: a board page stays small; the full record is one click away


def _cut(text: str) -> tuple[str, bool]:
    return (text, False) if len(text) <= MAX_CHARS else (text[:MAX_CHARS], True)


def _read(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _flipped(row: dict[str, Any]) -> bool | None:
    """Both orders judged, and the verdicts fall on opposite sides (None: one order, or a judge whose
    raw reply does not carry both answers' scores)."""
    raw = row.get("raw_completion")
    if row.get("order") != "both" or not isinstance(raw, list) or len(raw) != 2:
        return None
    try:  # the orders are (reference first, model first), as `judging.pairing` asks them
        reference_first, model_first = (json.loads(r) for r in raw)
        ahead_when_second = float(reference_first["second"]) - float(reference_first["first"])
        ahead_when_first = float(model_first["first"]) - float(model_first["second"])
    except (TypeError, ValueError, KeyError):
        return None
    return (ahead_when_second > 0) != (ahead_when_first > 0)


def board_instances(
    board: dict[str, Any], entries: Sequence[Entry], submissions: Path, instructions: list[str]
) -> dict[str, Any]:
    """The page's data: per instruction, the reference and every entry's answer with its verdicts."""
    by_name = {e.name: e for e in entries}
    names = [name for system in board["systems"] for name in system["entries"] if name in by_name]
    items: list[dict[str, Any]] = [{"instruction": text, "reference": None, "answers": {}} for text in instructions]
    position = {instruction_key(text): i for i, text in enumerate(instructions)}
    for name in names:
        entry, folder = by_name[name], submissions / name
        outputs = _read(folder / "outputs.json") or []
        judged = {instruction_key(r["instruction"]): r for r in _read(folder / "annotations.json") or []}
        ranking = {entry.ranking_positions[key]: share for key, share in (entry.ranking or {}).items()}
        for output in outputs:
            key = instruction_key(output["instruction"])
            if key not in position:
                continue
            i = position[key]
            text, cut = _cut(output["output"])
            fired = [d for d in DETECTORS if entry.leakage[d][i] == 1]  # the verdicts the board counted
            spans = {d: span for d in fired if (span := matched_span(d, text)) is not None}
            row = judged.get(key, {})
            against = _cut(row["output_1"])[0] if isinstance(row.get("output_1"), str) else None
            if items[i]["reference"] is None:
                items[i]["reference"] = against
            preference = entry.win[i] + 1 if entry.win is not None else math.nan  # as the board reads it
            items[i]["answers"][name] = {
                "text": text,
                "cut": cut,
                "record": f"submissions/{name}/outputs.json",
                "preference": float(preference) if math.isfinite(preference) else None,
                "order": row.get("order"),
                "flipped": _flipped(row),
                "flags": fired,
                "spans": spans,
                "ranking": ranking.get(i),
                # judged against another answer than the one shown as the reference (another seed's reference)
                "against": against if against != items[i]["reference"] else None,
            }
    systems = {name: system["system"] for system in board["systems"] for name in system["entries"]}
    return {
        "title": evaluation_set_title(board),
        "reference": next((s["reference"] for s in board["systems"] if s.get("reference")), None),
        "entries": [{"name": name, "system": systems[name]} for name in names],
        "detectors": list(DETECTORS),
        "items": items,
    }


def _script_json(data: dict[str, Any]) -> str:
    """JSON that cannot end its <script> element or open a comment, whatever the answers hold."""
    text = json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


SCRIPT = "instances.js"  # one file beside the pages, shared by every board's page


def script_text() -> str:
    return asset_text(SCRIPT)


def render_instances(data: dict[str, Any]) -> str:
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>answers: {escape(data['title'])}</title>",
            f"<style>\n{asset_text('instances.css')}</style></head><body>",
            f"<h1>Answers: {escape(data['title'])}</h1>",
            '<p><a href="index.html">back to the board</a>. Generated by <code>implicit-if leaderboard build</code>; '
            "highlighted: where a leakage detector found its style.</p>",
            '<div class="filters"><span id="entries"></span>',
            '<label>detector <select id="detector"><option value="">any</option></select></label>',
            '<label>verdict <select id="verdict"><option value="">any</option>'
            '<option value="model">judge prefers the entry</option>'
            '<option value="reference">judge prefers the reference</option>'
            '<option value="draw">draw</option></select></label>',
            '<label><input type="checkbox" id="flipped"> flipped between orders</label> <span id="count"></span></div>',
            '<div id="items"></div>',
            f'<script type="application/json" id="instances">{_script_json(data)}</script>',
            f'<script src="{SCRIPT}"></script>',
            "</body></html>",
            "",
        ]
    )
