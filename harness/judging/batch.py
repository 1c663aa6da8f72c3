"""Judging through a Batch API (OpenAI's, or any server with its Files and Batches endpoints), or
through vLLM's offline batch runner, into the same verdict cache as the online path.

- `write_batch_input`: the uncached comparisons as a Batch API input file (JSON Lines, one
  `{"custom_id", "method": "POST", "url": "/v1/chat/completions", "body"}` per comparison, the body
  exactly what the online judge posts). The custom_id is `iif1-` + the comparison's cache key.
- `judge_with_batches` (`implicit-if judge --batch`): recover and poll the submissions recorded in
  the cache database, collect the finished ones (each verdict committed as it is read), send what
  came back without a verdict again in a new batch, and submit the rest; returns without waiting
  unless asked to.
- `collect_output_files` (`--batch-output FILE`): the same reading for an output file of vLLM's
  `run_batch` or of a Batch API batch.

Nothing is paid for twice. Before a submission is uploaded its keys are claimed in the cache
database (table `batch_holds`, one write transaction), so a concurrent or restarted run never sends
them again while it is open. The submission is recorded before each step (uploading -> uploaded ->
submitted with the provider's batch id), and a run that finds one left by a killed process resumes
it: an interrupted upload is abandoned (nothing was sent), an uploaded file whose batch may exist is
looked up by its file id in the provider's batch list before anything is created, and a recorded
batch id is polled. Only the keys that come back failed, malformed, expired or missing are released,
and only then sent again. Output lines are validated strictly: a malformed or hostile line is
reported with its line number and skipped; it never reaches the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import uuid
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..openai_endpoint import (
    BadResponse,
    EndpointError,
    Secret,
    Usage,
    _is_connect_failure,
    redact,
    scrub,
    server_message,
)
from . import JudgeSummary, default_cache_path
from .cache import Verdict, VerdictCache, owner_gone, owner_id
from .judges import Comparison, endpoint_payload, read_logprob_verdict, read_text_verdict
from .pairing import Pair
from .specs import JudgeSpec

CUSTOM_ID_PREFIX = "iif1-"
_CUSTOM_ID = re.compile(r"\Aiif1-([0-9a-f]{64})\Z")
CHAT_URL = "/v1/chat/completions"
BATCH_KINDS = frozenset({"openai_logprobs", "openai_verdict"})
# OpenAI's limits per input file: 50,000 requests and 200 MB; a run with more is split into several batches.
MAX_REQUESTS = 50_000
MAX_BYTES = 190 * 1024 * 1024
LEASE_S = 900.0  # a submission being uploaded is its owner's for this long (a dead owner on this host: at once)
TERMINAL = frozenset({"completed", "expired", "failed", "cancelled"})
LIST_PAGES = 20  # how far back the provider's batch list is searched for a batch an interrupted run created
MAX_REPORTED = 20  # malformed lines printed one by one; the rest are counted
Say = Callable[[str], None]


def custom_id(key: str) -> str:
    return CUSTOM_ID_PREFIX + key


def key_of(value: object) -> str | None:
    """The cache key a custom_id encodes, or None when it is not exactly one of ours."""
    if not isinstance(value, str):
        return None
    match = _CUSTOM_ID.match(value)
    return match.group(1) if match else None


def request_line(spec: JudgeSpec, comparison: Comparison) -> dict[str, Any]:
    """One line of a batch input file: the chat request the online judge sends for this comparison."""
    return {
        "custom_id": custom_id(comparison.key),
        "method": "POST",
        "url": CHAT_URL,
        "body": endpoint_payload(spec, comparison),
    }


def encoded_line(spec: JudgeSpec, comparison: Comparison) -> bytes:
    return (json.dumps(request_line(spec, comparison), ensure_ascii=False) + "\n").encode("utf-8")


def check_batch_judge(spec: JudgeSpec) -> None:
    if spec.kind not in BATCH_KINDS:
        raise ValueError(
            f"judge {spec.name!r} is kind {spec.kind}: batches are for endpoint judges "
            "(kind openai_logprobs or openai_verdict, e.g. --judge logprobs:MODEL); a local judge runs here, unbatched"
        )


def uncached(unique: Mapping[str, Comparison], cache_path: str | Path | None) -> tuple[list[Comparison], int]:
    """The comparisons without a verdict in the cache (which is read, never created) and not carried by
    an open Batch API submission, and how many an open submission carries (they are not written)."""
    path = Path(cache_path) if cache_path is not None else default_cache_path()
    if not path.exists():
        return list(unique.values()), 0
    with VerdictCache(path) as cache:
        known = cache.get_many(unique)
        held = cache.batch_held(key for key in unique if key not in known)
    return [c for key, c in unique.items() if key not in known and key not in held], len(held)


def write_batch_input(path: Path, spec: JudgeSpec, comparisons: Sequence[Comparison]) -> int:
    """Write the batch input file (whole or not at all); returns the number of requests."""
    from ..io import atomic_write_bytes

    check_batch_judge(spec)
    atomic_write_bytes(path, b"".join(encoded_line(spec, c) for c in comparisons))
    return len(comparisons)


def endpoint_digest(base_url: str) -> str:
    """Which endpoint a submission went to, without keeping its address."""
    return hashlib.sha256(base_url.rstrip("/").encode("utf-8")).hexdigest()[:16]


def reader_for(spec: JudgeSpec) -> Callable[[dict[str, Any]], Verdict]:
    return read_logprob_verdict if spec.kind == "openai_logprobs" else read_text_verdict


# -- reading output and error files ------------------------------------------------------------------


def _short(text: object, secret: Secret | None, limit: int = 200) -> str:
    line = " ".join(str(text).split())
    line = redact(line, secret)
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _error_text(response: Any, error: Any, secret: Secret | None) -> str:
    """Why a line carries no verdict, in one short line."""
    parts = []
    if isinstance(response, dict) and response.get("status_code") is not None:
        parts.append(f"HTTP {_short(response.get('status_code'), secret, 12)}")
        body = response.get("body")
        if isinstance(body, dict) and body.get("error") is not None:
            error = error if error is not None else body["error"]
    if isinstance(error, dict):
        inner = error.get("error", error) if isinstance(error.get("error"), dict) else error
        code, message = inner.get("code"), inner.get("message")
        parts.append(": ".join(_short(x, secret, 160) for x in (code, message) if x not in (None, "")))
    elif error not in (None, ""):
        parts.append(_short(error, secret, 160))
    return " ".join(p for p in parts if p) or "no response"


@dataclass
class ParsedOutput:
    """What an output (or error) file says: per key a verdict or the reason it has none, in file order."""

    verdicts: dict[str, Verdict] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # malformed or foreign lines, with their line numbers

    def seen(self, key: str) -> bool:
        return key in self.verdicts or key in self.failures


def parse_output(
    data: bytes,
    source: str,
    expected: Container[str],
    reader: Callable[[dict[str, Any]], Verdict],
    secret: Secret | None = None,
    into: ParsedOutput | None = None,
) -> ParsedOutput:
    """Read Batch API / run_batch output lines (`{"id", "custom_id", "response": {"status_code",
    "request_id", "body"}, "error"}`). Every line is checked: not JSON, not an object, a custom_id that
    is not ours or names a comparison outside `expected`, a second line for the same comparison, a
    response that is not an object: reported as `source line N: ...` and skipped. A well-formed line
    with a non-200 status, an error or an unusable body is a failure of that comparison (sent again)."""
    out = into if into is not None else ParsedOutput()
    scope = "batch" if source.startswith("batch ") else "run"
    for number, raw in enumerate(data.split(b"\n"), 1):
        if not raw.strip():
            continue

        def problem(reason: str, number: int = number) -> None:
            out.problems.append(f"{source} line {number}: {reason}; skipped")

        try:
            line = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            problem("not JSON")
            continue
        if not isinstance(line, dict):
            problem("not a JSON object")
            continue
        key = key_of(line.get("custom_id"))
        if key is None:
            problem(
                f"custom_id {_short(line.get('custom_id'), secret, 80)!r} is not one of ours (iif1- and 64 hex digits)"
            )
            continue
        if key not in expected:
            problem(f"custom_id {line['custom_id'][:17]}... names no comparison this {scope} asked for")
            continue
        if out.seen(key):
            problem(f"a second line for custom_id {line['custom_id'][:17]}... (the first one counts)")
            continue
        response, error = line.get("response"), line.get("error")
        if response is not None and not isinstance(response, dict):
            problem("response is not an object")
            out.failures[key] = "malformed output line (response is not an object)"
            continue
        status = response.get("status_code") if isinstance(response, dict) else None
        body = response.get("body") if isinstance(response, dict) else None
        if status is not None and (isinstance(status, bool) or not isinstance(status, int)):
            problem("status_code is not an integer")
            out.failures[key] = "malformed output line (status_code is not an integer)"
            continue
        if status == 200 and isinstance(body, dict) and error is None:
            try:
                body = scrub(body, secret)
                if not body.get("choices"):
                    raise BadResponse("response has no choices")
                out.verdicts[key] = reader(body)
            except (BadResponse, ValueError, RecursionError) as err:
                out.failures[key] = (
                    _short(err, secret) if not isinstance(err, RecursionError) else "body nested too deep"
                )
            continue
        if status == 200 and error is None:
            problem("status 200 without a response body object")
            out.failures[key] = "malformed output line (no response body)"
            continue
        out.failures[key] = _error_text(response, error, secret)
    return out


# -- the Batch and Files endpoints, through the openai SDK ------------------------------------------


class BatchEndpointError(EndpointError):
    """A Files/Batches call failed; `sent` says whether a create may have reached the provider (None: unknown)."""

    def __init__(self, message: str, sent: bool | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.sent = sent
        self.status = status


class BatchClient:
    """The Files and Batches endpoints of an OpenAI-compatible server, with the judge spec's address,
    key (from `api_key_env`), timeout and retries. Every message is one credential-free line."""

    def __init__(self, spec: JudgeSpec) -> None:
        import openai

        self.base_url = spec.base_url.rstrip("/")
        self.secret = Secret(os.environ.get(spec.api_key_env) or "")
        self.key_env = spec.api_key_env
        self.timeout_s = spec.timeout_s
        self._headers: dict[str, Any] = {} if self.secret.reveal() else {"Authorization": openai.omit}
        self._client = openai.OpenAI(
            base_url=self.base_url,
            api_key=self.secret.reveal() or "no-key",  # without a key, no Authorization header is sent (above)
            timeout=spec.timeout_s,
            max_retries=spec.max_retries,
        )

    def __repr__(self) -> str:
        return f"BatchClient(base_url={self.base_url!r})"

    def close(self) -> None:
        self._client.close()

    def _call(self, what: str, method: Any, *args: Any, **kwargs: Any) -> Any:
        import openai

        try:
            return method(*args, extra_headers=self._headers, **kwargs)
        except openai.APIError as error:
            raise self._error(what, error) from None

    def upload(self, name: str, data: bytes) -> str:
        """POST /files (purpose batch); an upload repeated by a retry costs nothing but storage."""
        return self._call("the input file upload", self._client.files.create, file=(name, data), purpose="batch").id

    def create(self, input_file_id: str, submission: str) -> Any:
        """POST /batches, never retried here: a create whose answer was lost is found by `find`, not repeated."""
        client = self._client.with_options(max_retries=0)
        return self._call(
            "the batch creation",
            client.batches.create,
            input_file_id=input_file_id,
            endpoint=CHAT_URL,
            completion_window="24h",
            metadata={"implicit_if_submission": submission},
        )

    def retrieve(self, batch_id: str) -> Any:
        return self._call(f"batch {batch_id}", self._client.batches.retrieve, batch_id)

    def content(self, file_id: str) -> bytes:
        client = self._client.with_options(timeout=max(self.timeout_s, 600.0))
        return self._call(f"file {file_id}", client.files.content, file_id).content

    def find(self, input_file_id: str, submission: str, since: float) -> list[Any]:
        """The provider's batches made from `input_file_id` (or tagged with `submission`), newest first."""
        import openai

        found = []
        page = self._call("the batch list", self._client.batches.list, limit=100)
        for _ in range(LIST_PAGES):
            for batch in page.data:
                tag = (batch.metadata or {}).get("implicit_if_submission")
                if batch.input_file_id == input_file_id or tag == submission:
                    found.append(batch)
            oldest = min((b.created_at for b in page.data), default=0)
            if not page.has_next_page() or oldest < since - 3600:  # an hour's margin for clock skew
                break
            try:
                page = page.get_next_page()  # the first request's options (headers) carry over
            except openai.APIError as error:
                raise self._error("the batch list", error) from None
        return found

    def _error(self, what: str, error: BaseException) -> BatchEndpointError:
        import openai

        where = f"the batch endpoint {self.base_url}"
        code = getattr(error, "status_code", None)
        detail = _short(server_message(error), self.secret, 300)
        if isinstance(error, openai.APITimeoutError):
            return BatchEndpointError(f"{where} did not answer {what} within {self.timeout_s:g}s: retry later", None)
        if isinstance(error, openai.APIConnectionError):
            if _is_connect_failure(error):
                return BatchEndpointError(
                    f"cannot reach {where} for {what}: is the server running and the address right? "
                    "Set it with --base-url or the spec's base_url",
                    False,
                )
            return BatchEndpointError(f"{where} dropped the connection during {what}: retry later", None)
        if code in (401, 403):
            return BatchEndpointError(
                f"{where} rejected the API key as unauthorised (HTTP {code}) for {what}: check the key in the "
                f"environment variable named by the spec's api_key_env ({self.key_env})",
                False,
                code,
            )
        if code in (404, 405) and what in ("the input file upload", "the batch creation", "the batch list"):
            return BatchEndpointError(
                f"{where} has no Batch API (HTTP {code} for {what}; vLLM's server has none): run the requests "
                "on your own GPUs with --batch-input-only FILE and vLLM's run_batch, then --batch-output FILE",
                False,
                code,
            )
        if code == 429:
            return BatchEndpointError(
                f"{where} is rate-limiting {what} (HTTP 429): retry later [{detail}]", False, code
            )
        if code is not None and code >= 500:
            return BatchEndpointError(f"{where} failed {what} with HTTP {code}: retry later [{detail}]", None, code)
        return BatchEndpointError(f"{where} refused {what} with HTTP {code} [{detail}]", False, code)


