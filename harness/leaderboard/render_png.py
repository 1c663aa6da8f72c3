"""The board as a PNG: each system's ranking metric (the LC win rate, where the board ranks by it) with
its 95% interval, one panel per evaluation set.

Byte-identical for the same data with the same matplotlib: the Agg backend, a bundled font, and
no timestamp or software version in the file. The PNG also carries a digest of the data it
plots, so `build --check` can tell a stale plot from a plot drawn by another matplotlib version.
"""

from __future__ import annotations

import hashlib
import io
import json
from typing import Any

import numpy as np

from .formatting import evaluation_set_title, mean_std, metric_name

PLOT_VERSION = "3"  # bump when the drawing code changes, so --check sees committed plots as stale
DIGEST_KEY = "Source"


def plotted(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Exactly what the plot shows: per board, the metric and each system's mean and interval."""
    panels = []
    for board in data["boards"]:
        metric = board["ranked_by"]
        points = [
            (
                _label(s, metric),
                s[metric]["mean"],
                s[metric]["ci_low"],
                s[metric]["ci_high"],
                s[metric]["per_seed"] if len(s[metric]["per_seed"]) > 1 else [],
                mean_std(s[metric]),
            )
            for s in board["systems"]
            if s.get(metric)
        ]
        panels.append({"title": evaluation_set_title(board), "metric": metric, "points": points})
    return panels


# The plotted number rests on what CI could not reproduce: the row's name carries a dagger.
SELF_REPORTED_BY_METRIC = {
    "lc_win_rate": "preferences",
    "win_rate": "preferences",
    "ranking_accuracy": "log-probabilities",
}
DAGGER = " †"


def _label(system: dict[str, Any], metric: str) -> str:
    return system["system"] + (DAGGER if SELF_REPORTED_BY_METRIC.get(metric) in system["self_reported"] else "")


def plot_digest(data: dict[str, Any]) -> str:
    payload = json.dumps({"version": PLOT_VERSION, "panels": plotted(data)}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def render_png(data: dict[str, Any]) -> bytes:
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = plotted(data) or [{"title": "no submissions yet", "metric": "win_rate", "points": []}]
    # Fixed margins in inches (no tight_layout: it draws the figure an extra time).
    label_inches = 0.3 + 0.07 * max([len(p[0]) for panel in panels for p in panel["points"]] or [4])
    width = 6.0 + label_inches
    heights = [max(1, len(p["points"])) * 0.45 + 0.5 for p in panels]
    gap, top, bottom = 0.9, 0.45, 0.6
    total = sum(heights) + gap * (len(panels) - 1) + top + bottom
    with matplotlib.rc_context({"font.family": "DejaVu Sans", "font.size": 9}):
        figure = Figure(figsize=(width, total))
        FigureCanvasAgg(figure)
        grid = figure.add_gridspec(
            len(panels),
            1,
            height_ratios=heights,
            left=label_inches / width,
            right=1 - 0.25 / width,
            top=1 - top / total,
            bottom=bottom / total,
            hspace=gap / (sum(heights) / len(panels)),
        )
        axes = [figure.add_subplot(grid[i, 0]) for i in range(len(panels))]
        for axis, panel in zip(axes, panels):
            points = list(reversed(panel["points"]))  # best at the top
            y = np.arange(len(points))
            means = np.array([p[1] for p in points], dtype=float)
            with_ci = [(i, p[2], p[3]) for i, p in zip(y, points) if p[2] is not None]
            if with_ci:  # one collection per kind of mark: fast for boards with many rows
                rows, lows, highs = zip(*with_ci)
                axis.hlines(rows, lows, highs, color="#8fb8de", linewidth=6)
            seed_x = [v for p in points for v in p[4]]
            seed_y = [i for i, p in zip(y, points) for _ in p[4]]
            if seed_x:  # each seed's own number, so the spread across seeds is visible
                axis.plot(seed_x, seed_y, linestyle="none", marker="|", color="#57606a", markersize=9)
            axis.plot(means, y, linestyle="none", marker="o", color="#0b4f8a", markersize=5)
            for position, point in zip(y, points):
                axis.text(point[1], position + 0.22, point[5], ha="center", va="bottom", fontsize=8)
            axis.set_yticks(y, [point[0] for point in points])
            axis.set_ylim(-0.7, max(len(points), 1) - 0.2)
            axis.set_xlim(0, 100)
            if panel["metric"] in {"lc_win_rate", "win_rate"}:
                axis.axvline(50, color="#b0b7bf", linestyle="--", linewidth=1)
                refit = panel["metric"] == "lc_win_rate"
                bar = "95% CI, GLM refit per resample" if refit else "95% CI over instructions"
                axis.set_xlabel(
                    f"{metric_name(panel['metric'])} vs reference, % (bar: {bar}; ticks: seeds; dashed: parity)"
                )
            else:
                axis.set_xlabel(f"{metric_name(panel['metric'])}, % (bar: 95% bootstrap CI)")
            if any(point[0].endswith(DAGGER) for point in points):
                axis.set_title("† self-reported: not reproduced by CI", fontsize=8, loc="right")
            axis.set_title(panel["title"], fontsize=10, loc="left")
            axis.grid(axis="x", color="#eef1f4")
            axis.set_axisbelow(True)
        buffer = io.BytesIO()
        figure.savefig(
            buffer,
            format="png",
            dpi=110,
            metadata={"Software": None, DIGEST_KEY: f"implicit-if leaderboard {plot_digest(data)}"},
        )
    return buffer.getvalue()


def read_png_digest(png: bytes) -> str | None:
    """The data digest stored in a board PNG (None if absent or unreadable)."""
    from PIL import Image

    try:
        text = Image.open(io.BytesIO(png)).text  # type: ignore[attr-defined]
    except Exception:
        return None
    value = text.get(DIGEST_KEY, "")
    return value.rsplit(" ", 1)[-1] if value.startswith("implicit-if leaderboard ") else None
