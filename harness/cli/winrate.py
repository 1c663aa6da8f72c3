"""`implicit-if winrate`: win rate and length-controlled win rate of AlpacaEval annotations."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import typer

from ._common import atomic_write_json, atomic_write_text, check_output_path, fail, print_json

HEADLINE = ("length_controlled_winrate", "win_rate", "discrete_win_rate")


def winrate(
    annotations: Path = typer.Argument(
        ...,
        help=(
            "AlpacaEval annotations JSON list "
            "(instruction, output_1 = reference, output_2 = model, preference in [1, 2])."
        ),
    ),
    difficulty: Path | None = typer.Option(
        None, "--difficulty", help="CSV with columns instruction, instruction_difficulty (matched by instruction text)."
    ),
    joint_with: list[Path] | None = typer.Option(
        None,
        "--joint-with",
        help=(
            "Annotations of other models against the same reference: "
            "estimate instruction difficulty jointly with them (repeatable)."
        ),
    ),
    regularize_to: list[Path] | None = typer.Option(
        None,
        "--regularize-to",
        help="Baseline annotations to regularise the GLM towards (repeatable; weight 0.2 in all, as AlpacaEval).",
    ),
    no_regularization: bool = typer.Option(
        False,
        "--no-regularization",
        help=(
            "Fit on this model's annotations alone (AlpacaEval's length_controlled_noreg), "
            "even if --regularize-to is given."
        ),
    ),
    as_json: bool = typer.Option(False, "--json", help="Print all metrics as JSON."),
    output: Path | None = typer.Option(
        None,
        "--output",
        "-o",
        help="Write the annotations back (same format) with normalised preference and glm_preference.",
    ),
    save_difficulty: Path | None = typer.Option(
        None, "--save-difficulty", help="Write the difficulty used (e.g. the joint estimate) as CSV."
    ),
    no_ci: bool = typer.Option(False, "--no-ci", help="Skip the bootstrap confidence intervals."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap."),
) -> None:
    """Win rate, discrete win rate and length-controlled (LC) win rate, in percent, with 95% CIs.

    Metrics follow AlpacaEval 2: preference 0 or 1.5 is a draw; NaN and values outside [1, 2] are
    dropped; identical outputs are a draw. Instruction difficulty for the LC GLM comes from
    --difficulty, or a joint estimate over --joint-with annotations, or is 0.
    """
    from ..winrate import (
        DEFAULT_REGULARIZATION,
        annotate_with_glm,
        compute_metrics,
        difficulty_csv_text,
        estimate_instruction_difficulty,
        length_controlled_winrate,
        read_difficulty_csv,
    )

    for path, option in ((output, "--output"), (save_difficulty, "--save-difficulty")):
        if path is not None:
            check_output_path(path, option)
    if difficulty is not None and not difficulty.is_file():
        fail(f"--difficulty {difficulty} does not exist: give a CSV with columns instruction, instruction_difficulty")
    records = read_annotations(annotations)
    if not records:
        fail(f"{annotations} holds no annotations: judge some outputs first (implicit-if judge)")
    if difficulty and joint_with:
        fail("give either --difficulty or --joint-with, not both")
    table = None
    source = "none (0)"
    try:
        if difficulty:
            try:
                table, source = read_difficulty_csv(difficulty), f"file {difficulty}"
            except UnicodeDecodeError:
                fail(f"--difficulty {difficulty} is not UTF-8 text: save the CSV as UTF-8")
        elif joint_with:
            others = {str(p): read_annotations(p) for p in joint_with}
            table = estimate_instruction_difficulty({str(annotations): records, **others})
            source = f"joint estimate over {len(others) + 1} models"
        baselines = [read_annotations(p) for p in regularize_to or []]
        regularization = None if no_regularization else DEFAULT_REGULARIZATION
        metrics = compute_metrics(
            records,
            difficulty=table,
            baseline_annotations=baselines,
            regularization=regularization,
            confidence_intervals=not no_ci,
            seed=seed,
        )
    except ValueError as error:
        fail(str(error))
    if metrics.get("n_total", 0) == 0:
        fail(f"{annotations}: every preference was dropped (NaN, not a number, or outside [1, 2]): nothing to rate")
    metrics["difficulty_source"] = source
    if save_difficulty and table is not None:
        atomic_write_text(save_difficulty, difficulty_csv_text(table))
    if output:
        fit = length_controlled_winrate(
            records, difficulty=table, baseline_annotations=baselines, regularization=regularization, seed=seed
        )
        atomic_write_json(output, annotate_with_glm(records, fit))
    if as_json:
        print_json(_json_safe(metrics))
        return
    _print_table(metrics)


def read_annotations(path: Path) -> list[dict[str, Any]]:
    from ..winrate import check_annotations

    if not path.is_file():
        fail(f"{path} does not exist")
    try:
        return check_annotations(json.loads(path.read_text(encoding="utf-8")))
    except json.JSONDecodeError as error:
        fail(f"{path} is not valid JSON ({error.msg} at line {error.lineno})")
    except ValueError as error:
        fail(f"{path}: {error}")


def _json_safe(value: Any) -> Any:
    """NaN is not JSON: write null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    return value


def _print_table(metrics: dict[str, Any]) -> None:
    from tabulate import tabulate

    rows = []
    for name in HEADLINE:
        low, high = metrics.get(f"{name}_ci_low"), metrics.get(f"{name}_ci_high")
        ci = f"[{low:.1f}, {high:.1f}]" if low is not None and high is not None and math.isfinite(low) else ""
        rows.append([name, f"{metrics[name]:.2f}", ci])
    typer.echo(tabulate(rows, headers=["metric (%)", "value", "95% CI"], disable_numparse=True))
    typer.echo(
        f"n = {metrics['n_total']} ({metrics['n_wins']} wins, {metrics['n_wins_base']} losses, "
        f"{metrics['n_draws']} draws, {metrics['n_dropped']} dropped); standard error {metrics['standard_error']:.2f}; "
        f"difficulty: {metrics['difficulty_source']}"
    )
    from ..winrate.bias import bias_line

    typer.echo(bias_line(metrics.get("judge_bias") or {}))


def register(app: typer.Typer) -> None:
    app.command("winrate")(winrate)
