"""`implicit-if generate`: greedy responses to instructions, written as AlpacaEval model_outputs."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import typer

from ..records import write_records
from ._common import check_output_path, fail

DATASET_CHOICES = ("alpaca_eval", "offline_instructions")


def generate(
    model: str = typer.Option(
        ...,
        "--model",
        "-m",
        help=(
            "Embedded model name (`implicit-if models list`), hub id, local path, "
            "or served model name (openai backend)."
        ),
    ),
    instructions: Path | None = typer.Option(
        None, "--instructions", help='JSONL file with one {"instruction": ...} object per line (instead of --dataset).'
    ),
    dataset: str = typer.Option(
        "alpaca_eval", "--dataset", help=f"Instruction set when no --instructions file: {', '.join(DATASET_CHOICES)}."
    ),
    output: Path = typer.Option(
        ...,
        "--output",
        "-o",
        help="Where to write the model_outputs JSON list (instruction, output, generator, dataset).",
    ),
    fmt: str = typer.Option("tulu", "--format", help="Chat format of the prompt: tulu, ab or chat_template."),
    max_new_tokens: int = typer.Option(512, "--max-new-tokens", min=1, help="Longest response, in tokens."),
    backend: str = typer.Option(
        "hf", "--backend", help="hf (transformers), vllm, or openai (OpenAI-compatible endpoint)."
    ),
    dtype: str = typer.Option("auto", "--dtype", help="auto, float32, bfloat16 or float16 (hf and vllm)."),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Prompts per forward batch (hf)."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Only the first N instructions (for quick checks)."),
    offline: bool = typer.Option(False, "--offline", help="Use the bundled offline fixture instead of the hub."),
    seed: int = typer.Option(0, "--seed", help="Seed for any sampling (greedy decoding ignores it)."),
    temperature: float = typer.Option(0.0, "--temperature", min=0.0, help="0 = greedy (the default, as the study)."),
    rules: str = typer.Option(
        "none",
        "--rules",
        help="Rule-based adapter on top of the model, e.g. eos,uniform,diversity (hf and vllm backends).",
    ),
    rule_options: list[str] = typer.Option(
        [],
        "--rule-option",
        metavar="KEY=VALUE",
        help="Override a rule constant, e.g. count_instruction_tokens=true (the study's "
        "repetition penalty) or eos_scale=10; repeatable. See docs/rules.md.",
    ),
    generator: str | None = typer.Option(
        None, "--generator", help="Name recorded as `generator` (default: the model name, plus the rules)."
    ),
    base_url: str | None = typer.Option(
        None, "--base-url", help="Endpoint for the openai backend (e.g. http://127.0.0.1:8000/v1)."
    ),
    tensor_parallel_size: int = typer.Option(
        1, "--tensor-parallel-size", min=1, help="vllm: devices per engine (vLLM's tensor parallelism)."
    ),
    data_parallel_size: int = typer.Option(
        1, "--data-parallel-size", min=1, help="vllm: engines, each on its own devices in its own process (no Ray)."
    ),
) -> None:
    """Generate a response to every instruction and write AlpacaEval's model_outputs format.

    Example: implicit-if generate --model smollm2-135m-instruct --dataset alpaca_eval --limit 8 --output outputs.json
    """
    from ..formats import check_format

    check_output_path(output)  # before loading and generating: outputs must not be lost to a bad path
    try:
        check_format(fmt)
    except ValueError as error:
        fail(str(error))
    options, rule_label = _backend_options(
        backend, rules, dtype, batch_size, base_url, seed, _parse_rule_options(rule_options)
    )
    if (tensor_parallel_size, data_parallel_size) != (1, 1):
        if backend != "vllm":
            fail("--tensor-parallel-size and --data-parallel-size are the vllm backend's: add --backend vllm")
        if rule_label and data_parallel_size > 1:
            fail("--rules with --data-parallel-size is not supported: run one engine (--data-parallel-size 1)")
        options.update(tensor_parallel_size=tensor_parallel_size, data_parallel_size=data_parallel_size)
    records = _load_instructions(instructions, dataset, offline, limit)
    dataset_name = instructions.stem if instructions else dataset
    from ..backends import GenerationConfig, get_backend
    from ..generation import generate_outputs

    try:
        engine = get_backend(backend, model, **options)
    except (ValueError, ImportError, OSError, RuntimeError) as error:
        fail(f"cannot load model {model!r} with the {backend} backend: {error}")
    config = GenerationConfig(max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
    name = generator or (Path(model).name if Path(model).exists() else model) + (
        f"+rules:{rule_label}" if rule_label else ""
    )
    outputs = generate_outputs(engine, records, fmt=fmt, config=config, generator=name, dataset=dataset_name)
    write_records(output, outputs, "outputs")
    typer.echo(f"wrote {len(outputs)} outputs of {name} to {output}")


def _load_instructions(path: Path | None, dataset: str, offline: bool, limit: int | None) -> list[dict[str, Any]]:
    from ..generation import read_instructions_jsonl

    if path is not None:
        if not path.is_file():
            fail(f"instructions file {path} does not exist")
        try:
            records = read_instructions_jsonl(path)
        except ValueError as error:
            fail(str(error))
        return records[:limit] if limit else records
    if dataset not in DATASET_CHOICES:
        fail(f"unknown --dataset {dataset!r}: use {' or '.join(DATASET_CHOICES)}, or give --instructions FILE.jsonl")
    from ..data import DatasetUnavailable, load_pairs

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            return load_pairs(dataset, offline=True if offline else None, limit=limit)
    except DatasetUnavailable as error:
        fail(str(error))


def _parse_rule_options(pairs: list[str]) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            fail(f"--rule-option {pair!r}: write KEY=VALUE, e.g. --rule-option count_instruction_tokens=true")
        parsed[key.strip()] = value.strip()
    return parsed


def _backend_options(
    backend: str,
    rules: str,
    dtype: str,
    batch_size: int,
    base_url: str | None,
    seed: int,
    rule_options: dict[str, str] | None = None,
) -> tuple[dict[str, Any], str]:
    from ..backends import BACKEND_NAMES

    if backend not in BACKEND_NAMES:
        fail(f"unknown --backend {backend!r}: use one of {', '.join(BACKEND_NAMES)}")
    options: dict[str, Any] = {}
    if backend == "hf":
        options.update(dtype=dtype, batch_size=batch_size)
    elif backend == "vllm":
        options.update(dtype=dtype, seed=seed)
    elif base_url:
        options["base_url"] = base_url
    if rules.strip().lower() in ("", "none"):
        if rule_options:
            fail("--rule-option needs rules to apply to: add --rules, e.g. --rules eos,uniform,diversity")
        return options, ""
    if backend == "openai":
        fail(
            "--rules changes the model's token scores, which an OpenAI-compatible endpoint does not expose: "
            "use --backend hf or vllm"
        )
    try:
        from ..rules import build_rules
    except ImportError:
        fail(
            "--rules needs the rule-based adapter (implicit_if.rules), which this installation lacks; use --rules none"
        )
    try:
        ruleset = build_rules(rules, **(rule_options or {}))
    except ValueError as error:
        fail(f"--rules {rules!r}: {error}")
    if ruleset is None:
        return options, ""
    if backend == "hf":
        options["logits_processor_factory"] = ruleset.hf_logits_processor_factory
    else:
        options.update(ruleset.vllm_options())
    changed = ruleset.config.changed_options()
    label = ruleset.spec + ("(" + ",".join(f"{k}={v}" for k, v in sorted(changed.items())) + ")" if changed else "")
    return options, label


def register(app: typer.Typer) -> None:
    app.command("generate")(generate)
