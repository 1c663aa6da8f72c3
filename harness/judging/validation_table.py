"""The judge validation table as text (pure: a table dict in, Markdown out)."""

from __future__ import annotations

from typing import Any


def _cell(interval: dict[str, float] | None) -> str:
    if interval is None:
        return "-"
    return f"{100 * interval['estimate']:.1f} [{100 * interval['ci_low']:.1f}, {100 * interval['ci_high']:.1f}]"


def render_table(table: dict[str, Any]) -> str:
    """Two Markdown tables: the headline figures per judge, then accuracy per category."""
    from tabulate import tabulate

    rows = table["judges"]
    head = [
        [
            r["judge"],
            r.get("dtype", ""),
            _cell(r["accuracy"]),
            _cell(r["accuracy_blatant"]),
            _cell(r["accuracy_shorter_better"]),
            _cell(r["position_consistency"]),
            _cell(r["p_prefers_first"]),
            _cell(r["p_prefers_longer"]),
            "-" if r.get("seconds_per_1000_verdicts") is None else f"{r['seconds_per_1000_verdicts']:,.0f}",
        ]
        for r in rows
    ]
    headers = [
        "judge",
        "dtype",
        "accuracy",
        "blatant",
        "shorter better",
        "position consistency",
        "P(first)",
        "P(longer)",
        "s / 1,000 verdicts",
    ]
    categories = sorted({c for r in rows for c in r["by_category"]})
    per_category = [[r["judge"], *(_cell(r["by_category"].get(c)) for c in categories)] for r in rows]
    title = f"Judge validation: {table['n_pairs']} pairs, split {table['split']} (percent, 95% bootstrap intervals)"
    return "\n\n".join(
        [
            title,
            tabulate(head, headers=headers, tablefmt="github"),
            tabulate(per_category, headers=["judge", *categories], tablefmt="github"),
        ]
    )
