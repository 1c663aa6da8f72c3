"""Reference outputs: another model's outputs file, or a dataset's own reference responses."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

DATASET_PREFIX = "dataset:"


def reference_record(pair: dict[str, Any], dataset: str) -> dict[str, Any]:
    """A dataset pair as a model_outputs record (its response is the reference output)."""
    return {
        "instruction": pair["instruction"],
        "output": pair["response"],
        "generator": pair.get("generator") or f"{dataset}-reference",
        "dataset": pair.get("dataset") or dataset,
    }


def dataset_references(
    name: str, *, offline: bool | None = None, instructions: Iterable[str] | None = None
) -> list[dict[str, Any]]:
    """Reference records of a dataset from `implicit_if.data` (only the wanted instructions, if given)."""
    from ..data import load_pairs

    wanted = None if instructions is None else set(instructions)
    return [
        reference_record(p, name)
        for p in load_pairs(name, offline=offline)
        if wanted is None or p["instruction"] in wanted
    ]
