"""Check, compute, render, and write the boards all-or-nothing (or compare them with what is there).

Every board file is rendered in memory first; only when all of them exist are they written to a
temporary folder inside the output folder and then moved into place, the previous files being kept
until every move succeeded (and put back otherwise). So a failed check, render or write leaves the
committed boards byte-identical.
"""

from __future__ import annotations

import difflib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from .board import BootstrapSettings, build_board_data
from .check import Entry, check_submissions
from .evaluation_sets import EvaluationSets
from .formatting import instances_page
from .problems import Problem, SubmissionError, errors
from .render_csv import render_csv
from .render_html import render_html
from .render_instances import SCRIPT as INSTANCES_SCRIPT
from .render_instances import board_instances, render_instances, script_text
from .render_json import render_json
from .render_markdown import render_markdown
from .render_png import read_png_digest, render_png

MARKDOWN, CSV, JSON, HTML, PNG = (
    "leaderboard.md",
    "leaderboard.csv",
    "leaderboard.json",
    "index.html",
    "leaderboard.png",
)
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


def instance_pages(
    data: dict, entries: list[Entry], submissions: Path, evaluation_sets: EvaluationSets
) -> dict[str, bytes]:
    """The instance browser: one page per board (`render_instances`)."""
    pages = {}
    for board in data["boards"]:
        evaluation_set = board["evaluation_set"]
        instructions, _ = evaluation_sets.get(evaluation_set["dataset"], evaluation_set["source"])
        page = render_instances(board_instances(board, entries, submissions, instructions))
        pages[instances_page(board)] = page.encode()
    if pages:
        pages[INSTANCES_SCRIPT] = script_text().encode()
    return pages


def build_boards(
    submissions: Path, settings: BootstrapSettings = BootstrapSettings(), evaluation_sets: EvaluationSets | None = None
) -> BuildResult:
    """Everything in memory; raises SubmissionError (listing every problem) when a check fails."""
    evaluation_sets = evaluation_sets or EvaluationSets()
    entries, problems = check_submissions(submissions, evaluation_sets)
    if errors(problems):
        raise SubmissionError(problems)
    data = build_board_data(entries, settings)
    return BuildResult(
        entries, problems, {**render_all(data), **instance_pages(data, entries, submissions, evaluation_sets)}
    )


def publish(submit: Callable[[], object], submissions: Path, out: Path, what: str) -> None:
    """Write the submissions (`submit`), check them all, build the boards and write them all-or-nothing.

    Raises ValueError with one line naming `what` when a submission does not validate or the
    boards cannot be written (the CLI prints it and exits).
    """
    try:
        submit()
        built = build_boards(submissions)
    except SubmissionError as error:
        raise ValueError(f"{what} did not validate: {error}") from None
    try:
        write_boards(out, built.files)
    except BoardWriteError as error:
        raise ValueError(f"cannot write the boards: {error}") from None


class BoardWriteError(Exception):
    """The board files cannot be written where asked: one line naming the problem and the fix."""

    def __init__(self, problem: str, fix: str, keep: Path | None = None):
        super().__init__(f"{problem} (fix: {fix})")
        self.keep = keep  # a staging folder that must survive: it holds the only copy of the old boards


def check_out(out: Path, names: Iterable[str] = BOARD_FILES) -> None:
    """Raise BoardWriteError unless every board file can be put in `out`; writes nothing that stays.

    Cheap, so the CLI runs it before checking the submissions and bootstrapping (minutes).
    """
    here = next(path for path in (out, *out.parents) if os.path.lexists(path))  # "." or "/" at the latest
    if not here.is_dir():
        raise BoardWriteError(
            f"{here} is not a folder, so the boards cannot go to {out}",
            "point --out at a folder, or move that file away",
        )
    for target in (out / name for name in names):
        if target.exists() and not (target.is_file() or target.is_symlink()):  # a link is replaced, not followed
            kind = "a folder" if target.is_dir() else "not a regular file"
            raise BoardWriteError(
                f"{target} is {kind}, where a board file belongs", "remove or rename it, then build again"
            )
    try:  # the only reliable test of write permission (os.access says yes to root, no to some ACLs)
        os.rmdir(tempfile.mkdtemp(prefix=".build-probe-", dir=here))
    except OSError as exc:
        raise BoardWriteError(
            f"cannot write in {here} ({exc.strerror})", "make the folder writable or pass another --out"
        ) from None


