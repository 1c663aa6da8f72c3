"""The instructions a submission must answer, looked up by the name in its metadata."""

from __future__ import annotations

from collections.abc import Callable

from .metrics import instruction_key

# (dataset, source) -> instruction texts in the set's order; injectable so tests can pass their own.
InstructionLoader = Callable[[str, str], list[str]]


class EvaluationSetError(Exception):
    def __init__(self, message: str, fix: str):
        super().__init__(message)
        self.message, self.fix = message, fix


def load_instructions(dataset: str, source: str) -> list[str]:
    """Instruction texts of `dataset` from the bundled fixture or the hub (never a silent fallback).

    A board entry on the hub set must be checked against the hub set: a machine without hub access
    that has not cached it fails with a clear message instead of checking against the fixture.
    """
    from implicit_if.data import DatasetUnavailable, get_spec, load_pairs

    try:
        spec = get_spec(dataset)
    except DatasetUnavailable as exc:
        raise EvaluationSetError(
            str(exc), "name a dataset that `implicit-if` knows in evaluation_set.dataset"
        ) from None
    if source == "hub" and spec.hub is None:
        raise EvaluationSetError(f"dataset {dataset!r} has no hub source", "set evaluation_set.source to 'fixture'")
    try:
        pairs = load_pairs(dataset, offline=(source == "fixture"))
    except DatasetUnavailable as exc:
        raise EvaluationSetError(
            f"cannot load evaluation set {dataset!r} from the {source}: {exc}",
            "run once with hub access so the set is cached, then check again",
        ) from None
    return [pair["instruction"] for pair in pairs]


class EvaluationSets:
    """Caches each set's instructions and their positions for the duration of one check/build."""

    def __init__(self, loader: InstructionLoader = load_instructions):
        self._loader = loader
        self._cache: dict[tuple[str, str], tuple[list[str], dict[str, int]]] = {}

    def get(self, dataset: str, source: str) -> tuple[list[str], dict[str, int]]:
        key = (dataset, source)
        if key not in self._cache:
            instructions = self._loader(dataset, source)
            index_of: dict[str, int] = {}
            for position, text in enumerate(instructions):
                index_of.setdefault(instruction_key(text), position)
            self._cache[key] = (instructions, index_of)
        return self._cache[key]
