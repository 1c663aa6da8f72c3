"""From model outputs and reference outputs to AlpacaEval annotations (pure functions).

Outputs are matched to references by instruction text. For each instruction the order shown to
the judge is drawn from a hash of (seed, instruction): fixed for a seed, independent of file
order and of the other instructions. `both_orders` asks both ways and averages, which cancels
the judge's position bias (AlpacaEval shows one random order only). Identical outputs are a
draw and never reach the judge.

Annotations follow AlpacaEval: `output_1` is the reference, `output_2` the model, `preference`
1 + P(model better), so 1 = reference better, 2 = model better.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .cache import Verdict, comparison_key
from .judges import Comparison


@dataclass(frozen=True)
class Pair:
    """One instruction with the reference's and the model's output, and the order(s) to show."""

    instruction: str
    reference: Mapping[str, Any]
    model: Mapping[str, Any]
    model_first: tuple[bool, ...]  # one entry per order asked; empty for identical outputs

    @property
    def identical(self) -> bool:
        return self.reference["output"] == self.model["output"]


def model_shown_first(instruction: str, seed: int) -> bool:
    digest = hashlib.sha256(f"{seed}\x00{instruction}".encode()).digest()
    return bool(digest[0] & 1)


def match_outputs(
    outputs: Sequence[Mapping[str, Any]],
    references: Sequence[Mapping[str, Any]],
    *,
    seed: int = 0,
    both_orders: bool = False,
) -> list[Pair]:
    """Pair each model output with the reference output of the same instruction."""
    by_instruction: dict[str, Mapping[str, Any]] = {}
    for record in references:
        by_instruction.setdefault(str(record["instruction"]), record)
    missing = [o["instruction"] for o in outputs if str(o["instruction"]) not in by_instruction]
    if missing:
        raise ValueError(
            f"{len(missing)} of {len(outputs)} model outputs have no reference output with the same instruction "
            f"(first: {str(missing[0])[:60]!r}): generate the reference on the same instructions"
        )
    seen: set[str] = set()
    pairs = []
    for record in outputs:
        instruction = str(record["instruction"])
        if instruction in seen:
            raise ValueError(
                f"instruction {instruction[:60]!r} appears twice in the model outputs: keep one output each"
            )
        seen.add(instruction)
        reference = by_instruction[instruction]
        if reference["output"] == record["output"]:
            orders: tuple[bool, ...] = ()
        elif both_orders:
            orders = (False, True)
        else:
            orders = (model_shown_first(instruction, seed),)
        pairs.append(Pair(instruction, reference, record, orders))
    return pairs


def comparisons_for(pair: Pair, judge_hash: str) -> list[Comparison]:
    out = []
    for first_is_model in pair.model_first:
        first, second = (pair.model, pair.reference) if first_is_model else (pair.reference, pair.model)
        out.append(
            Comparison(
                comparison_key(judge_hash, pair.instruction, first["output"], second["output"]),
                pair.instruction,
                first["output"],
                second["output"],
            )
        )
    return out


def preference_from(p_second: float | None, model_first: bool) -> float:
    """AlpacaEval preference (1 reference better .. 2 model better) from p(second shown better)."""
    if p_second is None or (isinstance(p_second, float) and math.isnan(p_second)):
        return math.nan
    p_model = (1.0 - p_second) if model_first else p_second
    return 1.0 + p_model


def annotation(pair: Pair, verdicts: Sequence[Verdict], annotator: str, judge_hash: str) -> dict[str, Any]:
    """One AlpacaEval annotation record; `verdicts` align with `pair.model_first`."""
    if pair.identical:
        preference, order = 1.5, "identical"
    else:
        values = [preference_from(v.p_second, first) for v, first in zip(verdicts, pair.model_first)]
        usable = [v for v in values if not math.isnan(v)]
        preference = sum(usable) / len(usable) if usable else None
        order = "both" if len(pair.model_first) == 2 else ("model_first" if pair.model_first[0] else "reference_first")
    record = {
        "instruction": pair.instruction,
        "output_1": pair.reference["output"],
        "output_2": pair.model["output"],
        "generator_1": pair.reference.get("generator", "reference"),
        "generator_2": pair.model.get("generator", "model"),
        "dataset": pair.model.get("dataset", pair.reference.get("dataset", "")),
        "preference": preference,
        "annotator": annotator,
        "judge_config": judge_hash,
        "order": order,
    }
    if verdicts:
        record["raw_completion"] = [v.raw for v in verdicts] if len(verdicts) > 1 else verdicts[0].raw
    if len(verdicts) == 2:  # both orders: kept so every run can report its judge's position consistency
        record["preference_by_order"] = {"reference_first": values[0], "model_first": values[1]}
    return record