# -- a batch run -------------------------------------------------------------------------------------


@dataclass
class OpenBatch:
    """A submission still open after the run, for the status line."""

    batch_id: str
    status: str
    counts: str
    n_requests: int


@dataclass
class BatchReport:
    """What a batch run did and where it stands."""

    n_comparisons: int = 0
    n_cached: int = 0  # had a verdict before this run
    n_collected: int = 0  # verdicts read by this run
    n_failed: int = 0  # answers without a verdict read by this run (to be sent again)
    n_held_online: int = 0  # being asked right now by an online run sharing the cache
    n_missing: int = 0  # without a verdict at the end
    submitted: list[tuple[str, int]] = field(default_factory=list)  # (batch id, requests) created by this run
    open: list[OpenBatch] = field(default_factory=list)
    given_up: dict[str, str] = field(default_factory=dict)  # key -> last reason, after every attempt failed
    problems: list[str] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)

    @property
    def in_progress(self) -> bool:
        return bool(self.open) or self.n_held_online > 0

    @property
    def complete(self) -> bool:
        return self.n_missing == 0


def _counts(batch: Any) -> str:
    counts = getattr(batch, "request_counts", None)
    if counts is None:
        return ""
    return f"{counts.completed}/{counts.total} done, {counts.failed} failed"