def write_boards(out: Path, files: dict[str, bytes]) -> None:
    """All or nothing: stage every file in a temporary folder inside `out`, then move them in; if any
    move fails, put the previous files back. Raises BoardWriteError (one line) on failure."""
    check_out(out, files)
    try:
        out.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".build-", dir=out))
    except OSError as exc:
        raise BoardWriteError(
            f"cannot create a folder in {out} ({exc.strerror})", "make it writable or pass another --out"
        ) from None
    keep = False
    try:
        _stage(staging, files)
        _move_in(staging, out, list(files))
    except BoardWriteError as exc:
        keep = exc.keep is not None  # then the staging folder holds the only copy of the previous boards
        raise
    finally:
        if not keep:
            shutil.rmtree(staging, ignore_errors=True)


def _stage(staging: Path, files: dict[str, bytes]) -> None:
    for name, content in files.items():
        try:
            (staging / name).write_bytes(content)
        except OSError as exc:
            raise BoardWriteError(
                f"could not write {name} in {staging.parent} ({exc.strerror}); no board file was changed",
                "free disk space or fix the folder's permissions, then build again",
            ) from None


def _move_in(staging: Path, out: Path, names: list[str]) -> None:
    """Replace each board file by its staged one, a copy of the old one kept until all moved; on
    failure put the old ones back and raise."""
    previous = staging / "previous"
    previous.mkdir()
    moved: list[str] = []
    try:
        for name in names:
            if os.path.lexists(out / name):
                shutil.copy2(out / name, previous / name, follow_symlinks=False)
            os.replace(staging / name, out / name)  # atomic: a reader sees the old file or the new one
            moved.append(name)
    except OSError as exc:
        _roll_back(out, previous, moved, f"could not move {name} into {out} ({exc.strerror})")


def _roll_back(out: Path, previous: Path, moved: list[str], failed: str) -> NoReturn:
    try:
        for name in reversed(moved):
            if os.path.lexists(previous / name):
                os.replace(previous / name, out / name)
            else:  # there was no such board before this build
                (out / name).unlink()
    except OSError:
        raise BoardWriteError(
            f"{failed}, and putting the previous boards back failed too",
            f"copy them back from {previous} by hand, then build again",
            keep=previous,
        ) from None
    raise BoardWriteError(
        f"{failed}; the previous boards were put back unchanged",
        "make every board file there a writable file, then build again",
    ) from None


def stale_files(out: Path, files: dict[str, bytes]) -> list[str]:
    """One summary line per board file that differs from a fresh build (empty when up to date)."""
    return [f"{name}: {why}" for name, fresh in files.items() if (why := _stale(out / name, fresh))]


def _stale(path: Path, fresh: bytes) -> str | None:
    """Why the file at `path` is not `fresh` (None when it is). The PNG is compared by the data digest it
    carries, because another matplotlib or FreeType version draws the same data with different pixels."""
    if not path.is_file():
        return "missing (run `implicit-if leaderboard build`)"
    current = path.read_bytes()
    if path.name == PNG:
        return None if read_png_digest(current) == read_png_digest(fresh) else "plots different data than a fresh build"
    if current == fresh:
        return None
    old, new = current.decode(errors="replace").splitlines(), fresh.decode(errors="replace").splitlines()
    diff = [
        line
        for line in difflib.unified_diff(old, new, lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    first = diff[0][:160] if diff else "(whitespace or encoding only)"
    return f"{len(diff)} lines differ; first: {first}"
