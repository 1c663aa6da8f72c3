"""A run's own judge-bias figures, from its annotations."""

from __future__ import annotations

import pytest

from implicit_if.judging.cache import Verdict
from implicit_if.judging.pairing import annotation, match_outputs
from implicit_if.winrate import compute_metrics
from implicit_if.winrate.bias import judge_bias


def _record(ref: str, model: str, preference: float | None, by_order: tuple[float, float] | None = None) -> dict:
    record = {"instruction": ref + model, "output_1": ref, "output_2": model, "preference": preference}
    if by_order is not None:
        record["preference_by_order"] = {"reference_first": by_order[0], "model_first": by_order[1]}
    return record


def test_position_consistency_and_length_preference() -> None:
    records = [
        _record("short", "a much longer answer", 1.8, (1.9, 1.7)),  # consistent, prefers the longer
        _record("a much longer reference", "short", 1.5, (1.9, 1.1)),  # flips with the order: a draw
        _record("same", "same", 1.5),  # identical: ignored
        _record("x", "yy", None),  # no verdict: ignored
        _record("long reference", "tiny", 1.2),  # one order: counts for length only; prefers the longer
    ]
    bias = judge_bias(records)
    assert bias["n_both_orders"] == 2 and bias["position_consistency"] == 0.5
    assert bias["n_length_differs"] == 3 and bias["p_prefers_longer"] == pytest.approx((1 + 0.5 + 1) / 3)
    assert judge_bias([])["position_consistency"] is None


def test_annotations_carry_both_orders_and_metrics_report_the_bias() -> None:
    outputs = [{"instruction": "q", "output": "model answer"}]
    references = [{"instruction": "q", "output": "reference"}]
    pair = match_outputs(outputs, references, both_orders=True)[0]
    record = annotation(pair, [Verdict(0.8), Verdict(0.3)], "judge", "hash")
    assert record["preference_by_order"] == {"reference_first": pytest.approx(1.8), "model_first": pytest.approx(1.7)}
    assert compute_metrics([record], confidence_intervals=False)["judge_bias"]["position_consistency"] == 1.0