def _batch_errors(batch: Any) -> str:
    errors = getattr(getattr(batch, "errors", None), "data", None) or []
    return "; ".join(f"{e.code or 'error'}: {e.message}" for e in errors[:3] if e is not None)


class _BatchRun:
    def __init__(
        self,
        unique: Mapping[str, Comparison],
        spec: JudgeSpec,
        cache: VerdictCache,
        report: BatchReport,
        *,
        say: Say,
        client: BatchClient | None,
        max_requests: int,
        max_bytes: int,
    ) -> None:
        self.unique, self.spec, self.cache, self.report, self.say = unique, spec, cache, report, say
        self.judge_hash = spec.identity_hash()
        self.endpoint = endpoint_digest(spec.base_url)
        self.reader = reader_for(spec)
        self.owner = owner_id()
        self._client = client
        self.max_requests, self.max_bytes = max_requests, max_bytes
        self.max_attempts = spec.max_retries + 1
        self.exhausted: set[str] = set()

    @property
    def client(self) -> BatchClient:
        if self._client is None:
            self._client = BatchClient(self.spec)
        return self._client

    def missing(self) -> list[str]:
        known = self.cache.get_many(self.unique)
        return [key for key in self.unique if key not in known]

    # -- open submissions: recover, poll, collect ------------------------------------------------
    def advance(self, row: dict[str, Any]) -> None:
        name = row["batch_id"] or f"submission {row['submission'][:8]}"
        if row["endpoint"] != self.endpoint:
            self.say(f"{name} was sent to another endpoint address: rerun with the --base-url it was sent to")
            return
        if row["state"] in ("uploading", "uploaded"):
            current = self.cache.take_over_batch(row["submission"], self.owner, LEASE_S, owner_gone)
            if current is None:
                self.say(f"{name} is being submitted by another run")
                return
            row = current  # as it is now, not as it was when listed
            if row["state"] == "uploading":  # its upload never finished: no batch can exist
                self.cache.abandon_batch(row["submission"], "its upload was interrupted before anything was sent")
                self.say(f"{name}: an interrupted upload (nothing was sent); its requests go into a new batch")
                return
            found = self.client.find(row["input_file_id"], row["submission"], row["created_at"])
            if found:
                batch = found[-1]  # the oldest: the one the interrupted run created
                self.cache.batch_submitted(row["submission"], batch.id, batch.status)
                self.say(f"found batch {batch.id}, created by an interrupted run: resumed it (not created again)")
                if len(found) > 1:
                    others = ", ".join(b.id for b in found[:-1])
                    self.say(f"warning: batches {others} carry the same input file: cancel them with the provider")
                row = {**row, "batch_id": batch.id, "state": "submitted"}
            else:
                self.create(row["submission"], row["input_file_id"], row["n_requests"])
                return
        self.poll(row)

    def poll(self, row: dict[str, Any]) -> None:
        batch = self.client.retrieve(row["batch_id"])
        self.cache.batch_status(row["submission"], batch.status, _counts(batch))
        if batch.status in TERMINAL:
            self.collect(row, batch)

    def collect(self, row: dict[str, Any], batch: Any) -> None:
        submission, expected = row["submission"], self.cache.batch_requests(row["submission"])
        parsed = ParsedOutput()
        for label, file_id in (("output", batch.output_file_id), ("error", batch.error_file_id)):
            if not file_id:
                continue
            try:
                data = self.client.content(file_id)
            except BatchEndpointError as error:
                if error.status != 404:
                    raise
                self.say(
                    f"batch {batch.id}: its {label} file {file_id} is gone (HTTP 404); its requests are sent again"
                )
                continue
            parse_output(data, f"batch {batch.id} {label} file", expected, self.reader, self.client.secret, parsed)
        self.report.problems.extend(parsed.problems)
        stored = 0
        for key, verdict in parsed.verdicts.items():
            if self.cache.put_batch_verdict(key, self.judge_hash, verdict):  # committed now, one by one
                stored += 1
                self.report.usage.prompt_tokens += verdict.prompt_tokens
                self.report.usage.completion_tokens += verdict.completion_tokens
        for key, reason in parsed.failures.items():
            self.cache.batch_item_failed(submission, key, f"batch {batch.id}: {reason}")
        why = f"batch {batch.id} ended {batch.status} without an answer for it"
        if batch.status == "failed" and _batch_errors(batch):
            why += f" ({_short(_batch_errors(batch), self.client.secret)})"
        missing = self.cache.batch_collected(submission, why)
        failed = len(set(parsed.failures) | missing)
        self.report.n_collected += stored
        self.report.n_failed += failed
        detail = f" ({_short(_batch_errors(batch), self.client.secret)})" if batch.status == "failed" else ""
        self.say(
            f"batch {batch.id} {batch.status}{detail}: collected {stored} verdicts"
            + (f", {failed} requests came back without one (released, to be sent again)" if failed else "")
        )

    # -- new submissions -------------------------------------------------------------------------
    def submit(self, keys: list[str]) -> None:
        if not keys:
            return
        lines = {key: encoded_line(self.spec, self.unique[key]) for key in keys}
        sizes = {key: len(line) for key, line in lines.items()}

        def digest(taken: list[str]) -> str:
            return hashlib.sha256(b"".join(lines[k] for k in taken)).hexdigest()

        while True:
            submission = uuid.uuid4().hex
            taken, exhausted = self.cache.claim_batch(
                keys,
                submission,
                judge_hash=self.judge_hash,
                endpoint=self.endpoint,
                owner=self.owner,
                lease_s=LEASE_S,
                max_attempts=self.max_attempts,
                max_requests=self.max_requests,
                max_bytes=self.max_bytes,
                sizes=sizes,
                digest=digest,
            )
            self.exhausted.update(exhausted)
            if not taken:
                return
            data = b"".join(lines[k] for k in taken)
            try:
                file_id = self.client.upload(f"implicit-if-{submission}.jsonl", data)
            except BaseException:
                self.cache.abandon_batch(submission, "its upload failed; nothing was sent")
                raise
            if not self.cache.batch_uploaded(submission, self.owner, file_id):
                return  # another run took it over (our lease ran out): it carries on from here
            self.create(submission, file_id, len(taken))
            taken_set = set(taken)
            keys = [k for k in keys if k not in taken_set]

    def create(self, submission: str, input_file_id: str, n_requests: int) -> None:
        try:
            batch = self.client.create(input_file_id, submission)
        except BatchEndpointError as error:
            if error.sent is False:  # definitely not created
                self.cache.abandon_batch(submission, "the provider refused the batch; nothing was sent")
            else:  # it may exist: the next run looks it up before creating anything
                self.cache.batch_disown(submission, self.owner)
            raise
        except BaseException:
            self.cache.batch_disown(submission, self.owner)
            raise
        self.cache.batch_submitted(submission, batch.id, batch.status)
        self.report.submitted.append((batch.id, n_requests))
        self.say(f"submitted batch {batch.id} ({n_requests} requests)")

    # -- the end of a run ------------------------------------------------------------------------
    def finish(self) -> None:
        missing = self.missing()
        report = self.report
        report.n_missing = len(missing)
        report.open = [
            OpenBatch(
                row["batch_id"] or f"submission {row['submission'][:8]}",
                row["status"] or row["state"],
                row["counts"] or "",
                row["n_requests"],
            )
            for row in self.cache.open_batches(missing)
        ]
        held = set(self.cache.batch_held(missing))
        report.n_held_online = len(self.cache.live_claims(set(missing) - held))
        if not report.open:
            failures = self.cache.batch_failures(self.exhausted & set(missing))
            report.given_up = {key: reason for key, (_, reason) in failures.items()}
            self.cache.reset_batch_failures(report.given_up)  # the next run sends them again, with a fresh budget


