"""`implicit-if rank`: response ranking (does the model prefer an instruction's own response?)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import typer

from ..records import write_records
from ._common import check_output_path, fail, print_json


def rank(
    model: str = typer.Option(
        ..., "--model", "-m", help="Embedded model name (`implicit-if models list`), hub id or local path."
    ),
    pairs_file: Path | None = typer.Option(
        None,
        "--pairs",
        help='JSONL file, one {"instruction": ..., "response": ...} object per line (instead of --dataset).',
    ),
    dataset: str = typer.Option(
        "alpaca",
        "--dataset",
        help="Named dataset of pairs when no --pairs file (see implicit_if.data); the study uses alpaca.",
    ),
    limit: int | None = typer.Option(
        1000, "--limit", min=2, help="Use the first N pairs (the study: the first 1,000 Alpaca training examples)."
    ),
    distractors: int = typer.Option(
        5, "--distractors", "-k", min=1, help="Distractor responses per instruction, drawn from other pairs."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed for drawing the distractors (and the bootstrap)."),
    fmt: str = typer.Option(
        "tulu", "--format", help="Chat format of the prompt: tulu (the study's), ab or chat_template."
    ),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write one ranking record per scored (instruction, response) to this JSONL file."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the summary (rates, counts, 95% CIs) as JSON."),
    conditional: bool = typer.Option(
        True,
        "--conditional/--no-conditional",
        help=(
            "Also score each response under its distractor instructions "
            "for the p(r|i) > p(r|i') view (about twice the work)."
        ),
    ),
    backend: str = typer.Option(
        "hf", "--backend", help="hf (transformers, with the fast scorer), vllm or openai (their score())."
    ),
    dtype: str = typer.Option(
        "float32", "--dtype", help="float32 (default; exact) or bfloat16 (faster on CPUs with AMX and on GPUs)."
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:1, ... (hf backend)."),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Responses per forward pass (hf backend)."),
    scorer: str = typer.Option(
        "fast", "--scorer", help="fast (shared prompt cache, output layer only where scored) or plain (reference)."
    ),
    offline: bool = typer.Option(False, "--offline", help="Use the bundled offline fixture instead of the hub."),
    base_url: str | None = typer.Option(
        None, "--base-url", help="Endpoint for the openai backend (e.g. http://127.0.0.1:8000/v1)."
    ),
) -> None:
    """Rank each instruction's own response against K distractor responses (the study's Eq. 3).

    A comparison is won when the model gives the true response a higher per-token mean
    log-probability (response + EOS) than a distractor. The summary also gives the raw-sum view
    and the instruction-conditional view, with 95% bootstrap CIs over instructions.

    Example: implicit-if rank --model smollm2-135m-instruct --dataset alpaca --limit 200 --output scores.jsonl --json
    """
    from ..formats import check_format
    from ..ranking import plan_comparisons, summarize

    if output is not None:
        check_output_path(output)
    try:
        check_format(fmt)
    except ValueError as error:
        fail(str(error))
    if scorer not in ("fast", "plain"):
        fail(f"unknown --scorer {scorer!r}: use fast or plain")
    if dtype not in ("float32", "bfloat16", "float16", "auto"):
        fail(f"unknown --dtype {dtype!r}: use float32 or bfloat16")
    pairs = _load_pairs(pairs_file, dataset, offline, limit)
    try:
        plan_comparisons(len(pairs), distractors, seed)  # fail fast on too few pairs, before loading a model
    except ValueError as error:
        fail(str(error))

    records = _score(
        model, pairs, backend, distractors, seed, fmt, conditional, dtype, device, batch_size, scorer, base_url
    )
    if output is not None:
        write_records(output, records, "ranking")
    summary = summarize(records, seed=seed)
    summary.update(
        model=model,
        format=fmt,
        distractors=distractors,
        seed=seed,
        n_pairs=len(pairs),
        data=str(pairs_file) if pairs_file else dataset,
        n_records=len(records),
        scorer=scorer,
        dtype=dtype,
    )
    if as_json:
        print_json(summary)
        return
    main = summary["response_ranking"]
    typer.echo(
        f"response ranking: {main['estimate']:.3f} [{main['ci_low']:.3f}, {main['ci_high']:.3f}] "
        f"({main['n_comparisons']} comparisons over {main['n_instructions']} instructions)"
        + (f"; records in {output}" if output else "")
    )


def _score(
    model: str,
    pairs: list[dict[str, Any]],
    backend: str,
    k: int,
    seed: int,
    fmt: str,
    conditional: bool,
    dtype: str,
    device: str,
    batch_size: int,
    scorer: str,
    base_url: str | None,
) -> list[dict[str, Any]]:
    from ..backends import BACKEND_NAMES, get_backend
    from ..ranking import rank

    if backend not in BACKEND_NAMES:
        fail(f"unknown --backend {backend!r}: use one of {', '.join(BACKEND_NAMES)}")
    options: dict[str, Any] = {}
    if backend == "hf":
        options = {"device": None if device == "auto" else device, "dtype": dtype, "fast_scoring": scorer == "fast"}
    elif backend == "openai" and base_url:
        options = {"base_url": base_url}
    try:
        engine = get_backend(backend, model, **options)
    except (ImportError, OSError, ValueError, RuntimeError) as error:
        fail(f"cannot load model {model!r} on the {backend} backend: {error}")
    try:
        return rank(
            engine, pairs, k=k, seed=seed, fmt=fmt, conditional=conditional, batch_size=batch_size, progress=True
        )
    except NotImplementedError as error:
        fail(f"the {backend} backend cannot score continuations ({error}): use --backend hf")


def _load_pairs(path: Path | None, dataset: str, offline: bool, limit: int | None) -> list[dict[str, Any]]:
    if path is not None:
        if not path.is_file():
            fail(
                f"pairs file {path} does not exist: give a JSONL file of instruction/response objects, or use --dataset"
            )
        from ..ranking import read_pairs_jsonl

        try:
            pairs = read_pairs_jsonl(path)
        except (ValueError, UnicodeDecodeError) as error:
            fail(str(error))
        return pairs[:limit] if limit else pairs
    from ..data import DatasetUnavailable, load_pairs

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")  # show the fixture fallback warning once
            return load_pairs(dataset, offline=True if offline else None, limit=limit)
    except DatasetUnavailable as error:
        fail(str(error))


def register(app: typer.Typer) -> None:
    app.command("rank")(rank)
