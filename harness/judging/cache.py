"""Verdict cache in SQLite, keyed by (judge identity, instruction, first answer, second answer).

Every verdict is committed the moment it arrives (WAL journal), so a run killed at any point
keeps all verdicts it received and a rerun asks only for the rest. Only verdicts are stored:
a failed request leaves no row and is asked again next run. The database holds hashes, numbers
and the judge's short reply; never an API key or an endpoint address.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS verdicts (
    key TEXT PRIMARY KEY,
    judge TEXT NOT NULL,
    p_second REAL,
    raw TEXT,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS answer_scores (
    key TEXT PRIMARY KEY,
    judge TEXT NOT NULL,
    score REAL NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS judges (
    judge TEXT PRIMARY KEY,
    identity TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class Verdict:
    """What a judge said about one ordered pair. `p_second` None: it answered without a usable label."""

    p_second: float | None
    raw: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0


def comparison_key(judge_hash: str, instruction: str, first: str, second: str) -> str:
    payload = json.dumps([judge_hash, instruction, first, second], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def answer_key(judge_hash: str, instruction: str, answer: str) -> str:
    """A pointwise judge's score depends on one answer only: a reference is scored once for every model."""
    payload = json.dumps([judge_hash, "answer", instruction, answer], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class VerdictCache:
    """A small SQLite store; use as a context manager or call close()."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL is durable against a killed process (the WAL is in the OS); only power loss can drop the tail.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def __enter__(self) -> "VerdictCache":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    def register_judge(self, judge_hash: str, identity: dict) -> None:
        self._db.execute("INSERT OR IGNORE INTO judges VALUES (?, ?)", (judge_hash, json.dumps(identity, sort_keys=True)))

    def get_many(self, keys: Iterable[str]) -> dict[str, Verdict]:
        found: dict[str, Verdict] = {}
        keys = list(keys)
        for start in range(0, len(keys), 500):  # stay under SQLite's bound-parameter limit
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT key, p_second, raw, prompt_tokens, completion_tokens FROM verdicts WHERE key IN ({marks})", chunk
            )
            for key, p_second, raw, prompt_tokens, completion_tokens in rows:
                found[key] = Verdict(p_second, raw or "", prompt_tokens, completion_tokens)
        return found

    def put(self, key: str, judge_hash: str, verdict: Verdict) -> None:
        """Store one verdict and commit it (autocommit mode: one statement, one transaction)."""
        self._db.execute(
            "INSERT OR REPLACE INTO verdicts VALUES (?, ?, ?, ?, ?, ?, ?)",
            (key, judge_hash, verdict.p_second, verdict.raw, verdict.prompt_tokens, verdict.completion_tokens, time.time()),
        )

    def count(self, judge_hash: str | None = None) -> int:
        if judge_hash is None:
            return self._db.execute("SELECT COUNT(*) FROM verdicts").fetchone()[0]
        return self._db.execute("SELECT COUNT(*) FROM verdicts WHERE judge = ?", (judge_hash,)).fetchone()[0]

    def get_scores(self, keys: Iterable[str]) -> dict[str, float]:
        found: dict[str, float] = {}
        keys = list(keys)
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            found.update(self._db.execute(f"SELECT key, score FROM answer_scores WHERE key IN ({marks})", chunk))
        return found

    def put_score(self, key: str, judge_hash: str, score: float) -> None:
        """Store one answer's score and commit it."""
        self._db.execute("INSERT OR REPLACE INTO answer_scores VALUES (?, ?, ?, ?)", (key, judge_hash, score, time.time()))
