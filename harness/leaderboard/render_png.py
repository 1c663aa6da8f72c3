"""The board as a PNG: each system's win rate with its 95% interval, one panel per evaluation set.

Byte-identical for the same data with the same matplotlib: the Agg backend, a bundled font, and
no timestamp or software version in the file. The PNG also carries a digest of the data it
plots, so `build --check` can tell a stale plot from a plot drawn by another matplotlib version.
"""

from __future__ import annotations

import hashlib
import io
import json
from typing import Any

from .formatting import evaluation_set_title, mean_std

PLOT_VERSION = "1"  # bump when the drawing code changes, so --check sees committed plots as stale
DIGEST_KEY = "Source"


def plotted(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Exactly what the plot shows: per board, the metric and each system's mean and interval."""
    panels = []
    for board in data["boards"]:
        metric = "win_rate" if any(s["win_rate"] for s in board["systems"]) else board["ranked_by"]
        points = [(s["system"], s[metric]["mean"], s[metric]["ci_low"], s[metric]["ci_high"],
                   s[metric]["per_seed"] if len(s[metric]["per_seed"]) > 1 else [], mean_std(s[metric]))
                  for s in board["systems"] if s.get(metric)]
        panels.append({"title": evaluation_set_title(board), "metric": metric, "points": points})
    return panels


def plot_digest(data: dict[str, Any]) -> str:
    payload = json.dumps({"version": PLOT_VERSION, "panels": plotted(data)}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def render_png(data: dict[str, Any]) -> bytes:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    panels = plotted(data) or [{"title": "no submissions yet", "metric": "win_rate", "points": []}]
    heights = [max(1, len(p["points"])) * 0.45 + 1.2 for p in panels]
    with plt.rc_context({"font.family": "DejaVu Sans", "font.size": 9, "svg.hashsalt": "implicit-if"}):
        figure, axes = plt.subplots(len(panels), 1, figsize=(7.5, sum(heights)), squeeze=False,
                                    gridspec_kw={"height_ratios": heights})
        for axis, panel in zip(axes[:, 0], panels):
            points = list(reversed(panel["points"]))  # best at the top
            y = list(range(len(points)))
            for position, (_, mean, low, high, per_seed, label) in zip(y, points):
                if low is not None:
                    axis.plot([low, high], [position, position], color="#8fb8de", linewidth=6,
                              solid_capstyle="butt")
                if per_seed:  # each seed's own number, so the spread across seeds is visible
                    axis.plot(per_seed, [position] * len(per_seed), linestyle="none", marker="|",
                              color="#57606a", markersize=9)
                axis.plot([mean], [position], marker="o", color="#0b4f8a", markersize=5)
                axis.annotate(label, (mean, position), textcoords="offset points", xytext=(0, 7),
                              ha="center", fontsize=8)
            axis.set_yticks(y, [point[0] for point in points])
            axis.set_ylim(-0.7, max(len(points), 1) - 0.3)
            axis.set_xlim(0, 100)
            if panel["metric"] == "win_rate":
                axis.axvline(50, color="#b0b7bf", linestyle="--", linewidth=1)
                axis.set_xlabel("win rate vs reference, % (bar: 95% bootstrap CI over instructions; "
                                "ticks: seeds; dashed: parity)")
            else:
                axis.set_xlabel(f"{panel['metric'].replace('_', ' ')}, % (bar: 95% bootstrap CI)")
            axis.set_title(panel["title"], fontsize=10, loc="left")
            axis.grid(axis="x", color="#eef1f4")
            axis.set_axisbelow(True)
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=110,
                       metadata={"Software": None, DIGEST_KEY: f"implicit-if leaderboard {plot_digest(data)}"})
        plt.close(figure)
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