def judge_with_batches(
    unique: Mapping[str, Comparison],
    spec: JudgeSpec,
    *,
    cache_path: str | Path | None = None,
    wait_s: float = 0.0,
    poll_s: float = 60.0,
    max_requests: int = MAX_REQUESTS,
    max_bytes: int = MAX_BYTES,
    say: Say = lambda line: None,
    client: BatchClient | None = None,
) -> BatchReport:
    """One `judge --batch` run over the comparisons keyed by cache key: recover and poll the open
    submissions holding them, collect the finished ones, send again what came back without a verdict,
    submit the rest; repeat every `poll_s` seconds while batches are open, for at most `wait_s`.

    Raises EndpointError when the Files/Batches endpoints cannot be used; everything recorded so far
    stays in the cache database and the next run resumes from it."""
    check_batch_judge(spec)
    report = BatchReport(n_comparisons=len(unique))
    deadline = time.monotonic() + wait_s
    with VerdictCache(cache_path or default_cache_path()) as cache:
        cache.register_judge(spec.identity_hash(), spec.identity())
        run = _BatchRun(
            unique, spec, cache, report, say=say, client=client, max_requests=max_requests, max_bytes=max_bytes
        )
        try:
            missing = run.missing()
            report.n_cached = len(unique) - len(missing)
            while True:
                for row in cache.open_batches(missing):
                    run.advance(row)
                run.submit(run.missing())
                missing = run.missing()
                still_open = cache.open_batches(missing)
                if not still_open or time.monotonic() >= deadline:
                    break
                time.sleep(max(0.0, min(poll_s, deadline - time.monotonic())))
            run.finish()
        finally:
            if client is None and run._client is not None:
                run._client.close()
    report.usage.responses = report.n_collected
    return report


