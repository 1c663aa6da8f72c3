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
    batch: bool = typer.Option(
        False,
        "--batch",
        help=(
            "Judge through the endpoint's Batch API (OpenAI's costs half): submit the uncached comparisons and "
            "return; rerun the same command to collect (it also resends what failed). Once every verdict is in, "
            "writes the annotations as the online run does."
        ),
    ),
    batch_wait: float | None = typer.Option(
        None, "--batch-wait", min=0.0, help="With --batch: keep polling up to this many seconds for the batches to end."
    ),
    batch_poll: float | None = typer.Option(
        None, "--batch-poll", min=0.01, help="With --batch-wait: seconds between two polls (default 60)."
    ),
    batch_max_requests: int | None = typer.Option(
        None,
        "--batch-max-requests",
        min=1,
        help="With --batch: at most this many requests per batch (default 50,000, OpenAI's limit).",
    ),
    batch_input_only: Path | None = typer.Option(
        None,
        "--batch-input-only",
        metavar="FILE",
        help=(
            "Write the uncached comparisons as a Batch API input file (JSON Lines) to this path and exit; sends "
            "nothing. Run it with vLLM's `python -m vllm.entrypoints.openai.run_batch -i FILE -o OUT ...`."
        ),
    ),
    batch_output: list[Path] | None = typer.Option(
        None,
        "--batch-output",
        metavar="FILE",
        help=(
            "Read verdicts from a batch output file (vLLM's run_batch, or a Batch API output or error file; "
            "repeat for several) into the cache, then write the annotations as the online run does."
        ),
    ),
) -> None:
    """Judge each model output against the reference output for the same instruction.

    Verdicts are cached and committed one by one: rerun the same command after an interruption
    and only the missing verdicts are requested. Prints tokens and cost at the end; `--estimate`
    prints what the run would send (requests, tokens, cost, time) and sends nothing.

    Example: implicit-if judge --outputs outputs.json --reference dataset:offline_instructions --output annotations.json

    Batches: `--batch` submits to the endpoint's Batch API and returns; the same command later collects
    (a killed run resumes from the batch ids recorded in the cache, and never submits twice).
    `--batch-input-only FILE` / `--batch-output FILE` run the same requests through vLLM's run_batch.
    """
    from ..judging import EndpointError, judge_outputs, load_judge_spec

    if as_json and not estimate:
        fail("--json prints the estimate: use it with --estimate")
    if tokenizer is not None and not estimate:
        fail("--tokenizer is for the token count of --estimate: use it with --estimate")
    _check_batch_options(estimate, batch, batch_input_only, batch_output, batch_wait, batch_poll, batch_max_requests)
    if batch_input_only is not None:
        check_output_path(batch_input_only, "--batch-input-only")
    elif not estimate:
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
    if batch or batch_input_only is not None or batch_output:
        _judge_in_batches(
            model_outputs,
            references,
            spec,
            cache=cache,
            seed=seed,
            both_orders=both_orders,
            output=output,
            partial=partial,
            submit=batch,
            input_only=batch_input_only,
            output_files=batch_output or [],
            wait_s=batch_wait or 0.0,
            poll_s=batch_poll or 60.0,
            max_requests=batch_max_requests or 50_000,
        )
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


def _check_batch_options(
    estimate: bool,
    batch: bool,
    input_only: Path | None,
    output_files: list[Path] | None,
    wait_s: float | None,
    poll_s: float | None,
    max_requests: int | None,
) -> None:
    modes = [
        name
        for name, on in (
            ("--estimate", estimate),
            ("--batch", batch),
            ("--batch-input-only", input_only is not None),
            ("--batch-output", bool(output_files)),
        )
        if on
    ]
    if len(modes) > 1:
        fail(f"{' and '.join(modes)} are different ways to run the judge: use one at a time")
    if not batch and (wait_s, poll_s, max_requests) != (None, None, None):
        fail("--batch-wait, --batch-poll and --batch-max-requests shape a --batch run: use them with --batch")
    for path in output_files or []:
        if not path.is_file():
            fail(f"--batch-output {path} does not exist: give the output file vLLM's run_batch or the Batch API wrote")


