"""Datasets of the study, normalised to instruction/response records.

Usage: ``load_pairs("gsm8k", limit=1000)`` returns a list of dicts with at
least ``id``, ``instruction`` and ``response``; ``dataset_names()`` lists the
names.

See :mod:`.registry` for the sources and the offline policy, :mod:`.converters`
for how each raw row becomes a pair.
"""

from __future__ import annotations

from .errors import DatasetUnavailable, FixtureFallbackWarning
from .hub import HubSource
from .registry import DATASETS, DatasetSpec, dataset_names, get_spec, load_pairs

__all__ = [
    "DATASETS",
    "DatasetSpec",
    "DatasetUnavailable",
    "FixtureFallbackWarning",
    "HubSource",
    "dataset_names",
    "get_spec",
    "load_pairs",
]
