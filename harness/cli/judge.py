"""`implicit-if judge`: compare model outputs with reference outputs; write AlpacaEval annotations."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from ._common import atomic_write_json, fail

def judge(
    outputs: Path = typer.Option(..., "--outputs", help="Model outputs (AlpacaEval model_outputs JSON list)."),
    reference: str = typer.Option(..., "--reference", help="Reference outputs: a model_outputs JSON file, or dataset:alpaca_eval / dataset:offline_instructions for the dataset's own reference outputs."),
    judge_spec: str = typer.Option("smollm2-local", "--judge", help="Judge SPEC: a built-in name (`implicit-if judges` lists them), a YAML file, or KIND:MODEL with KIND logprobs, verdict, local or local-vllm."),
    output: Path = typer.Option(..., "--output", "-o", help="Where to write the annotations (AlpacaEval annotations JSON list)."),
    base_url: Optional[str] = typer.Option(None, "--base-url", help="Override the judge endpoint (OpenAI-compatible, ending in /v1)."),
    api_key_env: Optional[str] = typer.Option(None, "--api-key-env", help="Name of the environment variable holding the API key (the key itself is never accepted on the command line)."),
    concurrency: Optional[int] = typer.Option(None, "--concurrency", min=1, help="Requests in flight at once."),
    timeout: Optional[float] = typer.Option(None, "--timeout", min=0.001, help="Seconds before a request counts as timed out (then retried)."),
    max_retries: Optional[int] = typer.Option(None, "--max-retries", min=0, help="Retries per request on 429, 5xx, timeouts and unusable bodies."),
    both_orders: Optional[bool] = typer.Option(None, "--both-orders/--one-order", help="Judge each pair in both orders and average (cancels position bias; twice the requests). Default: the spec's setting."),
    seed: int = typer.Option(0, "--seed", help="Seed of the per-instruction order (and of retry jitter)."),
    cache: Optional[Path] = typer.Option(None, "--cache", help="SQLite verdict cache (default: the user cache's judge/verdicts.sqlite)."),
    partial: bool = typer.Option(False, "--partial", help="Write the annotations even if some requests failed (their preference is null)."),
    offline: bool = typer.Option(False, "--offline", help="With dataset:NAME references, use the bundled fixture."),
) -> None:
    """Judge each model output against the reference output for the same instruction.

    Verdicts are cached and committed one by one: rerun the same command after an interruption
    and only the missing verdicts are requested. Prints tokens and cost at the end.

    Example: implicit-if judge --outputs outputs.json --reference dataset:offline_instructions --judge smollm2-local --output annotations.json
    """
    from ..judging import EndpointError, judge_outputs, load_judge_spec

    model_outputs = read_model_outputs(outputs)
    references = _load_reference(reference, offline, {o["instruction"] for o in model_outputs})
    try:
        spec = load_judge_spec(judge_spec, base_url=base_url, api_key_env=api_key_env, concurrency=concurrency,
                               timeout_s=timeout, max_retries=max_retries)
    except ValueError as error:
        fail(str(error))
    try:
        annotations, summary = judge_outputs(model_outputs, references, spec, cache_path=cache, seed=seed,
                                             both_orders=both_orders)
    except EndpointError as error:
        fail(f"{error}. Verdicts received so far are cached; rerun to continue.")
    except ValueError as error:
        fail(str(error))
    typer.echo(summary.line(), err=True)
    if not summary.complete and not partial:
        reasons = list(summary.failed.values())
        hint = ""
        if spec.kind == "openai_logprobs" and all("log-probabilities" in r for r in reasons):
            hint = (" This endpoint seems to drop log-probabilities (some proxies do): use a verdict judge instead "
                    f"(--judge verdict:{spec.model}, or kind openai_verdict in a spec file).")
        fail(f"{len(reasons)} comparisons failed (e.g. {reasons[0]}); nothing written to {output}. "
             f"Rerun the same command to retry only those, or pass --partial.{hint}", code=1)
    atomic_write_json(output, annotations)
    typer.echo(f"wrote {len(annotations)} annotations to {output}")


def read_model_outputs(path: Path) -> list[dict[str, Any]]:
    """A model_outputs JSON list, checked for the fields judging needs."""
    if not path.is_file():
        fail(f"{path} does not exist")
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        fail(f"{path} is not valid JSON ({error.msg} at line {error.lineno})")
    if not isinstance(records, list) or not records:
        fail(f"{path} must be a non-empty JSON list of model outputs (AlpacaEval's model_outputs format)")
    for index, record in enumerate(records):
        if not isinstance(record, dict) or not isinstance(record.get("instruction"), str) or not isinstance(record.get("output"), str):
            fail(f"{path}: record {index} needs string fields 'instruction' and 'output'")
    return records


def _load_reference(reference: str, offline: bool, wanted: set[str]) -> list[dict[str, Any]]:
    from ..judging.references import DATASET_PREFIX, dataset_references

    if not reference.startswith(DATASET_PREFIX):
        return read_model_outputs(Path(reference))
    from ..data import DatasetUnavailable

    try:
        return dataset_references(reference[len(DATASET_PREFIX):], offline=True if offline else None, instructions=wanted)
    except DatasetUnavailable as error:
        fail(str(error))


def list_judges() -> None:
    """List the built-in judge specs."""
    from ..judging import builtin_spec_names, load_judge_spec

    for name in builtin_spec_names():
        spec = load_judge_spec(name)
        where = spec.backend if spec.kind == "local" else spec.base_url
        typer.echo(f"{name:28s} {spec.kind:16s} {spec.model}  ({where})")


def register(app: typer.Typer) -> None:
    app.command("judge")(judge)
    app.command("judges")(list_judges)
