"""Where implicit-if keeps its caches (models, datasets, judge verdicts)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """User cache directory; `IMPLICIT_IF_CACHE` overrides it (tests point it at a temp dir)."""
    override = os.environ.get("IMPLICIT_IF_CACHE")
    if override:
        root = Path(override).expanduser()
    else:
        from platformdirs import user_cache_dir

        root = Path(user_cache_dir("implicit-if"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def cache_dir(kind: str) -> Path:
    """A named sub-folder of the cache (`models`, `datasets`, `judge`, ...), created on demand."""
    path = cache_root() / kind
    path.mkdir(parents=True, exist_ok=True)
    return path
