"""One registry of the datasets the harness knows, and ``load_pairs`` to read them.

Source policy (``offline``):

* ``None``  - use the hub; if the hub is switched off (``HF_HUB_OFFLINE=1`` /
  ``IMPLICIT_IF_OFFLINE=1``), unreachable, or refuses a gated set, warn once
  with :class:`FixtureFallbackWarning` and use the bundled fixture.
* ``True``  - bundled fixture only; never touches the network.
* ``False`` - hub only; failures raise :class:`DatasetUnavailable` naming the fix.

Normalised records are cached as JSONL (see :mod:`.cache`); a cached hub copy
is served without any network access, so a machine that downloaded once can
run offline with the real data.

Hub sources (the study's, from john-hewitt/implicit-ins ``data/processed``):
``tatsu-lab/alpaca_eval`` (``alpaca_eval.json``, read directly because its
loading script fails on datasets>=4), ``tatsu-lab/alpaca``, ``GAIR/lima``
(gated; ``train.jsonl`` read directly for the same script reason),
``openai/gsm8k`` (main), ``google-research-datasets/mbpp`` (full),
``merve/poetry``, ``Hieu-Pham/kaggle_food_recipes`` and
``patrickfrank1/chess-pgn-games`` (streamed; the first 1,000 games, as the
study kept).  Record ids are ``{name}-{row}`` for hub data, where ``row`` is
the position in the source split (games for chess), and ``{name}-fixture-{row}``
for fixtures, so the two can never be confused in downstream caches.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from . import cache, converters, fixtures, hub
from .errors import DatasetUnavailable, FixtureFallbackWarning
from .hub import HubSource

# Bump when converters change what they emit: old cache files then stop matching.
FORMAT_VERSION = "1"

# Failures for which offline=None may quietly-but-visibly use the fixture.
FALLBACK_REASONS = frozenset({"offline", "unreachable", "gated"})

Record = dict[str, Any]


@dataclass(frozen=True)
class DatasetSpec:
    """Everything needed to produce one named dataset from either source."""

    name: str
    description: str
    convert: Callable[[dict[str, Any]], Record | None]
    fixture: str
    hub: HubSource | None = None
    fixture_adapter: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    group: Callable[[Iterable[dict[str, Any]]], Iterable[dict[str, Any]]] | None = None
    gated: bool = False
    hub_max_records: int | None = None


DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            "alpaca_eval",
            "AlpacaEval instructions (805) with the file's reference outputs",
            converters.alpaca_eval,
            "general.jsonl",
            hub=HubSource("tatsu-lab/alpaca_eval", split="eval", filename="alpaca_eval.json"),
            fixture_adapter=converters.general_to_alpaca_eval_row,
        ),
        DatasetSpec(
            "alpaca",
            "Alpaca training pairs in file order (response ranking uses the first 1,000)",
            converters.alpaca,
            "general.jsonl",
            hub=HubSource("tatsu-lab/alpaca"),
        ),
        DatasetSpec(
            "lima",
            "LIMA training conversations (1,030; 30 multi-turn); gated on the hub",
            converters.lima,
            "lima.jsonl",
            hub=HubSource("GAIR/lima", filename="train.jsonl"),
            gated=True,
        ),
        DatasetSpec(
            "gsm8k",
            "GSM8K train: grade-school word problems with worked answers",
            converters.gsm8k,
            "gsm8k.jsonl",
            hub=HubSource("openai/gsm8k", config="main"),
        ),
        DatasetSpec(
            "mbpp",
            "MBPP (full) train: Python tasks with their test asserts",
            converters.mbpp,
            "mbpp.jsonl",
            hub=HubSource("google-research-datasets/mbpp", config="full"),
        ),
        DatasetSpec(
            "poetry",
            "Poems from titles ('Write a poem called ...')",
            converters.poetry,
            "poetry.jsonl",
            hub=HubSource("merve/poetry"),
        ),
        DatasetSpec(
            "recipes",
            "Recipes from titles ('Recipe for ...')",
            converters.recipe,
            "recipes.jsonl",
            hub=HubSource("Hieu-Pham/kaggle_food_recipes"),
        ),
        DatasetSpec(
            "chess",
            "Chess games (PGN movetext) from the players' Elo header lines",
            converters.chess,
            "chess.jsonl",
            hub=HubSource("patrickfrank1/chess-pgn-games", streaming=True),
            group=converters.group_pgn_lines,
            hub_max_records=1000,
        ),
        # Training sets written or generated for this project (no hub source; see data/DATA_CARD.md).
        DatasetSpec(
            "lima_style",
            "Our LIMA-style conversations: varied instructions with careful answers (some multi-turn)",
            converters.lima,
            "lima_style.jsonl",
        ),
        DatasetSpec(
            "gsm_generated",
            "Our GSM-style word problems, generated with computed answers ending in '#### N'",
            converters.gsm8k,
            "gsm_generated.jsonl",
        ),
        DatasetSpec(
            "chess_generated",
            "Our chess games from Elo ratings, legal by construction (python-chess)",
            converters.chess,
            "chess_generated.jsonl",
            group=converters.group_pgn_lines,
        ),
        DatasetSpec(
            "poems_written",
            "Our poems from titles ('Write a poem called ...')",
            converters.poetry,
            "poems_written.jsonl",
        ),
        DatasetSpec(
            "offline_instructions",
            "The project's own general instruction set (no hub source)",
            converters.alpaca,
            "general.jsonl",
        ),
    )
}


def dataset_names() -> list[str]:
    """Names accepted by :func:`load_pairs`, in registry order."""
    return list(DATASETS)


def get_spec(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise DatasetUnavailable(
            f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}",
            reason="unknown_dataset",
        ) from None


def normalise(
    spec: DatasetSpec, rows: Iterable[dict[str, Any]], *, id_prefix: str, origin: str, max_records: int | None = None
) -> list[Record]:
    """Raw rows -> records with ids; pure apart from consuming ``rows``.

    The id uses the row's position *before* skipping unusable rows, so ids stay
    stable (and match the source's row numbers) whatever the converter drops.
    """
    if spec.group is not None:
        rows = spec.group(rows)
    records: list[Record] = []
    for index, row in enumerate(rows):
        pair = spec.convert(row)
        if pair is None:
            continue
        records.append({"id": f"{id_prefix}-{index}", **pair, "origin": origin})
        if max_records is not None and len(records) >= max_records:
            break
    return records


def _load_fixture(spec: DatasetSpec) -> list[Record]:
    digest = fixtures.fixture_digest(spec.fixture)
    path = cache.cache_path(spec.name, "fixture", [FORMAT_VERSION, spec.name, spec.fixture, digest])
    if path.exists():
        return cache.read_jsonl(path)
    rows: Iterable[dict[str, Any]] = fixtures.read_fixture(spec.fixture)
    if spec.fixture_adapter is not None:
        rows = map(spec.fixture_adapter, rows)
    prefix = spec.name if spec.hub is None else f"{spec.name}-fixture"
    records = normalise(spec, rows, id_prefix=prefix, origin=f"fixture:{spec.fixture}")
    cache.write_jsonl_atomic(path, records)
    return records


def _load_hub(spec: DatasetSpec) -> list[Record]:
    source = spec.hub
    assert source is not None
    key = [
        FORMAT_VERSION,
        spec.name,
        source.repo_id,
        source.config or "",
        source.split,
        source.filename or "",
        str(spec.hub_max_records),
    ]
    path = cache.cache_path(spec.name, "hub", key)
    if path.exists():
        return cache.read_jsonl(path)
    rows = hub.read_rows(spec.name, source)
    records = normalise(
        spec, rows, id_prefix=spec.name, origin=f"hub:{source.describe()}", max_records=spec.hub_max_records
    )
    if not records:
        raise DatasetUnavailable(
            f"dataset {spec.name!r}: {source.describe()} yielded no usable rows; "
            f"its columns may have changed (converter {spec.convert.__name__}).",
            reason="error",
        )
    cache.write_jsonl_atomic(path, records)
    return records


def load_pairs(name: str, *, offline: bool | None = None, limit: int | None = None) -> list[Record]:
    """Records of dataset ``name``: dicts with at least ``id``, ``instruction``, ``response``.

    ``limit`` keeps the first ``limit`` records in source order (the study uses
    prefixes: the first 1,000 Alpaca or GSM8K examples, and so on).
    """
    spec = get_spec(name)
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    if spec.hub is None or offline is True:
        records = _load_fixture(spec)
    elif offline is False:
        records = _load_hub(spec)
    else:
        try:
            records = _load_hub(spec)
        except DatasetUnavailable as exc:
            if exc.reason not in FALLBACK_REASONS:
                raise
            records = _load_fixture(spec)
            loud = "NOT THE REAL DATA: " if exc.reason == "gated" else ""
            warnings.warn(
                f"{loud}dataset {name!r} falls back to the bundled offline fixture "
                f"({len(records)} rows written for this project, not {spec.hub.repo_id}). "
                f"Why: {exc} Pass offline=True to silence this, or offline=False to make it an error.",
                FixtureFallbackWarning,
                stacklevel=2,
            )
    return records if limit is None else records[:limit]