def collect_output_files(
    paths: Iterable[Path], unique: Mapping[str, Comparison], spec: JudgeSpec, *, cache_path: str | Path | None = None
) -> BatchReport:
    """Commit the verdicts of output files (vLLM's run_batch, or a Batch API output/error file) to the
    cache; lines for comparisons outside this run, and malformed lines, are reported and skipped."""
    check_batch_judge(spec)
    report = BatchReport(n_comparisons=len(unique))
    judge_hash = spec.identity_hash()
    reader = reader_for(spec)
    parsed = ParsedOutput()
    secret = Secret(os.environ.get(spec.api_key_env) or "")  # a file from elsewhere may echo it too
    for path in paths:
        parse_output(Path(path).read_bytes(), str(path), unique, reader, secret, parsed)
    report.problems = parsed.problems
    with VerdictCache(cache_path or default_cache_path()) as cache:
        cache.register_judge(judge_hash, spec.identity())
        report.n_cached = len(cache.get_many(unique))
        for key, verdict in parsed.verdicts.items():
            if cache.put_batch_verdict(key, judge_hash, verdict):
                report.n_collected += 1
                report.usage.prompt_tokens += verdict.prompt_tokens
                report.usage.completion_tokens += verdict.completion_tokens
        known = cache.get_many(unique)
    report.n_missing = len(unique) - len(known)
    report.given_up = {key: reason for key, reason in parsed.failures.items() if key not in known}
    report.n_failed = len(report.given_up)
    report.usage.responses = report.n_collected
    return report


