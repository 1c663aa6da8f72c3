"""Asynchronous client for an OpenAI-compatible chat endpoint, built to survive a flaky one.

- at most `concurrency` requests in flight;
- 429, 408, 5xx, timeouts, dropped connections and unusable bodies are retried with exponential
  backoff and full jitter (seeded), waiting at least as long as a `Retry-After` header asks;
- a rejected key (401/403), an unknown model (404) or an endpoint that cannot be reached at all
  stop the run with one clear line (`EndpointError`), since every further request would fail too;
- other 4xx fail only that request (`RequestFailed`).
The key travels only in the Authorization header; every message built from a response passes
through `redact` first, so an endpoint echoing the key cannot leak it into logs.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524})
MAX_RETRY_AFTER_S = 300.0


class EndpointError(RuntimeError):
    """The endpoint cannot serve this run (bad key, unknown model, unreachable): stop."""


class RequestFailed(RuntimeError):
    """One request failed for good (retries exhausted or a non-retryable 4xx)."""


class BadResponse(ValueError):
    """A 200 response whose body is unusable (not JSON, no choices, no log-probabilities)."""


@dataclass
class Usage:
    """Running totals for the end-of-run summary (every 200 response counts: it was paid for)."""

    requests: int = 0
    responses: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    failures: list[str] = field(default_factory=list)

    def add(self, other: Usage) -> None:
        """Fold another run's totals into these."""
        self.requests += other.requests
        self.responses += other.responses
        self.retries += other.retries
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.failures.extend(other.failures)

    def cost(self, price_in: float | None, price_out: float | None) -> float | None:
        if price_in is None or price_out is None:
            return None
        return (self.prompt_tokens * price_in + self.completion_tokens * price_out) / 1e6


def redact(text: str, secret: str | None) -> str:
    if secret:
        text = text.replace(secret, "***")
    return text


def scrub(value: Any, secret: str | None) -> Any:
    """`value` with the secret removed from every string in it: a server may echo the key, and a
    verdict's text goes to the cache and into the annotations."""
    if not secret:
        return value
    if isinstance(value, str):
        return redact(value, secret)
    if isinstance(value, dict):
        return {scrub(k, secret): scrub(v, secret) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v, secret) for v in value]
    return value


def usage_counts(body: dict[str, Any]) -> tuple[int, int]:
    """(prompt, completion) tokens of a reply's `usage`; ValueError when they are not counts."""
    usage = body.get("usage") or {}
    if not isinstance(usage, dict):
        raise ValueError("response usage is not an object")
    counts = []
    for key in ("prompt_tokens", "completion_tokens"):
        value = usage.get(key) or 0
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"response usage.{key} is not a count: {str(value)[:40]!r}")
        counts.append(value)
    return counts[0], counts[1]


def retry_after_seconds(header: str | None, now: float | None = None) -> float | None:
    """Seconds asked for by a Retry-After header (delta-seconds or an HTTP date), capped."""
    if not header:
        return None
    header = header.strip()
    try:
        seconds = float(header)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(header).timestamp()
        except (TypeError, ValueError):
            return None
        seconds = when - (time.time() if now is None else now)
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


class ChatClient:
    """POST /chat/completions with retries; `validate` turns a parsed body into a result or raises BadResponse."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        concurrency: int = 8,
        timeout_s: float = 60.0,
        max_retries: int = 6,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30.0,
        seed: int = 0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.base_url = base_url
        self._key = api_key
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self._random = random.Random(seed)
        self._sleep = sleep
        self._slots = asyncio.Semaphore(concurrency)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        )
        self.usage = Usage()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> ChatClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """Full jitter: uniform in [0, min(max, base * 2^attempt)], never less than Retry-After."""
        ceiling = min(self.backoff_max_s, self.backoff_base_s * (2**attempt))
        delay = self._random.uniform(0, ceiling)
        return max(delay, retry_after) if retry_after is not None else delay

    async def complete(self, payload: dict[str, Any], validate: Callable[[dict[str, Any]], Any]) -> Any:
        """Send one chat request until `validate` accepts a response, or fail (see module docstring)."""
        last_problem = ""
        connect_failures = 0
        for attempt in range(self.max_retries + 1):
            retry_after = None
            async with self._slots:
                self.usage.requests += 1
                try:
                    response = await self._http.post(self.url, json=payload)
                except httpx.ConnectError as error:
                    connect_failures += 1
                    last_problem = f"cannot connect ({type(error).__name__})"
                    response = None
                except (httpx.TimeoutException, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as error:
                    last_problem = f"{type(error).__name__}"
                    response = None
            if response is not None:
                outcome = self._read(response)
                if isinstance(outcome, _Retry):
                    last_problem, retry_after = outcome.problem, outcome.retry_after
                else:
                    try:
                        return validate(outcome)
                    except BadResponse as error:
                        last_problem = redact(str(error), self._key)
            if attempt < self.max_retries:
                self.usage.retries += 1
                await self._sleep(self.backoff(attempt, retry_after))
        if connect_failures == self.max_retries + 1:
            raise EndpointError(
                f"cannot reach the judge endpoint {self.base_url} ({last_problem}); is the server running "
                "and the address right? (--base-url)"
            )
        raise RequestFailed(f"gave up after {self.max_retries + 1} attempts: {last_problem}")

    def _read(self, response: httpx.Response) -> dict[str, Any] | _Retry:
        status = response.status_code
        if status in (401, 403):
            raise EndpointError(
                f"the judge endpoint {self.base_url} rejected the request as unauthorised (HTTP {status}): "
                "check the API key in the environment variable named by the spec's api_key_env"
            )
        if status == 404:
            raise EndpointError(
                f"HTTP 404 from {self.url}: wrong --base-url (it should end in /v1) or the endpoint does not "
                f"serve this model ({redact(response.text[:200], self._key)})"
            )
        if status in RETRYABLE_STATUS or status >= 500:
            return _Retry(f"HTTP {status}", retry_after_seconds(response.headers.get("retry-after")))
        if status >= 400:
            raise RequestFailed(f"HTTP {status}: {redact(response.text[:300], self._key)}")
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
            return _Retry("response body is not JSON", None)
        if not isinstance(body, dict) or not body.get("choices"):
            return _Retry("response has no choices", None)
        try:
            prompt_tokens, completion_tokens = usage_counts(body)
        except ValueError as error:
            return _Retry(str(error), None)
        self.usage.responses += 1
        self.usage.prompt_tokens += prompt_tokens
        self.usage.completion_tokens += completion_tokens
        return scrub(body, self._key)


@dataclass(frozen=True)
class _Retry:
    problem: str
    retry_after: float | None
