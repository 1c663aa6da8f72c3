"""Generation: instructions -> prompts -> backend.generate -> AlpacaEval model_outputs records.

A model_outputs record is `{"instruction", "output", "generator", "dataset"}` (AlpacaEval's
format, so its tooling and ours read each other's files) plus `instruction_id` where known.
Decoding is greedy unless a temperature is given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .backends import Backend, GenerationConfig
from .formats import format_prompt
from .io import parse_jsonl
from .records import OutputRecord, validate_records

OUTPUT_FIELDS = ("instruction", "output", "generator", "dataset")


def read_instructions_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Instruction records from a JSONL file, one `{"instruction": ...}` object per line."""
    path = Path(path)
    records, lines = parse_jsonl(path.read_text(encoding="utf-8"), path)
    for number, record in zip(lines, records):
        if (
            not isinstance(record, dict)
            or not isinstance(record.get("instruction"), str)
            or not record["instruction"].strip()
        ):
            raise ValueError(f'{path}:{number}: each line needs a non-empty "instruction" string')
    if not records:
        raise ValueError(f"{path} holds no instructions")
    return records


def build_prompts(instructions: Sequence[Mapping[str, Any]], fmt: str, tokenizer: Any = None) -> list[str]:
    """One prompt per instruction in the chosen chat format (ending where the response starts)."""
    return [format_prompt(str(record["instruction"]), fmt, tokenizer) for record in instructions]


def output_records(
    instructions: Sequence[Mapping[str, Any]],
    outputs: Sequence[str],
    *,
    generator: str,
    dataset: str,
) -> list[OutputRecord]:
    """AlpacaEval model_outputs records (checked against `OutputRecord`); an instruction's own `dataset`
    field wins over `dataset`."""
    if len(instructions) != len(outputs):
        raise ValueError("one output per instruction is required")
    records = []
    for index, (record, output) in enumerate(zip(instructions, outputs)):
        row = {
            "instruction": str(record["instruction"]),
            "output": output,
            "generator": generator,
            "dataset": str(record.get("dataset") or dataset),
        }
        row["instruction_id"] = str(record.get("id", record.get("instruction_id", index)))
        records.append(row)
    return validate_records(records, "outputs", f"outputs of {generator}")


def generate_outputs(
    backend: Backend,
    instructions: Sequence[Mapping[str, Any]],
    *,
    fmt: str = "tulu",
    config: GenerationConfig = GenerationConfig(),
    generator: str,
    dataset: str,
) -> list[OutputRecord]:
    """Generate a response to every instruction and return model_outputs records in input order."""
    # Only chat templates need the tokenizer (and an endpoint backend may have to load one for it).
    tokenizer = getattr(backend, "tokenizer", None) if fmt == "chat_template" else None
    prompts = build_prompts(instructions, fmt, tokenizer)
    outputs = backend.generate(prompts, config)
    return output_records(instructions, [o.strip() for o in outputs], generator=generator, dataset=dataset)
