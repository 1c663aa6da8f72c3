"""`implicit-if judge`: compare model outputs with reference outputs; write AlpacaEval annotations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from ..judging.specs import DEFAULT_OFFLINE_JUDGE, JudgeSpec
from ._common import atomic_write_json, check_output_path, fail, print_json


def judge(
    outputs: Path = typer.Option(..., "--outputs", help="Model outputs (AlpacaEval model_outputs JSON list)."),
    reference: str = typer.Option(
        ...,
        "--reference",
        help=(
            "Reference outputs: a model_outputs JSON file, or dataset:alpaca_eval / dataset:offline_instructions "
            "for the dataset's own reference outputs."
        ),
    ),
    judge_spec: str = typer.Option(
        DEFAULT_OFFLINE_JUDGE,
        "--judge",
        help=(
            "Judge SPEC: a built-in name (`implicit-if judges` lists them), a YAML file, "
            "or KIND:MODEL with KIND logprobs, verdict, local or local-vllm."
        ),
    ),
    output: Path | None = typer.Option(
        None,
        "--output",
        "-o",
        help="Where to write the annotations (AlpacaEval annotations JSON list); required unless --estimate.",
    ),
    base_url: str | None = typer.Option(
        None, "--base-url", help="Override the judge endpoint (OpenAI-compatible, ending in /v1)."
    ),
    api_key_env: str | None = typer.Option(
        None,
        "--api-key-env",
        help=(
            "Name of the environment variable holding the API key "
            "(the key itself is never accepted on the command line)."
        ),
    ),
    concurrency: int | None = typer.Option(None, "--concurrency", min=1, help="Requests in flight at once."),
    timeout: float | None = typer.Option(
        None, "--timeout", min=0.001, help="Seconds before a request counts as timed out (then retried)."
    ),
    max_retries: int | None = typer.Option(
        None, "--max-retries", min=0, help="Retries per request on 429, 5xx, timeouts and unusable bodies."
    ),
    both_orders: bool | None = typer.Option(
        None,
        "--both-orders/--one-order",
        help=(
            "Judge each pair in both orders and average (cancels position bias; twice the requests). "
            "Default: the spec's setting."
        ),
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the per-instruction order (and of retry jitter)."),
    cache: Path | None = typer.Option(
        None, "--cache", help="SQLite verdict cache (default: the user cache's judge/verdicts.sqlite)."
    ),
    partial: bool = typer.Option(
        False, "--partial", help="Write the annotations even if some requests failed (their preference is null)."
    ),
    offline: bool = typer.Option(False, "--offline", help="With dataset:NAME references, use the bundled fixture."),
    estimate: bool = typer.Option(
        False,
        "--estimate",
        help=(
            "Send nothing: print the comparisons already cached, the requests left, their input and output tokens, "
            "cost and time, then exit."
        ),
    ),
    as_json: bool = typer.Option(False, "--json", help="With --estimate: print the estimate as JSON."),
    tokenizer: str | None = typer.Option(
        None,
        "--tokenizer",
        help=(
            "With --estimate: the judge's tokenizer (embedded model name, HF name or local path) for the token "
            "count. Default: the spec's `tokenizer`, else the judge's own model where it is here."
        ),
    ),
) -> None:
    """Judge each model output against the reference output for the same instruction.

    Verdicts are cached and committed one by one: rerun the same command after an interruption
    and only the missing verdicts are requested. Prints tokens and cost at the end; `--estimate`
    prints what the run would send (requests, tokens, cost, time) and sends nothing.

    Example: implicit-if judge --outputs outputs.json --reference dataset:offline_instructions --output annotations.json
    """
    from ..judging import EndpointError, judge_outputs, load_judge_spec

    if as_json and not estimate:
        fail("--json prints the estimate: use it with --estimate")
    if tokenizer is not None and not estimate:
        fail("--tokenizer is for the token count of --estimate: use it with --estimate")
    if not estimate:
        if output is None:
            fail("--output is required: where to write the annotations (or pass --estimate to send nothing)")
        check_output_path(output)  # before any work: a bad path must not cost a judging run
    model_outputs = read_model_outputs(outputs)
    references = _load_reference(reference, offline, {o["instruction"] for o in model_outputs})
    try:
        spec = load_judge_spec(
            judge_spec,
            base_url=base_url,
            api_key_env=api_key_env,
            concurrency=concurrency,
            timeout_s=timeout,
            max_retries=max_retries,
            tokenizer=tokenizer,
        )
    except ValueError as error:
        fail(str(error))
    if estimate:
        _print_estimate(model_outputs, references, spec, cache, seed, both_orders, as_json)
        return
    assert output is not None
    try:
        annotations, summary = judge_outputs(
            model_outputs, references, spec, cache_path=cache, seed=seed, both_orders=both_orders
        )
    except EndpointError as error:
        fail(f"{error}. Verdicts received so far are cached; rerun to continue.")
    except ValueError as error:
        fail(str(error))
    typer.echo(summary.line(), err=True)
    from ..winrate.bias import bias_line, judge_bias

    typer.echo(bias_line(judge_bias([a for a in annotations if a.get("preference") is not None])), err=True)
    if not summary.complete and not partial:
        reasons = list(summary.failed.values())
        hint = ""
        if spec.kind == "openai_logprobs" and all("log-probabilities" in r for r in reasons):
            hint = (
                " This endpoint seems to drop log-probabilities (some proxies do): use a verdict judge instead "
                f"(--judge verdict:{spec.model}, or kind openai_verdict in a spec file)."
            )
        fail(
            f"{len(reasons)} comparisons failed (e.g. {reasons[0]}); nothing written to {output}. "
            f"Rerun the same command to retry only those, or pass --partial.{hint}",
            code=1,
        )
    atomic_write_json(output, annotations)
    typer.echo(f"wrote {len(annotations)} annotations to {output}")


def _print_estimate(
    model_outputs: list[dict[str, Any]],
    references: list[dict[str, Any]],
    spec: JudgeSpec,
    cache: Path | None,
    seed: int,
    both_orders: bool | None,
    as_json: bool,
) -> None:
    """`judge --estimate`: what the same command without it would send; nothing is sent or written."""
    from ..judging.estimate import estimate_judging

    try:
        result = estimate_judging(model_outputs, references, spec, cache_path=cache, seed=seed, both_orders=both_orders)
    except ValueError as error:
        fail(str(error))
    if as_json:
        print_json(result.as_dict())
    else:
        typer.echo(result.table())
        typer.echo("estimate only: nothing was sent", err=True)


def read_model_outputs(path: Path) -> list[dict[str, Any]]:
    """A model_outputs JSON list, checked against the outputs record (`implicit_if.records`)."""
    from ..records import RecordError, read_records

    if not path.is_file():
        fail(f"{path} does not exist")
    try:
        records = read_records(path, "outputs")
    except RecordError as error:
        fail(str(error))
    if not records:
        fail(f"{path} must be a non-empty JSON list of model outputs (AlpacaEval's model_outputs format)")
    return records


def _load_reference(reference: str, offline: bool, wanted: set[str]) -> list[dict[str, Any]]:
    from ..judging.references import DATASET_PREFIX, dataset_references

    if not reference.startswith(DATASET_PREFIX):
        return read_model_outputs(Path(reference))
    from ..data import DatasetUnavailable

    try:
        return dataset_references(
            reference[len(DATASET_PREFIX) :], offline=True if offline else None, instructions=wanted
        )
    except DatasetUnavailable as error:
        fail(str(error))


judges_app = typer.Typer(
    help="Judge specs: list them, validate one on pairs with a known better answer.", invoke_without_command=True
)


@judges_app.callback()
def judges_main(ctx: typer.Context) -> None:
    """List the built-in judge specs (`judges validate --help` for the validation table)."""
    if ctx.invoked_subcommand is None:
        list_judges()


@judges_app.command("list")
def list_judges() -> None:
    """List the built-in judge specs."""
    from ..judging import builtin_spec_names, load_judge_spec

    for name in builtin_spec_names():
        spec = load_judge_spec(name)
        where = spec.backend if spec.is_local else spec.base_url
        typer.echo(f"{name:28s} {spec.kind:16s} {spec.model}  ({where})")


@judges_app.command("validate")
def validate(
    judge_specs: list[str] = typer.Option(..., "--judge", help="Judge SPEC to validate (repeat for several)."),
    split: str = typer.Option("heldout", "--split", help="heldout (default: nothing is tuned on it), dev, or all."),
    as_json: bool = typer.Option(False, "--json", help="Print the table as JSON."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Also write the JSON table here."),
    cache: Path | None = typer.Option(None, "--cache", help="SQLite verdict cache (default: the user cache's)."),
) -> None:
    """Accuracy of judges on pairs with a known better answer, beside the `longest` and `random` baselines.

    Each pair is judged in both orders through the normal judging path (cached, resumable).
    Prints accuracy (overall, blatant categories, where the shorter answer is better, per category),
    position consistency, P(prefers the first shown), P(prefers the longer) with 95% intervals,
    and seconds per 1,000 verdicts on this machine.
    """
    from ..judging import load_judge_spec
    from ..judging.validate import averages_orders, baseline_verdicts, judge_pairs, load_pairs, summarise
    from ..judging.validation_table import render_table

    if split not in ("heldout", "dev", "all"):
        fail(f"unknown split {split!r}: use heldout, dev or all")
    if output is not None:
        check_output_path(output)
    pairs = load_pairs(split)  # type: ignore[arg-type]
    rows = []
    for spec_text in judge_specs:
        try:
            spec = load_judge_spec(spec_text)
        except ValueError as error:
            fail(str(error))
        try:
            results, facts = judge_pairs(pairs, spec, cache_path=cache)
        except RuntimeError as error:
            fail(str(error))
        rows.append(
            {
                "judge": spec.name,
                "kind": spec.kind,
                "model": spec.model,
                "dtype": spec.effective_dtype,
                "judge_config": spec.identity_hash(),
                **summarise(results, averages_orders(spec)),
                **facts,
            }
        )
    for baseline in ("longest", "random"):
        rows.append({"judge": baseline, "kind": "baseline", **summarise(baseline_verdicts(pairs, baseline), True)})
    table = {"split": split, "n_pairs": len(pairs), "judges": rows}
    if output is not None:
        atomic_write_json(output, table)
    if as_json:
        print_json(table)
    else:
        typer.echo(render_table(table))


def register(app: typer.Typer) -> None:
    app.command("judge")(judge)
    app.add_typer(judges_app, name="judges")
