"""Instruction difficulty for the LC GLM: read from a table, or estimated jointly.

AlpacaEval ships one difficulty per instruction, estimated from many models judged against its
reference. A leaderboard has the same material: several models judged against one reference.
The joint estimate fits, over all their annotations,

    logit P(model m preferred on instruction i) = a_m + b_m * length_term + d_i

with a Gaussian prior on d_i (it identifies d and shrinks instructions seen by few models), and
reports difficulty_i = -(d_i - mean d): higher means the reference tends to win there. Only the
difficulty is kept: each model's own GLM then learns how strongly it reacts to it.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .glm import length_term
from .preferences import preference_table

DEFAULT_PRIOR_VARIANCE = 1.0
# A whisper of a penalty on the per-model terms keeps them finite when a model wins everything.
_MODEL_TERM_PENALTY = 1e-4


def estimate_instruction_difficulty(
    annotations_by_model: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    prior_variance: float = DEFAULT_PRIOR_VARIANCE,
) -> dict[str, float]:
    """Difficulty per instruction text from several models' annotations against one reference."""
    if len(annotations_by_model) < 2:
        raise ValueError(
            "a joint difficulty estimate needs annotations of at least two models against the same "
            "reference (with one model, difficulty would simply absorb its preferences)"
        )
    if prior_variance <= 0:
        raise ValueError("prior_variance must be positive")
    models, instr_ids, lengths, targets = [], [], [], []
    vocabulary: dict[str, int] = {}
    for m, records in enumerate(annotations_by_model.values()):
        table = preference_table(records)
        models.append(np.full(table.n, m))
        lengths.append(length_term(table.len_reference, table.len_model))
        targets.append(table.preference - 1.0)
        instr_ids.append(np.asarray([vocabulary.setdefault(t, len(vocabulary)) for t in table.instruction], dtype=int))
    model_of = np.concatenate(models).astype(int)
    instr_of = np.concatenate(instr_ids).astype(int)
    x = np.concatenate(lengths)
    y = np.concatenate(targets)
    if y.size == 0:
        raise ValueError("no usable annotations to estimate difficulty from")
    n_models, n_instr = len(annotations_by_model), len(vocabulary)
    d = _fit_joint(model_of, instr_of, x, y, n_models, n_instr, prior_variance)
    difficulty = -(d - d.mean())
    return {text: float(difficulty[i]) for text, i in vocabulary.items()}


def _fit_joint(model_of, instr_of, x, y, n_models, n_instr, prior_variance) -> np.ndarray:
    from scipy.optimize import minimize

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        a, b, d = theta[:n_models], theta[n_models : 2 * n_models], theta[2 * n_models :]
        z = a[model_of] + b[model_of] * x + d[instr_of]
        loss = float(np.sum(np.logaddexp(0.0, z) - y * z))
        loss += float(np.sum(d**2)) / (2 * prior_variance) + _MODEL_TERM_PENALTY * float(np.sum(a**2) + np.sum(b**2))
        residual = np.exp(-np.logaddexp(0.0, -z)) - y  # d loss / d z
        grad = np.concatenate(
            [
                np.bincount(model_of, residual, n_models) + 2 * _MODEL_TERM_PENALTY * a,
                np.bincount(model_of, residual * x, n_models) + 2 * _MODEL_TERM_PENALTY * b,
                np.bincount(instr_of, residual, n_instr) + d / prior_variance,
            ]
        )
        return loss, grad

    start = np.zeros(2 * n_models + n_instr)
    result = minimize(objective, start, jac=True, method="L-BFGS-B", options={"maxiter": 2000})
    return result.x[2 * n_models :]


def read_difficulty_csv(path: str | Path) -> dict[str, float]:
    """Read a CSV with columns `instruction` and `instruction_difficulty` (AlpacaEval's names)."""
    path = Path(path)
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = set(reader.fieldnames or ())
        if not {"instruction", "instruction_difficulty"} <= columns:
            raise ValueError(
                f"{path} needs the columns 'instruction' and 'instruction_difficulty' "
                f"(found: {', '.join(sorted(columns)) or 'none'})"
            )
        table: dict[str, float] = {}
        for line, row in enumerate(reader, start=2):
            try:
                value = float(row["instruction_difficulty"])
            except (TypeError, ValueError):
                raise ValueError(
                    f"{path}:{line}: instruction_difficulty {row['instruction_difficulty']!r} is not a number"
                ) from None
            if not math.isfinite(value):
                raise ValueError(f"{path}:{line}: instruction_difficulty must be finite")
            table[row["instruction"]] = value
    return table


def difficulty_csv_text(difficulty: Mapping[str, float]) -> str:
    """The CSV text `read_difficulty_csv` reads back (write it with an atomic writer)."""
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["instruction", "instruction_difficulty"])
    for text, value in difficulty.items():
        writer.writerow([text, repr(float(value))])
    return buffer.getvalue()
