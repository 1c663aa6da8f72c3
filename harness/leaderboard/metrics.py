"""Per-instruction values of each board metric, recomputed from the per-item records.

Every function is pure: records in, arrays out. An array is aligned with the evaluation set's
instructions (position i = instruction i); NaN marks an instruction without a usable value.
Board numbers are the (nan)means of these arrays in percent, and the bootstrap resamples them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..ranking import win_counts
from ..winrate import length_controlled_winrate
from ..winrate.preferences import normalise_preference  # the board applies the CLI's preference rules
from .records import RankingColumns


def instruction_key(text: str) -> str:
    """Alignment is by instruction text; only line endings and outer whitespace are forgiven."""
    return text.replace("\r\n", "\n").strip()


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


def length_controlled_win_rate(annotations: Sequence[Mapping[str, Any]]) -> float | None:
    """AlpacaEval 2's LC win rate (percent) as `implicit-if winrate` computes it by default: the GLM
    fitted on this entry's annotations alone, no instruction-difficulty term, so an entry's number
    never depends on which other entries are on the board. None when the fit gives no number."""
    value = length_controlled_winrate(list(annotations)).length_controlled_winrate
    return float(value) if math.isfinite(value) else None


def ranking_values(columns: RankingColumns) -> tuple[dict[str, float], list[tuple[str, str]]]:
    """Per instruction: the share of its distractors that the true response beats on per-token mean
    log-probability (the study's metric), counted by `implicit_if.ranking.win_counts` as the CLI counts it.

    Distractor pairs are those whose roles include "distractor" (without roles: response differs
    from instruction); the extra "conditional" pairs `implicit-if rank` writes are not counted.
    Returns ({instruction id: share}, issues): a hostile file's duplicated pairs, missing true pairs
    and instructions without distractors are named rather than silently left out.
    """
    instruction, response, n_ids = columns.instruction, columns.response, len(columns.ids)
    issues: list[tuple[str, str]] = []
    pair_codes, counts = np.unique(instruction * n_ids + response, return_counts=True)
    if (counts > 1).any():
        first = int(pair_codes[counts > 1][0])
        issues.append(
            (
                f"{int((counts > 1).sum())} duplicated (instruction_id, response_id) pairs, e.g. "
                f"{columns.ids[first // n_ids]}/{columns.ids[first % n_ids]}",
                "score each pair once",
            )
        )
    is_true = instruction == response
    distractor = columns.is_distractor & ~is_true
    ranked = np.zeros(n_ids, dtype=bool)  # instructions that have distractors, i.e. are being ranked
    ranked[instruction[distractor]] = True
    has_true = np.zeros(n_ids, dtype=bool)
    has_true[instruction[is_true]] = True
    lacking = np.flatnonzero(ranked & ~has_true)
    if lacking.size:
        issues.append(
            (
                f"{lacking.size} instructions lack their true pair (response_id == instruction_id), "
                f"e.g. {columns.ids[lacking[0]]}",
                "score every instruction with its own response too",
            )
        )
    lonely = np.flatnonzero(has_true & ~ranked)
    if lonely.size:
        issues.append(
            (
                f"{lonely.size} instructions have no distractor, e.g. {columns.ids[lonely[0]]}",
                "score each instruction with K other instructions' responses",
            )
        )
    wins, made = win_counts(instruction, response, columns.logprob / columns.n_tokens, distractor, n_ids)
    return {columns.ids[i]: float(wins[i] / made[i]) for i in np.flatnonzero(made)}, issues


def leakage_values(
    verdicts: Sequence[Mapping[str, bool]],
    outputs: Sequence[Mapping[str, Any]],
    index_of: Mapping[str, int],
    n: int,
    detectors: Sequence[str],
) -> dict[str, np.ndarray]:
    """Per-instruction 0/1 for each detector, plus 'any' (some detector fired).

    `verdicts[i]` is the detectors' verdict on `outputs[i]` (recomputed by the harness, never read
    from the submission); outputs whose instruction is not in the evaluation set are skipped (the
    outputs check reports them).
    """
    arrays = {name: np.full(n, np.nan) for name in [*detectors, "any"]}
    for output, verdict in zip(outputs, verdicts):
        position = index_of.get(instruction_key(output["instruction"]))
        if position is None:
            continue
        for name in detectors:
            arrays[name][position] = float(bool(verdict[name]))
        arrays["any"][position] = float(any(bool(verdict[name]) for name in detectors))
    return arrays


def misplaced_leakage_rows(rows: Sequence[Mapping[str, Any]], outputs: Sequence[Mapping[str, Any]]) -> list[int]:
    """Leakage records whose `index` is past the end of outputs.json, or whose `instruction` (when
    they carry one) differs from that output's."""
    return [
        number
        for number, row in enumerate(rows)
        if row["index"] >= len(outputs)
        or (
            "instruction" in row
            and instruction_key(str(row["instruction"])) != instruction_key(outputs[row["index"]]["instruction"])
        )
    ]
