"""On-disk cache of normalised records (JSONL), one file per dataset and source.

Why: hub downloads are slow and the hub may be unreachable later; once a set
has been normalised we never need the network (or the converter) again.  The
file name carries the source ("hub" or "fixture") and a digest of everything
that shapes the records, so fixture and hub data never mix and an edited
fixture or converter version invalidates old files instead of serving them.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

CACHE_ENV = "IMPLICIT_IF_CACHE"


def cache_root() -> Path:
    """The project's cache root: ``$IMPLICIT_IF_CACHE`` or the platform's user cache dir."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    try:
        from platformdirs import user_cache_dir
    except ImportError:  # platformdirs is a dependency; this only guards odd installs
        return Path.home() / ".cache" / "implicit-if"
    return Path(user_cache_dir("implicit-if"))


def datasets_dir() -> Path:
    return cache_root() / "datasets"


def cache_path(name: str, source: str, key_parts: Iterable[str]) -> Path:
    """Path of the cached records for ``name`` from ``source``, keyed by ``key_parts``."""
    digest = hashlib.sha256("\x1f".join(key_parts).encode("utf-8")).hexdigest()[:16]
    return datasets_dir() / f"{name}.{source}.{digest}.jsonl"


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open("r", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def write_jsonl_atomic(path: Path, records: Iterable[dict[str, Any]]) -> None:
    """Write via a temp file in the same directory and ``os.replace``.

    A reader (or a concurrent job) then sees either the old file or the whole
    new one, never a truncated cache that would silently shrink a dataset.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for record in records:
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
