"""A judge's own bias figures, from the annotations of one run (pure).

- position consistency: among pairs judged in both orders, how often both orders lean the same
  way (a judge bound to the position leans opposite ways);
- P(prefers the longer): among pairs with a verdict and outputs of different lengths, how often
  the verdict favours the longer output (a draw counts half).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from .preferences import normalise_preference

DRAW = 1.5


def _side(preference: float) -> float:
    return 1.0 if preference > DRAW else 0.0 if preference < DRAW else 0.5


def bias_line(bias: Mapping[str, Any]) -> str:
    """The figures as one line for a terminal."""
    consistency, longer = bias.get("position_consistency"), bias.get("p_prefers_longer")
    return (
        "judge bias in this run: position consistency "
        + (
            f"{100 * consistency:.1f}% over {bias['n_both_orders']} pairs"
            if consistency is not None
            else "n/a (one order per pair)"
        )
        + "; prefers the longer output "
        + (f"{100 * longer:.1f}% of {bias['n_length_differs']} pairs" if longer is not None else "n/a")
    )


def judge_bias(annotations: Sequence[Mapping[str, Any]]) -> dict[str, float | int | None]:
    """Position consistency and P(prefers the longer), as fractions, with their counts."""
    consistent, longer = [], []
    for record in annotations:
        out_ref, out_model = record.get("output_1"), record.get("output_2")
        preference = normalise_preference(record.get("preference"), out_ref, out_model)
        if math.isnan(preference) or out_ref == out_model:
            continue
        by_order = record.get("preference_by_order")
        if isinstance(by_order, Mapping):
            sides = [normalise_preference(by_order.get(k)) for k in ("reference_first", "model_first")]
            if not any(math.isnan(s) for s in sides):
                consistent.append(float(_side(sides[0]) == _side(sides[1])))
        len_ref, len_model = len(str(out_ref)), len(str(out_model))
        if len_ref != len_model:
            model_side = _side(preference)
            longer.append(model_side if len_model > len_ref else 1.0 - model_side)
    return {
        "position_consistency": sum(consistent) / len(consistent) if consistent else None,
        "n_both_orders": len(consistent),
        "p_prefers_longer": sum(longer) / len(longer) if longer else None,
        "n_length_differs": len(longer),
    }
