"""Per-instruction values of each board metric, recomputed from the per-item records.

Every function is pure: records in, arrays out. An array is aligned with the evaluation set's
instructions (position i = instruction i); NaN marks an instruction without a usable value.
Board numbers are the (nan)means of these arrays in percent, and the bootstrap resamples them.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

DRAW = 1.5


def instruction_key(text: str) -> str:
    """Alignment is by instruction text; only line endings and outer whitespace are forgiven."""
    return text.replace("\r\n", "\n").strip()


def normalise_preference(value: Any, output_1: Any = None, output_2: Any = None) -> float:
    """One AlpacaEval preference in [1, 2] (1 = reference better), or NaN when it must be dropped.

    0 and 1.5 are draws; identical outputs are a draw whatever the judge said; NaN and values
    outside [1, 2] are dropped (as AlpacaEval's plain metrics do).
    """
    try:  # the judging module owns these rules; use it whenever it is installed
        from implicit_if.winrate.preferences import normalise_preference as shared
    except ImportError:
        shared = None
    if shared is not None:
        return float(shared(value, output_1, output_2))
    if output_1 is not None and output_2 is not None and output_1 == output_2:
        return DRAW
    if isinstance(value, bool):
        return math.nan
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    if number == 0:
        return DRAW
    return number if 1 <= number <= 2 else math.nan


def win_values(annotations: Sequence[Mapping[str, Any]], index_of: Mapping[str, int], n: int) -> tuple[np.ndarray, int]:
    """Per-instruction `preference - 1` (the plain win rate's summand) and the number dropped."""
    values = np.full(n, np.nan)
    dropped = 0
    for record in annotations:
        position = index_of.get(instruction_key(record["instruction"]))
        value = normalise_preference(record.get("preference"), record.get("output_1"), record.get("output_2"))
        if math.isnan(value):
            dropped += 1
        elif position is not None:
            values[position] = value - 1.0
    return values, dropped


def plain_win_rate(values: np.ndarray) -> float:
    """AlpacaEval 2's win rate in percent: mean of preference - 1 over kept annotations."""
    kept = values[np.isfinite(values)]
    return float(np.mean(kept) * 100) if kept.size else math.nan


def length_controlled_win_rate(annotations: Sequence[Mapping[str, Any]]) -> float | None:
    """AlpacaEval 2's LC win rate (percent) from the judging module; None when it is not installed."""
    try:
        from implicit_if.winrate import length_controlled_win_rate as lc
    except ImportError:
        return None
    result = lc(list(annotations))
    value = result.get("length_controlled_winrate") if isinstance(result, Mapping) else result
    return None if value is None or not math.isfinite(float(value)) else float(value)


def ranking_values(rows: Sequence[Mapping[str, Any]]) -> tuple[dict[str, float], list[tuple[str, str]]]:
    """Per instruction: the fraction of its distractors whose per-token log-probability is *strictly*
    below the true response's (the study's metric; a tie counts as not won).

    Returns ({instruction_id: fraction}, issues). Ids are compared as strings.
    """
    by_instruction: dict[str, dict[str, float]] = defaultdict(dict)
    duplicates: list[str] = []
    for row in rows:
        instruction, response = str(row["instruction_id"]), str(row["response_id"])
        if response in by_instruction[instruction]:
            duplicates.append(f"{instruction}/{response}")
        by_instruction[instruction][response] = float(row["logprob"]) / int(row["n_tokens"])
    issues: list[tuple[str, str]] = []
    if duplicates:
        issues.append((f"{len(duplicates)} duplicated (instruction_id, response_id) pairs, e.g. {duplicates[0]}",
                       "score each pair once"))
    no_true = sorted(i for i, scores in by_instruction.items() if i not in scores)
    if no_true:
        issues.append((f"{len(no_true)} instructions lack their true pair (response_id == instruction_id), "
                       f"e.g. {no_true[0]}", "score every instruction with its own response too"))
    no_distractor = sorted(i for i, scores in by_instruction.items() if len(scores) < 2)
    if no_distractor:
        issues.append((f"{len(no_distractor)} instructions have no distractor, e.g. {no_distractor[0]}",
                       "score each instruction with K other instructions' responses"))
    values = {}
    for instruction, scores in by_instruction.items():
        if instruction in scores and len(scores) >= 2:
            true = scores[instruction]
            others = [s for r, s in scores.items() if r != instruction]
            values[instruction] = float(np.mean([s < true for s in others]))
    return values, issues


def leakage_values(rows: Sequence[Mapping[str, Any]], outputs: Sequence[Mapping[str, Any]],
                   index_of: Mapping[str, int], n: int, detectors: Sequence[str]) -> tuple[dict[str, np.ndarray], list[int]]:
    """Per-instruction 0/1 for each detector, plus 'any' (some detector fired).

    A record points at its output by `index` (position in outputs.json); when it also carries the
    instruction text, that text must match. Returns (arrays, rows whose index or text is wrong).
    """
    arrays = {name: np.full(n, np.nan) for name in [*detectors, "any"]}
    bad_rows: list[int] = []
    for row_number, row in enumerate(rows):
        index = row["index"]
        if index >= len(outputs):
            bad_rows.append(row_number)
            continue
        instruction = outputs[index]["instruction"]
        if "instruction" in row and instruction_key(str(row["instruction"])) != instruction_key(instruction):
            bad_rows.append(row_number)
            continue
        position = index_of.get(instruction_key(instruction))
        if position is None:
            continue  # the output itself is reported as unaligned
        for name in detectors:
            arrays[name][position] = float(bool(row[name]))
        arrays["any"][position] = float(any(bool(row[name]) for name in detectors))
    return arrays, bad_rows


def percent(values: np.ndarray) -> float:
    kept = values[np.isfinite(values)]
    return float(np.mean(kept) * 100) if kept.size else math.nan
