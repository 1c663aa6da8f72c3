"""`implicit-if leaderboard check | build | schema`: validate submissions and (re)generate the boards."""

from __future__ import annotations

from pathlib import Path

import typer

from ._common import atomic_write_text, fail

SUBMISSIONS = Path("leaderboards/submissions")
BOARDS = Path("leaderboards")

leaderboard_app = typer.Typer(
    help="Check third-party submissions and build the boards (Markdown, CSV, JSON, HTML, PNG) with bootstrap CIs.",
    no_args_is_help=True,
)


def _report(problems: list) -> None:
    for problem in problems:
        typer.secho(
            problem.line(), err=True, fg=typer.colors.RED if problem.severity == "error" else typer.colors.YELLOW
        )


@leaderboard_app.command("check")
def check(
    names: list[str] = typer.Argument(
        None,
        help="Only report these submission folders (e.g. the ones a pull "
        "request changed); rules across entries still see all of them.",
    ),
    submissions: Path = typer.Option(SUBMISSIONS, "--submissions", help="Folder holding one folder per entry."),
    strict: bool = typer.Option(False, "--strict", help="Treat warnings (e.g. a suspicious LC gap) as failures."),
    rejudge: bool = typer.Option(
        False,
        "--rejudge",
        help="Also re-judge the entries (the named ones, else all) "
        "whose judge runs here (the offline local judges), through the verdict cache, "
        "and refuse preferences that differ (the pull-request job does this).",
    ),
    cache: Path = typer.Option(None, "--cache", help="SQLite verdict cache for --rejudge (default: the user cache's)."),
    rescore: bool = typer.Option(
        False,
        "--rescore",
        help="Also re-score a sample of the ranking pairs of the entries "
        "(the named ones, else all) whose model CI holds (embedded, pinned by digest) and "
        "refuse log-probabilities that differ (the pull-request job does this).",
    ),
) -> None:
    """Validate submissions: schema, alignment with the evaluation set by text, completeness,
    duplicates, recomputed vs claimed metrics, LC-vs-raw gap, file sizes, safe names and links,
    safetensors-only weights, no remote code. Prints one line per problem (file and fix); writes
    nothing but verdicts to the judge cache (--rejudge). Exit status 1 when any check fails."""
    from implicit_if.leaderboard.check import check_submissions
    from implicit_if.leaderboard.problems import errors
    from implicit_if.leaderboard.rejudge import rejudge_submissions
    from implicit_if.leaderboard.rescore import rescore_submissions

    entries, problems = check_submissions(submissions, only=names or None)
    if rejudge and not errors(problems):
        problems += rejudge_submissions(submissions, names or [e.name for e in entries], cache_path=cache)
    if rescore and not errors(problems):
        problems += rescore_submissions(submissions, names or [e.name for e in entries])
    _report(problems)
    failing = errors(problems) or (strict and problems)
    checked = len(names) if names else len(entries) + len({p.file.split("/")[0] for p in errors(problems)})
    if failing:
        typer.secho(
            f"{len(errors(problems))} errors, {len(problems) - len(errors(problems))} warnings in {submissions}",
            err=True,
            fg=typer.colors.RED,
        )
        raise typer.Exit(1)
    typer.echo(f"ok: {checked} submission(s) in {submissions} pass ({len(problems)} warnings)")


@leaderboard_app.command("build")
def build(
    submissions: Path = typer.Option(SUBMISSIONS, "--submissions", help="Folder holding one folder per entry."),
    out: Path = typer.Option(
        BOARDS, "--out", help="Where the board files go (leaderboard.md/.csv/.json/.png, index.html)."
    ),
    check_only: bool = typer.Option(
        False,
        "--check",
        help="Write nothing; exit 1 with a diff summary when the files in --out differ from a fresh build (for CI).",
    ),
    resamples: int = typer.Option(10_000, "--resamples", min=100, help="Bootstrap resamples."),
    seed: int = typer.Option(0, "--seed", help="Bootstrap seed (fixed, so builds are reproducible)."),
    confidence: float = typer.Option(0.95, "--confidence", min=0.5, max=0.999, help="Interval coverage."),
    method: str = typer.Option("BCa", "--method", help="Bootstrap interval: BCa or percentile."),
) -> None:
    """Check every submission, then write the boards: Markdown (tabulate), CSV, JSON, a static
    sortable HTML page with CI bars, and a PNG of the ranking metric (LC win rate) with 95% CIs. Same inputs give the
    same bytes. If any check fails, or any file cannot be written, the existing boards stay
    byte-identical."""
    from implicit_if.leaderboard.board import BootstrapSettings
    from implicit_if.leaderboard.build import BoardWriteError, build_boards, check_out, stale_files, write_boards
    from implicit_if.leaderboard.problems import SubmissionError

    if method.lower() not in {"bca", "percentile"}:
        fail(f"--method {method!r} is not known: use BCa or percentile")
    if not check_only:
        try:  # before the checks and the bootstrap, which take minutes on a full board
            check_out(out)
        except BoardWriteError as exc:
            fail(f"cannot write the boards: {exc}", 1)
    settings = BootstrapSettings(
        n_resamples=resamples,
        seed=seed,
        confidence=confidence,
        method="BCa" if method.lower() == "bca" else "percentile",
    )
    try:
        result = build_boards(submissions, settings)
    except SubmissionError as exc:
        _report(exc.problems)
        typer.secho("build stopped: fix the problems above; no board file was written", err=True, fg=typer.colors.RED)
        raise typer.Exit(1) from None
    _report(result.problems)
    if check_only:
        stale = stale_files(out, result.files)
        if stale:
            for line in stale:
                typer.secho(f"stale: {out / line}", err=True, fg=typer.colors.RED)
            typer.secho(
                "the committed boards differ from a fresh build: run `implicit-if leaderboard build` "
                "and commit the result",
                err=True,
                fg=typer.colors.RED,
            )
            raise typer.Exit(1)
        typer.echo(f"ok: the boards in {out} are up to date ({len(result.entries)} entries)")
        return
    try:
        write_boards(out, result.files)
    except BoardWriteError as exc:
        fail(f"cannot write the boards: {exc}", 1)
    typer.echo(f"wrote {', '.join(sorted(result.files))} to {out} ({len(result.entries)} entries)")


@leaderboard_app.command("schema")
def schema(
    out: Path = typer.Option(None, "--out", help="Write the JSON Schema here instead of printing it."),
) -> None:
    """Print the JSON Schema of a submission's metadata.json (version 1)."""
    from implicit_if.leaderboard.schema import json_schema_text

    text = json_schema_text()
    if out is None:
        typer.echo(text, nl=False)
    else:
        atomic_write_text(out, text)


def register(app: typer.Typer) -> None:
    app.add_typer(leaderboard_app, name="leaderboard")
