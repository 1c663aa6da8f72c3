"""`implicit-if leak`: how often single-task styles (GSM, code, chess, poems, recipes) show up."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from ._common import atomic_write_jsonl, check_output_path, fail, print_json


def read_model_outputs(path: Path) -> list[dict[str, Any]]:
    """AlpacaEval model_outputs: a JSON list of objects, each with a string `output`."""
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{path} is not valid JSON ({error.msg}, line {error.lineno}): "
            "expected AlpacaEval model_outputs, a JSON list of objects"
        ) from None
    if not isinstance(payload, list):
        raise ValueError(
            f"{path} holds a JSON {type(payload).__name__}, not a list: "
            'expected AlpacaEval model_outputs (a list of objects with "output")'
        )
    for position, row in enumerate(payload):
        if not isinstance(row, dict) or not isinstance(row.get("output"), str):
            raise ValueError(
                f'{path}: item {position} has no string "output" field; '
                "every item needs one (AlpacaEval model_outputs format)"
            )
    return payload


def leak(
    outputs: Path = typer.Argument(
        ..., help="AlpacaEval model_outputs JSON (a list of objects with instruction, output, generator)."
    ),
    records: Path | None = typer.Option(
        None, "--records", help="Write one JSONL line per output: `index` and one boolean per detector."
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print per-detector rates with 95% Wilson intervals, keyed by detector name."
    ),
    detectors: str | None = typer.Option(
        None, "--detectors", help="Comma-separated detector names (default: all of them)."
    ),
) -> None:
    """Count style leakage: run every detector over every output and report rates with 95% CIs.

    Detectors: gsm (last line `#### <number>`), gsm_calculator (`<<a+b=c>>` marks), code,
    chess (PGN moves), poem (verse layout), recipe (ingredient list, then steps).

    Example: implicit-if leak outputs.json --records leakage.jsonl --json
    """
    from ..leakage import DETECTORS, leakage_records, leakage_summary

    if records is not None:
        check_output_path(records, "--records")
    names = list(DETECTORS)
    if detectors:
        names = [name.strip() for name in detectors.split(",") if name.strip()]
        unknown = [name for name in names if name not in DETECTORS]
        if unknown or not names:
            fail(f"unknown detector(s) {', '.join(unknown) or '(none given)'}: choose from {', '.join(DETECTORS)}")
    if not outputs.is_file():
        fail(
            f"outputs file {outputs} does not exist: "
            "give AlpacaEval model_outputs JSON (e.g. from `implicit-if generate`)"
        )
    try:
        rows = read_model_outputs(outputs)
    except (ValueError, UnicodeDecodeError) as error:
        fail(str(error))
    if not rows:
        fail(f"{outputs} holds no outputs: nothing to measure")
    per_output = leakage_records([row["output"] for row in rows], names)
    if records is not None:
        atomic_write_jsonl(records, per_output)
    summary = leakage_summary(per_output, names)
    if as_json:
        print_json(summary)
        return
    from tabulate import tabulate

    table = [
        [name, f"{s['rate']:.3f}", f"[{s['ci_low']:.3f}, {s['ci_high']:.3f}]", f"{s['count']}/{s['n']}"]
        for name, s in summary.items()
    ]
    typer.echo(tabulate(table, headers=["detector", "rate", "95% CI (Wilson)", "count"]))


def register(app: typer.Typer) -> None:
    app.command("leak")(leak)
