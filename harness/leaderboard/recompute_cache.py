"""A content-addressed cache for the slow per-entry recomputations of `check`.

Fitting the LC GLM and re-running the leakage detectors cost tens of milliseconds per entry; a
board rebuilt after one new submission should not pay them again for every other entry. A result
is keyed by the bytes of the files it was computed from *and* the source of the code that
computed it, so editing either recomputes. Stored as small JSON files in the user cache.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any


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
    try:
        return json.loads(path.read_text(encoding="utf-8"))["value"]
    except (OSError, ValueError, KeyError):
        pass
    value = compute()
    try:
        partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        partial.write_text(json.dumps({"value": value}), encoding="utf-8")
        os.replace(partial, path)
    except OSError:
        pass  # a read-only cache only costs time
    return value
