"""On-disk cache of normalised records (JSONL), one file per dataset and source.

Why: hub downloads are slow and the hub may be unreachable later; once a set
has been normalised we never need the network (or the converter) again.  The
file name carries the source ("hub" or "fixture") and a digest of everything
that shapes the records, so fixture and hub data never mix and an edited
fixture or converter version invalidates old files instead of serving them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..io import atomic_write_jsonl, read_jsonl  # noqa: F401 (read_jsonl: the loaders read through here)
from ..paths import cache_root


def datasets_dir() -> Path:
    return cache_root() / "datasets"


def cache_path(name: str, source: str, key_parts: Iterable[str]) -> Path:
    """Path of the cached records for ``name`` from ``source``, keyed by ``key_parts``."""
    digest = hashlib.sha256("\x1f".join(key_parts).encode("utf-8")).hexdigest()[:16]
    return datasets_dir() / f"{name}.{source}.{digest}.jsonl"


def write_jsonl_atomic(path: Path, records: Iterable[dict[str, Any]]) -> None:
    """A reader (or a concurrent job) sees the old file or the whole new one, never a truncated
    cache that would silently shrink a dataset."""
    atomic_write_jsonl(path, records)
