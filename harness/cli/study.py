"""`implicit-if study`: the study in miniature on Gemma 3 270M, trained and evaluated on this machine."""

from __future__ import annotations

from pathlib import Path

import typer

from ..judging.specs import DEFAULT_OFFLINE_JUDGE
from ._common import fail


def _seeds(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        fail(f"--seeds {text!r}: give seeds as comma-separated integers, e.g. 0,1")
    if not seeds or min(seeds) < 0:
        fail(f"--seeds {text!r}: give at least one seed, none negative")
    return seeds


def study(
    out: Path = typer.Option(
        Path("implicit-if-study"), "--out", help="Folder for the per-entry records (reused on a rerun)."
    ),
    checkpoints: Path | None = typer.Option(
        None, "--checkpoints", help="Where trained checkpoints are cached (default: the user cache, study/checkpoints)."
    ),
    submissions: Path | None = typer.Option(
        None, "--submissions", help="Where to write the submission folders (default: OUT/submissions)."
    ),
    boards: Path | None = typer.Option(
        None,
        "--boards",
        help=(
            "Where to write the leaderboard files (default: OUT/leaderboard); "
            "they hold every submission in --submissions."
        ),
    ),
    seeds: str = typer.Option(
        "0,1", "--seeds", help="Seeds of instruction and response tuning (the single-task recipes use the first)."
    ),
    judge: str = typer.Option(DEFAULT_OFFLINE_JUDGE, "--judge", help="Judge spec (see `implicit-if judges list`)."),
    max_new_tokens: int = typer.Option(128, "--max-new-tokens", min=1, help="Longest generated response, in tokens."),
    limit: int | None = typer.Option(
        None, "--limit", min=2, help="Only the first N instructions (a smoke run: no submissions, no board)."
    ),
    train_only: bool = typer.Option(False, "--train-only", help="Train (or find) the checkpoints and stop."),
    no_train: bool = typer.Option(
        False, "--no-train", help="Train nothing: evaluate the checkpoints already trained, leave the others out."
    ),
    rank_all: bool = typer.Option(
        True,
        "--rank-all/--rank-base-only",
        help=(
            "Response ranking for every entry, or only for the base model and the instruction-tuned checkpoints "
            "(the study's comparison; faster on a CPU)."
        ),
    ),
) -> None:
    """Train Gemma 3 270M by instruction, response and single-task tuning (cached by recipe, data and
    seed; resumable), evaluate every checkpoint, the base model and the rules against the
    instruction-tuned checkpoint of the same seed, and build a board of its own (see docs/study.md)."""
    import logging
    import os
    import time

    from rich.console import Console

    from ..paths import cache_root
    from ..study import runner
    from ..study.plan import study_runs

    os.environ.setdefault("IMPLICIT_IF_OFFLINE", "1")  # our training and evaluation sets are bundled
    logging.getLogger("transformers").setLevel(logging.ERROR)
    console = Console(stderr=True)
    began = time.perf_counter()

    def log(message: str) -> None:
        console.print(f"{time.perf_counter() - began:7.0f}s {message}", markup=False, highlight=False, soft_wrap=True)

    chosen = _seeds(seeds)
    submissions = submissions or out / "submissions"
    boards = boards or out / "leaderboard"
    if limit is None and not train_only:
        from ..leaderboard.build import BoardWriteError, check_out

        try:
            check_out(boards)
        except BoardWriteError as error:
            fail(f"cannot write the boards: {error}")
    runs = study_runs(chosen, chosen[:1])
    root = checkpoints or cache_root() / "study" / "checkpoints"
    try:
        folders = runner.train_missing(runs, root, log, train=not no_train)
    except RuntimeError as error:
        fail(str(error))
    if train_only:
        typer.echo("\n".join(f"{name}: {folder}" for name, folder in folders.items()))
        return
    entries = runner.study_entries(runs, folders)
    try:
        results = runner.evaluate(
            entries, out, judge=judge, max_new_tokens=max_new_tokens, log=log, limit=limit, rank_all=rank_all
        )
    except RuntimeError as error:
        fail(str(error))
    from ..pipeline import results_table

    typer.echo("")
    typer.echo(results_table([result for _, result in results]))
    typer.echo("")
    if limit is not None:
        typer.echo("no submissions or board with --limit: a submission must answer the whole evaluation set")
        return
    from ..leaderboard.build import publish

    try:
        publish(
            lambda: runner.submit(results, submissions, judge=judge), submissions, boards, "the study's submissions"
        )
    except ValueError as error:
        fail(str(error))
    typer.echo(f"leaderboard: {boards / 'leaderboard.md'} (and .csv, .json, .html, .png); board {runner.BOARD}")


def register(app: typer.Typer) -> None:
    app.command("study")(study)
