"""`implicit-if contamination`: n-gram overlap between a training set and evaluation instructions."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import typer

from ..io import parse_jsonl
from ._common import atomic_write_jsonl, fail, print_json

TEXT_FIELDS = ("instruction", "response", "output", "text")


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSONL file (one object per line) or of a JSON list of objects."""
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path} is not valid JSON ({error.msg}, line {error.lineno})") from None
    else:
        rows = parse_jsonl(text, path)[0]
    for position, row in enumerate(rows):
        if not isinstance(row, dict) or not any(isinstance(row.get(key), str) for key in TEXT_FIELDS):
            raise ValueError(f"{path}: item {position} has none of the text fields {', '.join(TEXT_FIELDS)}")
    return rows


def _load(source: str, offline: bool, what: str) -> list[dict[str, Any]]:
    path = Path(source)
    if path.is_file():
        try:
            return read_rows(path)
        except (ValueError, UnicodeDecodeError) as error:
            fail(str(error))
    from ..data import DatasetUnavailable, dataset_names, load_pairs

    if source not in dataset_names():
        fail(
            f"--{what} {source!r} is neither a file nor a dataset name: "
            f"give a JSONL/JSON file or one of {', '.join(dataset_names())}"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            return load_pairs(source, offline=True if offline else None)
    except DatasetUnavailable as error:
        fail(str(error))


def _texts(rows: list[dict[str, Any]], fields: list[str]) -> list[str]:
    return ["\n".join(row[f] for f in fields if isinstance(row.get(f), str)) for row in rows]


def contamination(
    train: str = typer.Option(
        ..., "--train", help="Training set: a dataset name (e.g. lima, gsm8k) or a JSONL/JSON file of pairs."
    ),
    eval_set: str = typer.Option(
        "alpaca_eval",
        "--eval",
        help="Evaluation set: a dataset name or a JSONL/JSON file (e.g. AlpacaEval model_outputs).",
    ),
    train_fields: str = typer.Option(
        "instruction,response", "--train-fields", help="Fields of each training row to search (the model saw both)."
    ),
    eval_fields: str = typer.Option("instruction", "--eval-fields", help="Fields of each evaluation row to check."),
    n: int = typer.Option(
        13, "--n", min=1, help="n-gram length in word tokens (13 as in GPT-3's and lm-eval's decontamination)."
    ),
    min_overlap: float = typer.Option(
        0.0,
        "--min-overlap",
        min=0.0,
        max=1.0,
        help="Flag when at least this share of an example's n-grams is in training (0: any shared n-gram).",
    ),
    output: Path | None = typer.Option(
        None,
        "--output",
        "-o",
        help="Write one JSONL record per evaluation example (index, counts, overlap, matched_train, flagged).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    offline: bool = typer.Option(False, "--offline", help="Use the bundled offline fixtures instead of the hub."),
) -> None:
    """Check evaluation instructions for n-gram overlap with a training set, per example, flagged.

    Example: implicit-if contamination --train lima --eval alpaca_eval --output overlap.jsonl --json
    """
    from ..contamination import contamination_records, contamination_summary

    train_rows = _load(train, offline, "train")
    eval_rows = _load(eval_set, offline, "eval")
    if not eval_rows:
        fail(f"--eval {eval_set!r} holds no examples")
    t_fields = [f.strip() for f in train_fields.split(",") if f.strip()]
    e_fields = [f.strip() for f in eval_fields.split(",") if f.strip()]
    if not t_fields or not e_fields:
        fail("--train-fields and --eval-fields need at least one field name each")
    records = contamination_records(
        _texts(eval_rows, e_fields), _texts(train_rows, t_fields), n=n, min_overlap=min_overlap, progress=True
    )
    for record, row in zip(records, eval_rows):
        if "id" in row:
            record["id"] = row["id"]
    if output is not None:
        atomic_write_jsonl(output, records)
    summary = contamination_summary(records)
    summary.update(n=n, min_overlap=min_overlap, train=train, eval=eval_set, n_train=len(train_rows))
    if as_json:
        print_json(summary)
        return
    typer.echo(
        f"{summary['n_flagged']} of {summary['n_examples']} evaluation examples share a {n}-gram with {train} "
        f"({summary['flagged_rate']:.1%}, 95% CI {summary['ci_low']:.1%} to {summary['ci_high']:.1%})"
        + (f"; records in {output}" if output else "")
    )


def register(app: typer.Typer) -> None:
    app.command("contamination")(contamination)
