"""A content-addressed cache for the slow per-entry recomputations of `check`.

Fitting the LC GLM and re-running the leakage detectors cost tens of milliseconds per entry; a
board rebuilt after one new submission should not pay them again for every other entry. A result
is keyed by the bytes of the files it was computed from *and* the source of the code that
computed it, so editing either recomputes. Stored as small JSON files in the user cache.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from contextlib import suppress
from pathlib import Path
from typing import Any

from ..io import atomic_write_text


def package_source_digest(package: Any) -> bytes:
    """Digest of every .py file of an imported package (its behaviour, as far as a cache can tell)."""
    digest = hashlib.sha256()
    for path in sorted(Path(package.__file__).parent.rglob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.digest()


def cached(kind: str, inputs: Iterable[bytes], compute: Callable[[], Any]) -> Any:
    """compute(), or its earlier JSON result for exactly these inputs."""
    from implicit_if.paths import cache_dir

    digest = hashlib.sha256()
    for part in inputs:
        digest.update(hashlib.sha256(part).digest())
    path = cache_dir("leaderboard") / f"{kind}-{digest.hexdigest()}.json"
    with suppress(OSError, ValueError, KeyError):
        return json.loads(path.read_text(encoding="utf-8"))["value"]
    value = compute()
    with suppress(OSError):  # a read-only cache only costs time
        atomic_write_text(path, json.dumps({"value": value}))
    return value
