"""`implicit-if eval CHECKPOINT`: ranking, leakage and judging on one model, optionally submitted."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ..judging.specs import DEFAULT_OFFLINE_JUDGE
from ..pipeline import BACKENDS, EVALUATION_SETS, OFFLINE_DATASET
from ._common import atomic_write_json, fail


def evaluate(
    checkpoint: str = typer.Argument(
        ..., help="A trained model directory (e.g. `implicit-if train --output DIR`), embedded name or hub id."
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Folder for the records (default: CHECKPOINT/eval, or ./eval-<name>)."
    ),
    fmt: str = typer.Option(
        "tulu", "--format", help="Chat format the model was trained with: tulu, ab or chat_template."
    ),
    dataset: str = typer.Option(
        OFFLINE_DATASET,
        "--dataset",
        help=f"Evaluation set: {' or '.join(EVALUATION_SETS)} "
        "(alpaca_eval: AlpacaEval's 805 instructions from the hub, the bundled fixture when the hub is unreachable).",
    ),
    offline: bool = typer.Option(
        False, "--offline", help="Never use the hub for the evaluation set (the bundled fixture)."
    ),
    backend: str = typer.Option(
        "hf",
        "--backend",
        help=f"Engine for the evaluated model: {' or '.join(BACKENDS)} (openai: CHECKPOINT is the served model's "
        "name at --base-url; the key comes from OPENAI_API_KEY).",
    ),
    base_url: str | None = typer.Option(
        None,
        "--base-url",
        help="--backend openai: the endpoint, e.g. http://127.0.0.1:8000/v1 (default: OPENAI_BASE_URL).",
    ),
    tokenizer: str | None = typer.Option(
        None,
        "--tokenizer",
        help="--backend openai: the served model's tokenizer (HF name or folder), which response ranking needs.",
    ),
    tensor_parallel_size: int = typer.Option(
        1, "--tensor-parallel-size", min=1, help="--backend vllm: devices per engine (vLLM's tensor parallelism)."
    ),
    data_parallel_size: int = typer.Option(
        1,
        "--data-parallel-size",
        min=1,
        help="--backend vllm: engines, each on its own devices in its own process (no Ray); inputs split between them.",
    ),
    ranked: bool = typer.Option(
        True, "--ranking/--no-ranking", help="Response ranking (needs prompt log-probabilities from the engine)."
    ),
    reference: str | None = typer.Option(
        None,
        "--reference",
        help="Judge against this model_outputs JSON file (default: the evaluation set's own reference answers).",
    ),
    limit: int | None = typer.Option(
        None, "--limit", min=2, help="Only the first N instructions (no submission then)."
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
    judge: str = typer.Option(DEFAULT_OFFLINE_JUDGE, "--judge", help="Judge spec (see `implicit-if judges`)."),
    submit_as: str | None = typer.Option(
        None, "--submit", help="Also write a leaderboard submission folder of this name."
    ),
    model_id: str | None = typer.Option(
        None, "--model-id", help="Public model id for the submission (a local folder means nothing on a board)."
    ),
    revision: str | None = typer.Option(
        None, "--revision", help="Pinned weights for the submission: 40-hex commit or sha256:<digest>."
    ),
    adaptation: str = typer.Option(
        "response", "--adaptation", help="base | instruction | response | rules | single-task:<task>."
    ),
    submissions: Path = typer.Option(
        Path("leaderboards/submissions"), "--submissions", help="Where submission folders live."
    ),
) -> None:
    """Evaluate a checkpoint: judged win rates (with length control), response ranking, style leakage.

    Example (a 7B checkpoint on AlpacaEval with vLLM and an API judge):
    implicit-if eval ./my-7b --dataset alpaca_eval --backend vllm --judge gpt-4o-mini-logprobs

    Example (a model already served by an OpenAI-compatible server, e.g. `vllm serve ./my-7b`):
    implicit-if eval my-7b --backend openai --base-url http://127.0.0.1:8000/v1 --tokenizer ./my-7b
    """
    from rich.console import Console

    from ..backends.hf import pick_device, resolve_dtype_name
    from ..pipeline import RunSpec, results_table, run, submit_run

    name = submit_as or Path(checkpoint.rstrip("/")).name.lower()
    spec = RunSpec(
        name,
        checkpoint,
        fmt,
        adaptation,
        backend=backend,
        dataset=dataset,
        offline=True if offline else None,
        judge=judge,
        limit=limit,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        generate_batch_size=generate_batch_size,
        dtype=dtype,
        conditional=True,
        ranked=ranked,
        base_url=base_url,
        tokenizer=tokenizer,
        tensor_parallel_size=tensor_parallel_size,
        data_parallel_size=data_parallel_size,
    )
    try:
        spec.check()
        if backend == "hf":
            resolve_dtype_name(dtype, pick_device(None))
    except ValueError as error:
        fail(str(error))
    references = None
    if reference is not None:
        from .judge import read_model_outputs

        references = read_model_outputs(Path(reference))
    folder = out or (Path(checkpoint) / "eval" if Path(checkpoint).is_dir() else Path(f"eval-{name}"))
    console = Console(stderr=True)
    try:
        result = run(
            spec,
            folder,
            lambda m: console.print(m, markup=False, highlight=False, soft_wrap=True),
            references=references,
        )
    except (RuntimeError, OSError, ValueError, ImportError) as error:
        fail(f"cannot evaluate {checkpoint}: {error}")
    typer.echo(results_table([result]))
    atomic_write_json(
        folder / "summary.json",
        {
            "winrate": {k: v for k, v in result.winrate.items() if k != "glm_coefficients"},
            "ranking": result.ranking,
            "leakage": result.leakage,
            "dtype": result.dtype,
            "evaluation_set": {"dataset": dataset, "source": result.source},
        },
    )
    if submit_as is None:
        return
    if limit is not None:
        fail("a submission must answer the whole evaluation set: drop --limit")
    from ..leaderboard.problems import SubmissionError

    provenance = Path(checkpoint) / "training_provenance.json"
    base_model = None
    if provenance.exists():
        resolved = json.loads(provenance.read_text()).get("recipe", {}).get("resolved", {})
        base_model = (resolved.get("model") or {}).get("name_or_path")
    extra = (
        {"reference": {"generator": references[0]["generator"], "model": references[0]["generator"]}}
        if references
        else {}
    )
    try:
        target = submit_run(
            result,
            submissions,
            extra=extra,
            model={
                "id": model_id or checkpoint,
                **({"revision": revision} if revision else {}),
                "base_model": base_model or model_id or checkpoint,
            },
        )
    except SubmissionError as error:
        fail(f"submission refused: {error}")
    typer.echo(f"wrote {target}; next: implicit-if leaderboard build")


def register(app: typer.Typer) -> None:
    app.command("eval")(evaluate)