def annotations_from_cache(
    pairs: Sequence[Pair],
    per_pair: Sequence[Sequence[Comparison]],
    unique: Mapping[str, Comparison],
    spec: JudgeSpec,
    *,
    cache_path: str | Path | None = None,
    failed: Mapping[str, str] | None = None,
    missing_reason: str = "no verdict from any batch yet",
) -> tuple[list[dict[str, Any]], JudgeSummary]:
    """The annotations `judge_outputs` writes, from the cache alone (nothing is asked): a comparison
    without a verdict gives a null preference, as a failed request does online."""
    judge_hash = spec.identity_hash()
    with VerdictCache(cache_path or default_cache_path()) as cache:
        verdicts = cache.get_many(unique)
    summary = JudgeSummary(
        n_pairs=len(pairs),
        n_identical=sum(p.identical for p in pairs),
        n_comparisons=len(unique),
        n_cached=len(verdicts),
    )
    summary.n_unusable = sum(1 for v in verdicts.values() if v.p_second is None)
    summary.failed = {key: (failed or {}).get(key, missing_reason) for key in unique if key not in verdicts}
    from . import annotations_from

    return annotations_from(pairs, per_pair, verdicts, spec.name, judge_hash), summary


def batch_cost(report: BatchReport, spec: JudgeSpec) -> float | None:
    """The collected tokens at the Batch API's price: half the spec's (OpenAI's batch discount)."""
    cost = report.usage.cost(spec.price_per_million_input, spec.price_per_million_output)
    return None if cost is None else cost / 2