def _judge_in_batches(
    model_outputs: list[dict[str, Any]],
    references: list[dict[str, Any]],
    spec: JudgeSpec,
    *,
    cache: Path | None,
    seed: int,
    both_orders: bool | None,
    output: Path | None,
    partial: bool,
    submit: bool,
    input_only: Path | None,
    output_files: list[Path],
    wait_s: float,
    poll_s: float,
    max_requests: int,
) -> None:
    """`judge --batch`, `--batch-input-only`, `--batch-output`: see `implicit_if.judging.batch`."""
    from ..judging import EndpointError, plan_comparisons
    from ..judging.batch import (
        annotations_from_cache,
        batch_cost,
        check_batch_judge,
        collect_output_files,
        judge_with_batches,
        uncached,
        write_batch_input,
    )

    try:
        check_batch_judge(spec)
        pairs, per_pair, unique = plan_comparisons(model_outputs, references, spec, seed=seed, both_orders=both_orders)
    except ValueError as error:
        fail(str(error))

    def say(line: str) -> None:
        typer.echo(line, err=True)

    if input_only is not None:
        todo, in_batches = uncached(unique, cache)
        if in_batches:
            say(
                f"{in_batches} comparisons are in a Batch API batch not collected yet "
                "(collect it with --batch): not written"
            )
        if not todo:
            typer.echo(
                f"nothing to write: all {len(unique)} comparisons are cached or in a batch; {input_only} not written"
            )
            return
        write_batch_input(input_only, spec, todo)
        typer.echo(
            f"wrote {len(todo)} requests ({len(unique) - len(todo)} of {len(unique)} comparisons cached or in a batch) "
            f"to {input_only}; run them with vLLM's run_batch (--served-model-name {spec.model}), "
            "then pass its output with --batch-output"
        )
        return
    try:
        if submit:
            report = judge_with_batches(
                unique, spec, cache_path=cache, wait_s=wait_s, poll_s=poll_s, max_requests=max_requests, say=say
            )
        else:
            report = collect_output_files(output_files, unique, spec, cache_path=cache)
    except EndpointError as error:
        fail(f"{error}. Everything received so far is cached and every submitted batch recorded; rerun to continue.")
    for line in report.problems[:20]:
        say(f"warning: {line}")
    if len(report.problems) > 20:
        say(f"warning: {len(report.problems) - 20} more malformed lines skipped")
    tokens = ""
    if report.n_collected:
        tokens = f"; tokens {report.usage.prompt_tokens:,} in / {report.usage.completion_tokens:,} out"
        if submit:
            cost = batch_cost(report, spec)
            tokens += (
                "; cost n/a (no prices in the judge spec)"
                if cost is None
                else f"; cost ${cost:.4f} at Batch API prices (half the spec's)"
            )
    say(
        f"batch: {report.n_comparisons} comparisons: {report.n_cached} cached before, "
        f"{report.n_collected} collected now, {report.n_missing} without a verdict{tokens}"
    )
    if submit and report.n_comparisons == report.n_cached:
        say("nothing to submit: every comparison is cached")
    if submit and report.in_progress:
        for open_batch in report.open:
            counts = f", {open_batch.counts}" if open_batch.counts else ""
            say(f"batch {open_batch.batch_id}: {open_batch.status}{counts} ({open_batch.n_requests} requests)")
        if report.n_held_online:
            say(f"{report.n_held_online} comparisons are being asked right now by another run sharing the cache")
        typer.echo(
            f"{report.n_missing} of {report.n_comparisons} comparisons are still out; rerun the same command later "
            "to collect them (nothing is submitted twice)"
        )
        return
    assert output is not None
    annotations, summary = annotations_from_cache(
        pairs,
        per_pair,
        unique,
        spec,
        cache_path=cache,
        failed=report.given_up,
        missing_reason="no verdict from any batch yet" if submit else "not in the output files",
    )
    typer.echo(summary.line(), err=True)
    from ..winrate.bias import bias_line, judge_bias

    typer.echo(bias_line(judge_bias([a for a in annotations if a.get("preference") is not None])), err=True)
    if not summary.complete and not partial:
        reasons = list(summary.failed.values())
        again = (
            "Rerun the same command to send them again in a new batch"
            if submit
            else "Write their requests again with --batch-input-only (only those are written) and run them"
        )
        fail(
            f"{len(reasons)} comparisons have no verdict (e.g. {reasons[0]}); nothing written to {output}. "
            f"{again}, or pass --partial.",
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
