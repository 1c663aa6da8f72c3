"""Files written whole or not at all, and JSON Lines: the one place for both.

Every record file and cache entry is written through a temporary file in the same folder and
renamed into place, so a reader (or a concurrent job, or a run killed mid-write) sees the old
file or the whole new one, never a partial one.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, payload: Any) -> None:
    atomic_write_text(path, json.dumps(payload, indent=2, ensure_ascii=False) + "\n")


def atomic_write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


class JSONLinesError(ValueError):
    """A line that is not JSON: one line naming the source, the line number and the problem."""

    def __init__(self, source: str | Path, line: int, problem: str):
        self.source, self.line, self.problem = str(source), line, problem
        super().__init__(f"{source}:{line}: {problem}; write one JSON object per line")


def parse_jsonl(text: str, source: str | Path = "<text>") -> tuple[list[Any], list[int]]:
    """Every non-blank line's JSON value, and its 1-based line number; JSONLinesError names a broken line.

    Lines end at "\n" only (a "\r" before it is JSON whitespace): `str.splitlines` would also split
    at U+2028, U+0085 and kin, which JSON strings may hold unescaped (`json.dumps(ensure_ascii=False)`
    writes them so). One parser call for the whole text, because boards read hundreds of thousands of
    lines; line by line only to name the broken one.
    """
    rows = text.split("\n")
    lines = [number for number, row in enumerate(rows, start=1) if row.strip()]
    try:
        return json.loads("[" + ",".join(rows[n - 1] for n in lines) + "]"), lines
    except (json.JSONDecodeError, RecursionError):
        pass
    values = []
    for number in lines:
        try:
            values.append(json.loads(rows[number - 1]))
        except json.JSONDecodeError as error:
            raise JSONLinesError(source, number, f"not valid JSON ({error.msg})") from None
        except RecursionError:
            raise JSONLinesError(source, number, "nests JSON too deeply") from None
    return values, lines


def read_jsonl(path: str | Path) -> list[Any]:
    """Every non-blank line of a JSON Lines file as JSON; a bad line raises JSONLinesError (a ValueError)."""
    return parse_jsonl(Path(path).read_text(encoding="utf-8"), path)[0]
