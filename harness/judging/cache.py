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
CREATE TABLE IF NOT EXISTS claims (
    key TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    expires_at REAL NOT NULL
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

    def __enter__(self) -> VerdictCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    def register_judge(self, judge_hash: str, identity: dict) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO judges VALUES (?, ?)", (judge_hash, json.dumps(identity, sort_keys=True))
        )

    def get_many(self, keys: Iterable[str]) -> dict[str, Verdict]:
        found: dict[str, Verdict] = {}
        keys = list(keys)
        for start in range(0, len(keys), 500):  # stay under SQLite's bound-parameter limit
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT key, p_second, raw, prompt_tokens, completion_tokens FROM verdicts WHERE key IN ({marks})",
                chunk,
            )
            for key, p_second, raw, prompt_tokens, completion_tokens in rows:
                found[key] = Verdict(p_second, raw or "", prompt_tokens, completion_tokens)
        return found

    def put(self, key: str, judge_hash: str, verdict: Verdict) -> None:
        """Store one verdict and commit it (autocommit mode: one statement, one transaction)."""
        self._db.execute(
            "INSERT OR REPLACE INTO verdicts VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                key,
                judge_hash,
                verdict.p_second,
                verdict.raw,
                verdict.prompt_tokens,
                verdict.completion_tokens,
                time.time(),
            ),
        )

    def claim_owners(self) -> set[str]:
        return {row[0] for row in self._db.execute("SELECT DISTINCT owner FROM claims")}

    def claim(self, keys: Iterable[str], owner: str, ttl_s: float) -> set[str]:
        """Claim the keys no verdict and no live claim of another process covers; returns those `owner` now holds.

        One write transaction, so two processes never hold the same key; a claim older than its
        time to live (a killed process) is taken over. Claims of `owner` itself are renewed.
        """
        keys = list(keys)
        now = time.time()
        held: set[str] = set()
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute("DELETE FROM claims WHERE expires_at < ?", (now,))
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                done = {row[0] for row in self._db.execute(f"SELECT key FROM verdicts WHERE key IN ({marks})", chunk)}
                fresh = [(k, owner, now + ttl_s) for k in chunk if k not in done]
                self._db.executemany("INSERT OR IGNORE INTO claims VALUES (?, ?, ?)", fresh)
                self._db.execute(
                    f"UPDATE claims SET expires_at = ? WHERE owner = ? AND key IN ({marks})",
                    (now + ttl_s, owner, *chunk),
                )
                held.update(
                    row[0]
                    for row in self._db.execute(
                        f"SELECT key FROM claims WHERE owner = ? AND key IN ({marks})", (owner, *chunk)
                    )
                )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return held

    def release(self, owner: str, keys: Iterable[str] | None = None) -> None:
        """Drop `owner`'s claims (all, or those on `keys`): failed comparisons become free to ask again."""
        if keys is None:
            self._db.execute("DELETE FROM claims WHERE owner = ?", (owner,))
            return
        keys = list(keys)
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            self._db.execute(
                f"DELETE FROM claims WHERE owner = ? AND key IN ({','.join('?' * len(chunk))})", (owner, *chunk)
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
        self._db.execute(
            "INSERT OR REPLACE INTO answer_scores VALUES (?, ?, ?, ?)", (key, judge_hash, score, time.time())
        )
