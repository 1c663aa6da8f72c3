"""The board as one static HTML page: sortable tables with CI bars, inline CSS and JS, no network.

Rows are rendered here (the page reads fine without JavaScript); the script only re-orders them
when a header is clicked, by each cell's `data-sort` value (numbers numerically, blanks last).
"""

from __future__ import annotations

from html import escape
from typing import Any

from . import formatting as f

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem; color: #1b1f24; }
h1 { font-size: 1.5rem; margin: 0 0 .5rem; } h2 { font-size: 1.15rem; margin: 2rem 0 .5rem; }
p.note { max-width: 60rem; color: #57606a; }
table { border-collapse: collapse; margin: .5rem 0 1rem; }
th, td { padding: .35rem .6rem; border-bottom: 1px solid #d0d7de; text-align: left; vertical-align: middle; }
th { background: #f6f8fa; cursor: pointer; user-select: none; white-space: nowrap; }
th[aria-sort="ascending"]::after { content: " \\25B2"; } th[aria-sort="descending"]::after { content: " \\25BC"; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.bar { position: relative; width: 160px; height: 14px; background: #eef1f4; border-radius: 3px; }
.bar .ci { position: absolute; top: 3px; height: 8px; background: #8fb8de; border-radius: 2px; }
.bar .est { position: absolute; top: 0; width: 2px; height: 14px; background: #0b4f8a; }
.bar .half { position: absolute; top: 0; left: 50%; width: 1px; height: 14px; background: #b0b7bf; }
.flag { color: #9a6700; }
.scroll { overflow-x: auto; }
td.nowrap { white-space: nowrap; }
td.source { min-width: 14rem; max-width: 22rem; font-size: 12px; color: #57606a; }
small.detail { color: #57606a; font-size: 11px; }
"""

SCRIPT = """
document.querySelectorAll("table.board").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, column) {
    th.addEventListener("click", function () {
      var ascending = th.getAttribute("aria-sort") !== "ascending";
      table.querySelectorAll("th").forEach(function (other) { other.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      var numeric = th.dataset.type === "number";
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[column].dataset.sort, y = b.cells[column].dataset.sort;
        if (x === "" && y === "") return 0;
        if (x === "") return 1;
        if (y === "") return -1;
        var order = numeric ? Number(x) - Number(y) : x.localeCompare(y);
        return ascending ? order : -order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""

COLUMNS: list[tuple[str, str]] = [  # (header, type)
    ("Rank", "number"),
    ("System", "text"),
    ("Adaptation", "text"),
    ("Base model", "text"),
    ("Seeds", "text"),
    ("LC win rate %", "number"),
    ("LC 95% CI", "number"),
    ("vs next", "number"),
    ("Win rate %", "number"),
    ("Win rate 95% CI", "number"),
    ("Ranking %", "number"),
    ("Leakage %", "number"),
    ("Judge", "text"),
    ("Reference", "text"),
    ("Self-reported", "text"),
]


def _sort_value(value: float | int | None) -> str:
    return "" if value is None else f"{value:.4f}"


def _cell(text: str, sort: str, numeric: bool = False, title: str = "", kind: str = "") -> str:
    """kind: an extra CSS class (nowrap, source); numeric cells are right-aligned."""
    names = " ".join(filter(None, ["num" if numeric else "", kind]))
    cls = f' class="{names}"' if names else ""
    tip = f' title="{escape(title)}"' if title else ""
    return f'<td{cls} data-sort="{escape(sort)}"{tip}>{text}</td>'


def _bar(summary: dict[str, Any] | None) -> str:
    """A 0-100 scale with the interval shaded, the estimate marked and 50 (parity) as a tick."""
    if not summary or summary.get("ci_low") is None:
        return f.DASH
    low, high, mean = (max(0.0, min(100.0, summary[k])) for k in ("ci_low", "ci_high", "mean"))
    return (
        f'<div class="bar" role="img" aria-label="{f.ci(summary)}"><span class="half"></span>'
        f'<span class="ci" style="left:{low:.2f}%;width:{max(high - low, 0.5):.2f}%"></span>'
        f'<span class="est" style="left:{mean:.2f}%"></span></div>'
    )


def _detail(text: str) -> str:
    return f'<br><small class="detail">{escape(text)}</small>' if text else ""


def _row(system: dict[str, Any], answers_page: str) -> str:
    win, lc, ranking = system["win_rate"] or {}, system["lc_win_rate"] or {}, system["ranking_accuracy"] or {}
    leak = system["leakage_any"] or {}
    flag = f' <span class="flag" title="{escape("; ".join(system["flags"]))}">&#9873;</span>' if system["flags"] else ""
    cells = [
        _cell(f.DASH if system["rank"] is None else str(system["rank"]), _sort_value(system["rank"]), True),
        _cell(
            f'<a href="{escape(answers_page)}#{escape(system["entries"][0])}">{escape(system["system"])}</a>' + flag,
            system["system"],
            title=f"read its answers ({', '.join(system['entries'])})",
            kind="nowrap",
        ),
        _cell(escape(system["adaptation"]), system["adaptation"]),
        _cell(escape(system["base_model"]), system["base_model"], kind="nowrap"),
        _cell(escape(f.seeds(system)), f.seeds(system)),
        _cell(escape(f.mean_std(system["lc_win_rate"])), _sort_value(lc.get("mean")), True),
        _cell(_bar(system["lc_win_rate"]), _sort_value(lc.get("ci_low")), title=f.ci(system["lc_win_rate"])),
        _cell(
            escape(f.difference(system["vs_next"])),
            _sort_value((system["vs_next"] or {}).get("difference")),
            True,
            title=(
                f"paired {f.metric_name(system['vs_next']['metric'])} difference to {system['vs_next']['system']}"
                if system["vs_next"]
                else ""
            ),
        ),
        _cell(escape(f.mean_std(system["win_rate"])), _sort_value(win.get("mean")), True),
        _cell(_bar(system["win_rate"]), _sort_value(win.get("ci_low")), title=f.ci(system["win_rate"])),
        _cell(
            escape(
                f"{f.mean_std(system['ranking_accuracy'])} {f.ci(system['ranking_accuracy'])}" if ranking else f.DASH
            ),
            _sort_value(ranking.get("mean")),
            True,
            title="" if ranking else "not measured for this entry",
        ),
        _cell(
            escape(f.mean_std(system["leakage_any"])) + _detail(f.leakage_detail(system)),
            _sort_value(leak.get("mean")),
            True,
        ),
        _cell(escape(f.judge(system)), system["judge"] or "", kind="source"),
        _cell(escape(system["reference"] or f.DASH), system["reference"] or "", kind="source"),
        _cell(
            escape(f.self_reported(system)),
            f.self_reported(system),
            kind="source",
            title="what CI could not reproduce (docs/leaderboard.md)",
        ),
    ]
    return f'<tr data-system="{escape(system["system"])}">' + "".join(cells) + "</tr>"


def render_html(data: dict[str, Any]) -> str:
    stats = data["statistics"]
    lc = stats["lc_win_rate"]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>implicit-if leaderboard</title>",
        f"<style>{STYLE}</style></head><body>",
        "<h1>implicit-if leaderboard</h1>",
        f'<p class="note">Generated by <code>implicit-if leaderboard build</code>; do not edit. Bars: '
        f"{stats['confidence']:.0%} {escape(stats['method'])} bootstrap interval over instructions "
        f"({stats['n_resamples']:,} resamples, seed {stats['seed']}) on a 0–100 scale, the tick at 50 "
        "is parity with the reference; for the LC win rate (AlpacaEval 2's length-controlled win rate, the "
        f"headline) a {escape(lc['method'])} bootstrap over the same instructions ({lc['n_resamples']:,} "
        f"resamples, seed {lc['seed']}, the length-control GLM refitted on each, as <code>implicit-if winrate</code>). "
        "Several seeds: mean ± std, interval of the seed mean. Ranks tie when intervals of the ranking "
        "metric overlap; <em>vs next</em>: the paired difference in it to the next row. CI recomputes leakage "
        "and regenerates the ranking pairs of every entry, and "
        "re-judges the entries of offline judges; <em>Self-reported</em>: what it could not reproduce. "
        "Click a column header to sort.</p>",
    ]
    if not data["boards"]:
        parts.append("<p>No submissions yet.</p>")
    for number, board in enumerate(data["boards"]):
        header = "".join(f'<th scope="col" data-type="{kind}">{escape(name)}</th>' for name, kind in COLUMNS)
        rows = "\n".join(_row(s, f.instances_page(board)) for s in board["systems"])
        parts += [
            f'<h2>{escape(f.evaluation_set_title(board))} <small><a href="{escape(f.instances_page(board))}">'
            "read the answers</a></small></h2>",
            f'<p class="note">{escape(f.ranked_by(board))}</p>',
            f'<div class="scroll"><table class="board" id="board-{number}"><thead><tr>{header}</tr></thead>',
            f"<tbody>\n{rows}\n</tbody></table></div>",
        ]
    parts += [f"<script>{SCRIPT}</script>", "</body></html>", ""]
    return "\n".join(parts)
