"""Check, compute, render, and write the boards all-or-nothing (or compare them with what is there).

Every board file is rendered in memory first; only when all of them exist are they written to a
temporary folder beside the target and then moved into place, so a failed check or render leaves
the committed boards exactly as they were.
"""

from __future__ import annotations

import difflib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .board import BootstrapSettings, build_board_data
from .check import Entry, check_submissions
from .evaluation_sets import EvaluationSets
from .problems import Problem, SubmissionError, errors
from .render_csv import render_csv
from .render_html import render_html
from .render_json import render_json
from .render_markdown import render_markdown
from .render_png import read_png_digest, render_png

MARKDOWN, CSV, JSON, HTML, PNG = "leaderboard.md", "leaderboard.csv", "leaderboard.json", "index.html", "leaderboard.png"
BOARD_FILES = (MARKDOWN, CSV, JSON, HTML, PNG)


@dataclass
class BuildResult:
    entries: list[Entry]
    problems: list[Problem]  # warnings only: a build with errors raises SubmissionError
    files: dict[str, bytes]


def render_all(data: dict) -> dict[str, bytes]:
    return {
        MARKDOWN: render_markdown(data).encode(),
        CSV: render_csv(data).encode(),
        JSON: render_json(data).encode(),
        HTML: render_html(data).encode(),
        PNG: render_png(data),
    }


def build_boards(submissions: Path, settings: BootstrapSettings = BootstrapSettings(),
                 evaluation_sets: EvaluationSets | None = None) -> BuildResult:
    """Everything in memory; raises SubmissionError (listing every problem) when a check fails."""
    entries, problems = check_submissions(submissions, evaluation_sets)
    if errors(problems):
        raise SubmissionError(problems)
    return BuildResult(entries, problems, render_all(build_board_data(entries, settings)))


def write_boards(out: Path, files: dict[str, bytes]) -> None:
    """Write all files into a temporary folder in `out`, then move each into place."""
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".build-", dir=out))
    try:
        for name, content in files.items():
            (staging / name).write_bytes(content)
        for name in files:
            os.replace(staging / name, out / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def stale_files(out: Path, files: dict[str, bytes]) -> list[str]:
    """One summary line per board file that differs from a fresh build (empty when up to date).

    The PNG is compared by the data digest it carries, because another matplotlib or FreeType
    version draws the same data with different pixels.
    """
    summary = []
    for name, fresh in files.items():
        path = out / name
        if not path.is_file():
            summary.append(f"{name}: missing (run `implicit-if leaderboard build`)")
            continue
        current = path.read_bytes()
        if name == PNG:
            if read_png_digest(current) != read_png_digest(fresh):
                summary.append(f"{name}: plots different data than a fresh build")
            continue
        if current != fresh:
            old, new = current.decode(errors="replace").splitlines(), fresh.decode(errors="replace").splitlines()
            diff = [line for line in difflib.unified_diff(old, new, lineterm="", n=0)
                    if line[:1] in "+-" and not line.startswith(("+++", "---"))]
            first = diff[0][:160] if diff else "(whitespace or encoding only)"
            summary.append(f"{name}: {len(diff)} lines differ; first: {first}")
    return summary
