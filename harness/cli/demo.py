"""`implicit-if demo`: the main job, offline, on the embedded models."""

from __future__ import annotations

from pathlib import Path

import typer

from ..judging.specs import DEFAULT_OFFLINE_JUDGE
from ._common import fail


def demo(
    out: Path = typer.Option(
        Path("implicit-if-demo"), "--out", help="Folder for the per-entry records (reused on a rerun)."
    ),
    submissions: Path | None = typer.Option(
        None, "--submissions", help="Where to write the submission folders (default: OUT/submissions)."
    ),
    boards: Path | None = typer.Option(
        None, "--boards", help="Where to write the leaderboard files (default: OUT/leaderboard)."
    ),
    limit: int | None = typer.Option(
        None, "--limit", min=2, help="Only the first N instructions of the offline set (default: all)."
    ),
    max_new_tokens: int = typer.Option(128, "--max-new-tokens", min=1, help="Longest generated response, in tokens."),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Sequences per scoring batch (response ranking)."),
    generate_batch_size: int = typer.Option(
        128, "--generate-batch-size", min=1, help="Sequences decoded together (greedy, left-padded)."
    ),
    dtype: str = typer.Option(
        "auto",
        "--dtype",
        help=(
            "Precision of the evaluated model: auto (bfloat16 on GPUs and on CPUs with bfloat16 units, "
            "else float32), float32 or bfloat16."
        ),
    ),
    judge: str = typer.Option(DEFAULT_OFFLINE_JUDGE, "--judge", help="Judge spec (see `implicit-if judge --help`)."),
    with_rules: bool = typer.Option(
        False, "--with-rules", help="Also evaluate Gemma 3 270M with the rule-based adapter and each ablation."
    ),
) -> None:
    """Evaluate Gemma 3 270M (base) and SmolLM2-135M-Instruct offline: outputs, judged win rates,
    response ranking and style leakage; print a results table and build a leaderboard."""
    import logging
    import os
    from dataclasses import replace

    from rich.console import Console

    from .. import demo as job
    from ..backends.hf import pick_device, resolve_dtype_name
    from ..pipeline import results_table, run, submit_run

    try:
        resolve_dtype_name(dtype, pick_device(None))
    except ValueError as error:
        fail(str(error))
    os.environ.setdefault("IMPLICIT_IF_OFFLINE", "1")  # the demo never needs the hub
    logging.getLogger("transformers").setLevel(logging.ERROR)
    console = Console(stderr=True)

    def log(message: str) -> None:  # entry names in brackets are text, not rich markup
        console.print(message, markup=False, highlight=False, soft_wrap=True)

    entries = list(job.DEFAULT_ENTRIES)
    if with_rules:
        entries += job.RULES_ENTRIES
    submissions = submissions or out / "submissions"
    boards = boards or out / "leaderboard"
    if limit is None:  # find out now, not after an hour of work, that the boards cannot be written
        from ..leaderboard.build import BoardWriteError, check_out

        try:
            check_out(boards)
        except BoardWriteError as error:
            fail(f"cannot write the boards: {error}")
    results = []
    for entry in entries:
        spec = replace(
            entry,
            limit=limit,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            generate_batch_size=generate_batch_size,
            dtype=dtype,
            judge=judge,
        )
        try:
            results.append(run(spec, out / spec.name, log))
        except RuntimeError as error:
            fail(f"{entry.name}: {error}")
    typer.echo("")
    typer.echo(results_table(results))
    typer.echo("")
    base, instruct = results[0], results[1]  # Gemma 3 270M base, SmolLM2-135M-Instruct
    typer.echo(job.paired_win_difference(base, instruct, (_annotations(base), _annotations(instruct))))
    typer.echo("")

    if limit is not None:
        typer.echo("no leaderboard with --limit: a submission must answer the whole evaluation set")
        return
    from ..leaderboard.build import publish

    def submit_all() -> None:
        for result in results:
            submit_run(result, submissions, extra=job.submission_metadata(judge))

    try:
        publish(submit_all, submissions, boards, "the demo's submissions")
    except ValueError as error:
        fail(str(error))
    typer.echo(f"leaderboard: {boards / 'leaderboard.md'} (and .csv, .json, .html, .png)")


def _annotations(result) -> list:
    import json

    return json.loads((result.folder / "annotations.json").read_text(encoding="utf-8"))


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
