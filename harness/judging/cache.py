"""Verdict cache in SQLite, keyed by (judge identity, instruction, first answer, second answer).

Every verdict is committed the moment it arrives (WAL journal), so a run killed at any point
keeps all verdicts it received and a rerun asks only for the rest. Only verdicts are stored:
a failed request leaves no row and is asked again next run. The database holds hashes, numbers
and the judge's short reply; never an API key or an endpoint address.

Batch API submissions (`judging/batch.py`) are recorded here too, in the same transaction discipline:
`batches` (one row per submission: the provider's file and batch ids, the input file's digest, a
digest of the endpoint address, the state), `batch_requests` (the comparison keys each submission
carried) and `batch_holds` (the key's current holder: a submission still open, or the failed
attempts so far). A key is held by one open submission at a time, so no process submits it twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
CREATE TABLE IF NOT EXISTS batches (
    submission TEXT PRIMARY KEY,
    judge TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    input_digest TEXT NOT NULL,
    n_requests INTEGER NOT NULL,
    state TEXT NOT NULL,
    owner TEXT,
    lease_until REAL NOT NULL DEFAULT 0,
    input_file_id TEXT,
    batch_id TEXT UNIQUE,
    status TEXT,
    counts TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS batch_requests (
    submission TEXT NOT NULL,
    key TEXT NOT NULL,
    PRIMARY KEY (submission, key)
);
CREATE TABLE IF NOT EXISTS batch_holds (
    key TEXT PRIMARY KEY,
    submission TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    reason TEXT
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

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """One write transaction taken up front (BEGIN IMMEDIATE): committed on success, rolled back on any error."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

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
        with self._transaction():
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
        return held

    def live_claims(self, keys: Iterable[str]) -> set[str]:
        """The keys some process holds an unexpired claim on right now."""
        keys, now, held = list(keys), time.time(), set()
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            rows = self._db.execute(
                f"SELECT key FROM claims WHERE expires_at >= ? AND key IN ({','.join('?' * len(chunk))})", (now, *chunk)
            )
            held.update(r[0] for r in rows)
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

    # -- Batch API submissions (judging/batch.py) ----------------------------------------------------
    # A submission moves uploading -> uploaded -> submitted -> collected (or abandoned when nothing
    # was sent). While it is open (the first three), it holds its keys: `batch_holds.state` 'pending'.
    # When it is collected, each key it held has a verdict (hold deleted) or is 'failed', free to be
    # sent again. Every transition is one transaction, so a kill at any point leaves a state a rerun
    # can resume from.

    def batch_held(self, keys: Iterable[str]) -> dict[str, str]:
        """The keys an open submission holds -> its batch id (its submission id before the batch exists)."""
        held: dict[str, str] = {}
        keys = list(keys)
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            rows = self._db.execute(
                "SELECT h.key, COALESCE(b.batch_id, b.submission) FROM batch_holds h "
                "JOIN batches b ON b.submission = h.submission "
                f"WHERE h.state = 'pending' AND h.key IN ({','.join('?' * len(chunk))})",
                chunk,
            )
            held.update(rows)
        return held

    def claim_batch(
        self,
        keys: Iterable[str],
        submission: str,
        *,
        judge_hash: str,
        endpoint: str,
        owner: str,
        lease_s: float,
        max_attempts: int,
        max_requests: int,
        max_bytes: int,
        sizes: dict[str, int],
        digest: Any,
    ) -> tuple[list[str], list[str]]:
        """Take for a new submission, in one write transaction, the keys (in the order given) that have no
        verdict, no open submission, no live claim of an online run and attempts left; at most
        `max_requests` of them and `max_bytes` of request lines (`sizes`), at least one.

        Returns (the keys taken, the keys whose `max_attempts` are spent). `digest(keys)` is the input
        file's digest, recorded with the submission (state 'uploading', owned by `owner`)."""
        keys = list(keys)
        now = time.time()
        available: list[str] = []
        exhausted: list[str] = []
        with self._transaction():
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                done = {r[0] for r in self._db.execute(f"SELECT key FROM verdicts WHERE key IN ({marks})", chunk)}
                live = {
                    r[0]
                    for r in self._db.execute(
                        f"SELECT key FROM claims WHERE expires_at >= ? AND key IN ({marks})", (now, *chunk)
                    )
                }
                holds = {
                    r[0]: (r[1], r[2])
                    for r in self._db.execute(
                        f"SELECT key, state, attempts FROM batch_holds WHERE key IN ({marks})", chunk
                    )
                }
                for key in chunk:
                    state, attempts = holds.get(key, ("", 0))
                    if key in done or key in live or state == "pending":
                        continue
                    if attempts >= max_attempts:
                        exhausted.append(key)
                    else:
                        available.append(key)
            taken: list[str] = []
            total = 0
            for key in available:
                if taken and (len(taken) >= max_requests or total + sizes[key] > max_bytes):
                    break
                taken.append(key)
                total += sizes[key]
            if taken:
                self._db.execute(
                    "INSERT INTO batches (submission, judge, endpoint, input_digest, n_requests, state, owner, "
                    "lease_until, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'uploading', ?, ?, ?, ?)",
                    (submission, judge_hash, endpoint, digest(taken), len(taken), owner, now + lease_s, now, now),
                )
                self._db.executemany("INSERT INTO batch_requests VALUES (?, ?)", [(submission, k) for k in taken])
                for key in taken:
                    self._db.execute(
                        "INSERT INTO batch_holds (key, submission, state, attempts, reason) "
                        "VALUES (?, ?, 'pending', 1, NULL) "
                        "ON CONFLICT(key) DO UPDATE SET submission = excluded.submission, state = 'pending', "
                        "attempts = attempts + 1, reason = NULL",
                        (key, submission),
                    )
        return taken, exhausted

    def open_batches(self, keys: Iterable[str]) -> list[dict[str, Any]]:
        """The open submissions holding any of `keys` (oldest first), as dicts of their columns."""
        keys = list(keys)
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            cursor = self._db.execute(
                "SELECT DISTINCT b.* FROM batches b JOIN batch_holds h ON h.submission = b.submission "
                f"WHERE h.state = 'pending' AND h.key IN ({','.join('?' * len(chunk))})",
                chunk,
            )
            names = [d[0] for d in cursor.description]
            for row in cursor:
                record = dict(zip(names, row))
                found[record["submission"]] = record
        return sorted(found.values(), key=lambda r: (r["created_at"], r["submission"]))

    def batch(self, submission: str) -> dict[str, Any] | None:
        cursor = self._db.execute("SELECT * FROM batches WHERE submission = ?", (submission,))
        row = cursor.fetchone()
        return None if row is None else dict(zip([d[0] for d in cursor.description], row))

    def batch_requests(self, submission: str) -> set[str]:
        """Every key the submission carried."""
        return {r[0] for r in self._db.execute("SELECT key FROM batch_requests WHERE submission = ?", (submission,))}

    def batch_pending(self, submission: str) -> set[str]:
        """The keys the submission still holds (no verdict yet, not marked failed)."""
        return {
            r[0]
            for r in self._db.execute(
                "SELECT key FROM batch_holds WHERE submission = ? AND state = 'pending'", (submission,)
            )
        }

    def take_over_batch(self, submission: str, owner: str, lease_s: float, gone: Any) -> dict[str, Any] | None:
        """Own an unsubmitted submission (uploading/uploaded) whose owner is none, dead (`gone(owner)`)
        or out of its lease; returns its row as it is now, or None when a live owner holds it (or it
        has moved on)."""
        now = time.time()
        with self._transaction():
            cursor = self._db.execute("SELECT * FROM batches WHERE submission = ?", (submission,))
            found = cursor.fetchone()
            row = None if found is None else dict(zip([d[0] for d in cursor.description], found))
            free = (
                row is not None
                and row["state"] in ("uploading", "uploaded")
                and (row["owner"] is None or row["owner"] == owner or row["lease_until"] < now or gone(row["owner"]))
            )
            if free:
                self._db.execute(
                    "UPDATE batches SET owner = ?, lease_until = ?, updated_at = ? WHERE submission = ?",
                    (owner, now + lease_s, now, submission),
                )
        return row if free else None

    def batch_uploaded(self, submission: str, owner: str, input_file_id: str) -> bool:
        """Record the uploaded input file; False when `owner` no longer owns the submission."""
        cursor = self._db.execute(
            "UPDATE batches SET state = 'uploaded', input_file_id = ?, updated_at = ? "
            "WHERE submission = ? AND owner = ? AND state = 'uploading'",
            (input_file_id, time.time(), submission, owner),
        )
        return cursor.rowcount == 1

    def batch_submitted(self, submission: str, batch_id: str, status: str) -> None:
        """Record the provider's batch id: from now on a rerun polls it, and nothing creates it again."""
        self._db.execute(
            "UPDATE batches SET state = 'submitted', batch_id = ?, status = ?, owner = NULL, lease_until = 0, "
            "updated_at = ? WHERE submission = ?",
            (batch_id, status, time.time(), submission),
        )

    def batch_disown(self, submission: str, owner: str) -> None:
        """Give up ownership (a failure that leaves the submission to be looked up by the next run)."""
        self._db.execute(
            "UPDATE batches SET owner = NULL, lease_until = 0, updated_at = ? WHERE submission = ? AND owner = ?",
            (time.time(), submission, owner),
        )

    def batch_status(self, submission: str, status: str, counts: str) -> None:
        self._db.execute(
            "UPDATE batches SET status = ?, counts = ?, updated_at = ? WHERE submission = ?",
            (status, counts, time.time(), submission),
        )

    def abandon_batch(self, submission: str, reason: str) -> None:
        """A submission that never became a batch: its keys are free again, the attempt not counted."""
        with self._transaction():
            self._db.execute(
                "UPDATE batch_holds SET state = 'failed', attempts = attempts - 1, reason = ? "
                "WHERE submission = ? AND state = 'pending'",
                (reason, submission),
            )
            self._db.execute(
                "UPDATE batches SET state = 'abandoned', owner = NULL, updated_at = ? WHERE submission = ?",
                (time.time(), submission),
            )

    def put_batch_verdict(self, key: str, judge_hash: str, verdict: Verdict) -> bool:
        """Store a verdict read from a batch output and drop the key's hold, in one transaction.
        A verdict already stored is kept (the first one wins); returns whether this one was stored."""
        with self._transaction():
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO verdicts VALUES (?, ?, ?, ?, ?, ?, ?)",
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
            stored = cursor.rowcount == 1
            self._db.execute("DELETE FROM batch_holds WHERE key = ?", (key,))
        return stored

    def batch_item_failed(self, submission: str, key: str, reason: str) -> None:
        """The submission's answer for `key` was no verdict: the key is free to be sent again."""
        self._db.execute(
            "UPDATE batch_holds SET state = 'failed', reason = ? "
            "WHERE key = ? AND submission = ? AND state = 'pending'",
            (reason, key, submission),
        )

    def batch_collected(self, submission: str, missing_reason: str) -> set[str]:
        """Close a collected submission: keys it still holds (absent from its output) become failed.
        Returns those keys."""
        with self._transaction():
            missing = {
                r[0]
                for r in self._db.execute(
                    "SELECT key FROM batch_holds WHERE submission = ? AND state = 'pending'", (submission,)
                )
            }
            self._db.execute(
                "UPDATE batch_holds SET state = 'failed', reason = ? WHERE submission = ? AND state = 'pending'",
                (missing_reason, submission),
            )
            self._db.execute(
                "UPDATE batches SET state = 'collected', owner = NULL, updated_at = ? WHERE submission = ?",
                (time.time(), submission),
            )
        return missing

    def batch_failures(self, keys: Iterable[str]) -> dict[str, tuple[int, str]]:
        """Keys that came back from batches without a verdict -> (attempts, last reason)."""
        found: dict[str, tuple[int, str]] = {}
        keys = list(keys)
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            rows = self._db.execute(
                "SELECT key, attempts, reason FROM batch_holds "
                f"WHERE state = 'failed' AND key IN ({','.join('?' * len(chunk))})",
                chunk,
            )
            found.update((k, (a, r or "")) for k, a, r in rows)
        return found

    def reset_batch_failures(self, keys: Iterable[str]) -> None:
        """Forget the failed attempts of `keys`: the next batch run sends them with a fresh budget."""
        keys = list(keys)
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            self._db.execute(
                f"DELETE FROM batch_holds WHERE state = 'failed' AND key IN ({','.join('?' * len(chunk))})", chunk
            )


def owner_id() -> str:
    """A process's name in claims and submissions: host:pid:nonce."""
    import os
    import socket
    import uuid

    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_gone(owner: str) -> bool:
    """Whether `owner` (host:pid:nonce) was a process on this machine that no longer runs."""
    import os
    import socket

    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
