"""Read AlpacaEval annotation records into clean arrays.

AlpacaEval's conventions, which every function here follows: `output_1` is the reference,
`output_2` the model, and `preference` lies in [1, 2] (1 = reference better, 2 = model better,
continuous values from weighted judges). `0` and `1.5` mean a draw. We also drop NaN and values
outside [1, 2] (AlpacaEval drops NaN and out-of-range values in its plain metrics too), and count
identical outputs as a draw whatever the judge said, as AlpacaEval's annotator does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

DRAW = 1.5


def normalise_preference(value: Any, output_1: Any = None, output_2: Any = None) -> float:
    """One preference in [1, 2], or NaN when it must be dropped."""
    if output_1 is not None and output_2 is not None and output_1 == output_2:
        return DRAW
    if isinstance(value, bool):  # JSON true/false is not a preference (float(False) would be a draw)
        return math.nan
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    if number == 0:
        return DRAW
    if not 1 <= number <= 2:  # also false for NaN
        return math.nan
    return number


@dataclass(frozen=True)
class PreferenceTable:
    """Annotations that survived cleaning, as parallel arrays (one entry per kept annotation)."""

    preference: np.ndarray  # in [1, 2]
    is_draw: np.ndarray  # exactly a draw (0 or 1.5 in the file, or identical outputs)
    instruction: tuple[str, ...]
    len_reference: np.ndarray  # characters of output_1
    len_model: np.ndarray  # characters of output_2
    kept_rows: np.ndarray  # positions of the kept annotations in the input list
    n_dropped: int

    @property
    def n(self) -> int:
        return int(self.preference.size)


def preference_table(annotations: Sequence[Mapping[str, Any]]) -> PreferenceTable:
    """Clean a list of AlpacaEval annotation records (see the module docstring for the rules)."""
    prefs, draws, instructions, len_ref, len_model, kept = [], [], [], [], [], []
    for row, record in enumerate(annotations):
        output_1, output_2 = record.get("output_1"), record.get("output_2")
        raw = record.get("preference")
        value = normalise_preference(raw, output_1, output_2)
        if math.isnan(value):
            continue
        prefs.append(value)
        draws.append(value == DRAW)
        instructions.append(str(record.get("instruction", "")))
        len_ref.append(len(str(output_1 or "")))
        len_model.append(len(str(output_2 or "")))
        kept.append(row)
    return PreferenceTable(
        preference=np.asarray(prefs, dtype=float),
        is_draw=np.asarray(draws, dtype=bool),
        instruction=tuple(instructions),
        len_reference=np.asarray(len_ref, dtype=float),
        len_model=np.asarray(len_model, dtype=float),
        kept_rows=np.asarray(kept, dtype=int),
        n_dropped=len(annotations) - len(prefs),
    )


def check_annotations(annotations: Any) -> list[dict[str, Any]]:
    """Validate the shape of an annotations file's content; raise ValueError naming the fix."""
    if not isinstance(annotations, list):
        raise ValueError("annotations must be a JSON list of records (AlpacaEval's annotations format)")
    for row, record in enumerate(annotations):
        if not isinstance(record, dict):
            raise ValueError(f"annotation {row} is not a JSON object")
        missing = [key for key in ("instruction", "output_1", "output_2", "preference") if key not in record]
        if missing:
            raise ValueError(
                f"annotation {row} lacks {', '.join(missing)}: each record needs instruction, output_1 "
                "(reference), output_2 (model) and preference in [1, 2]"
            )
    return annotations
