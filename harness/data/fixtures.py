"""Reading the bundled offline fixtures (``fixtures/*.jsonl``, shipped in the wheel).

The fixtures are small sets written for this project (no text copied from the
real datasets).  Their rows use the hub datasets' column names so the same
converters handle both sources.  Read through ``importlib.resources`` so they
work from a wheel or a zip as well as from a source checkout.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from typing import Any

from ..io import parse_jsonl

FIXTURE_PACKAGE = __name__.rpartition(".")[0]


def fixture_bytes(filename: str) -> bytes:
    return (resources.files(FIXTURE_PACKAGE) / "fixtures" / filename).read_bytes()


def fixture_digest(filename: str) -> str:
    """Content hash, so an edited fixture never reuses a stale cache entry."""
    return hashlib.sha256(fixture_bytes(filename)).hexdigest()


def read_fixture(filename: str) -> list[dict[str, Any]]:
    """All rows of a fixture JSONL file, in file order."""
    return parse_jsonl(fixture_bytes(filename).decode("utf-8"), filename)[0]
