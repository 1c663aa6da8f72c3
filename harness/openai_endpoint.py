"""One client for OpenAI-compatible endpoints (OpenAI, vLLM's server, proxies), shared by the openai
backend (generation, scoring) and the endpoint judges.

The openai SDK does the HTTP work, its retries on: 408, 409, 429 and 5xx, timeouts and dropped or
refused connections are retried up to `max_retries` times with its exponential backoff and jitter
(0.5 s doubling to 8 s), waiting what `Retry-After` / `retry-after-ms` asks (up to 120 s; a server
asking for longer is not retried). Written here, only what the SDK cannot do:

- retrying a 200 whose body is unusable (not JSON, no choices, malformed usage, or refused by the
  caller's `validate` with `BadResponse`): the SDK retries on status codes and transport errors,
  never on a body, and flaky proxies (and endpoints that drop log-probabilities now and then)
  answer 200. These retries spend the same `max_retries` budget as the SDK's, and wait a seeded
  backoff with full jitter;
- one error vocabulary with one line naming the problem and the fix: `EndpointError` when the
  endpoint cannot serve the run (key rejected, unknown model or wrong address, unreachable, still
  rate-limiting), `RequestFailed` when one request failed for good (another 4xx, or retries spent
  on 5xx, timeouts or unusable bodies); the SDK's exceptions carry the server's text, which may
  echo the key;
- usage accounting: httpx event hooks on the SDK's `http_client` count every HTTP attempt (the
  SDK's retries included), so `Usage.requests` and `Usage.retries` are what was sent;
- secrecy: the key is held in a `Secret`; every message passes through `redact` and every body
  through `scrub` before a caller sees it, since an endpoint may echo the key.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


# -- secrets ----------------------------------------------------------------------------------
class Secret:
    """A string that never shows itself in repr, str, logs or tracebacks' locals."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def redact(self, text: str) -> str:
        """The text with every occurrence of the secret masked."""
        return text.replace(self._value, "***") if self._value else text

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __reduce__(self):  # refuse to be pickled into caches or worker payloads by accident
        raise TypeError("a Secret cannot be pickled")


def _plain(secret: str | Secret | None) -> str | None:
    return secret.reveal() if isinstance(secret, Secret) else secret


def redact(text: str, secret: str | Secret | None) -> str:
    """`text` with every occurrence of the secret masked."""
    value = _plain(secret)
    return text.replace(value, "***") if value else text


def scrub(value: Any, secret: str | Secret | None) -> Any:
    """`value` with the secret removed from every string in it: a server may echo the key, and a
    verdict's text goes to the cache and into the annotations."""
    if not _plain(secret):
        return value
    if isinstance(value, str):
        return redact(value, secret)
    if isinstance(value, dict):
        return {scrub(k, secret): scrub(v, secret) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v, secret) for v in value]
    return value


# -- errors -----------------------------------------------------------------------------------
class EndpointError(RuntimeError):
    """The endpoint cannot serve this run (key rejected, unknown model or address, unreachable, still
    rate-limiting): stop, every further request would fail too. The message says what to do."""


class RequestFailed(RuntimeError):
    """One request failed for good (a non-retryable 4xx, or retries spent); others may still succeed."""


class BadResponse(ValueError):
    """A 200 response whose body is unusable (not JSON, no choices, no log-probabilities): retried."""


# -- usage ------------------------------------------------------------------------------------
@dataclass
class Usage:
    """Running totals for the end-of-run summary: every HTTP attempt counts as a request, every
    usable 200 response as a response (it was paid for) with its tokens."""

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


# -- the client -------------------------------------------------------------------------------
@dataclass
class _Call:
    """One logical request across all its HTTP attempts (the SDK's retries and ours)."""

    attempts: int = 0
    responded: bool = False  # some attempt got an HTTP response: the server is reachable
    last_problem: str = "no response"


# The logical request a coroutine is sending: the httpx hooks run in its task and read it from here.
_CALL: contextvars.ContextVar[_Call] = contextvars.ContextVar("implicit_if_openai_call")

Kind = Literal["completions", "chat/completions"]


class OpenAIEndpoint:
    """POST completions or chat completions to one endpoint, at most `concurrency` at a time.

    `request(kind, payload, validate)` sends `payload` (the request's JSON fields; `extra_body` is
    merged by the SDK) until `validate(body)` accepts the parsed, scrubbed body or retries are spent.
    `label`, `key_hint` and `url_hint` word the errors for the caller (whose option names the key
    and the address). Close with `aclose()` or use `async with`.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | Secret | None,
        *,
        concurrency: int = 8,
        timeout_s: float = 60.0,
        max_retries: int = 5,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 8.0,
        seed: int = 0,
        label: str = "the endpoint at",
        key_hint: str = "pass the right key with api_key= or set OPENAI_API_KEY",
        url_hint: str = "set it with base_url= or OPENAI_BASE_URL",
    ) -> None:
        import openai

        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self.base_url = base_url.rstrip("/")
        self._key = api_key if isinstance(api_key, Secret) else Secret(api_key or "")
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.label, self.key_hint, self.url_hint = label, key_hint, url_hint
        self.usage = Usage()
        self._random = random.Random(seed)
        self._slots = asyncio.Semaphore(concurrency)
        http_client = openai.DefaultAsyncHttpxClient(
            event_hooks={"request": [self._on_request], "response": [self._on_response]}
        )
        self._client = openai.AsyncOpenAI(
            base_url=self.base_url,
            # The SDK insists on a key; without one a placeholder satisfies it and the header is
            # omitted per request (see `request`), so no key from the environment is ever sent.
            api_key=self._key.reveal() or "no-key",
            timeout=timeout_s,
            max_retries=max_retries,
            http_client=http_client,
        )
        self._budgets: dict[int, Any] = {max_retries: self._client}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r}, max_retries={self.max_retries})"

    async def aclose(self) -> None:
        await self._client.close()

    async def __aenter__(self: T) -> T:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- accounting (httpx event hooks: they see every attempt the SDK makes) -----------------
    async def _on_request(self, request: Any) -> None:
        self.usage.requests += 1
        call = _CALL.get(None)
        if call is None:
            return
        call.attempts += 1
        if call.attempts > 1:
            self.usage.retries += 1
            log.warning(
                "%s from %s; retry %d/%d", call.last_problem, self.base_url, call.attempts - 1, self.max_retries
            )
        call.last_problem = "no response (timeout or connection error)"

    async def _on_response(self, response: Any) -> None:
        call = _CALL.get(None)
        if call is not None:
            call.responded = True
            call.last_problem = f"HTTP {response.status_code}"

    # -- requests -----------------------------------------------------------------------------
    def backoff(self, retry: int) -> float:
        """Our wait before re-asking after an unusable body: full jitter, uniform in
        [0, min(max, base * 2^retry)], seeded (the SDK's own waits cover every other retry)."""
        return self._random.uniform(0, min(self.backoff_max_s, self.backoff_base_s * 2**retry))

    def _with_budget(self, retries: int) -> Any:
        """The SDK client allowed `retries` more retries (sharing the HTTP client and its hooks)."""
        if retries not in self._budgets:
            self._budgets[retries] = self._client.with_options(max_retries=retries)
        return self._budgets[retries]

    async def request(self, kind: Kind, payload: dict[str, Any], validate: Callable[[dict[str, Any]], T]) -> T:
        """Send one request until `validate` accepts a response; raises EndpointError or RequestFailed.

        `validate` gets the parsed body with the key scrubbed and returns the result; it raises
        BadResponse for a body worth asking again for (anything else propagates at once)."""
        import openai

        call = _Call()
        token = _CALL.set(call)
        headers = {} if self._key.reveal() else {"Authorization": openai.omit}
        try:
            while True:
                client = self._with_budget(self.max_retries - call.attempts)
                resource = client.completions if kind == "completions" else client.chat.completions
                async with self._slots:
                    try:
                        raw = await resource.with_raw_response.create(**payload, extra_headers=headers)
                    except openai.APIError as error:
                        raise self._failure(error, call, payload.get("model")) from None
                try:
                    return validate(self._read(raw.http_response.content))
                except BadResponse as error:
                    call.last_problem = redact(str(error), self._key)
                if call.attempts > self.max_retries:
                    raise RequestFailed(
                        f"{self.label} {self.base_url} sent no usable response in {_attempts(call)}: "
                        f"{call.last_problem}"
                    )
                await asyncio.sleep(self.backoff(call.attempts - 1))
        finally:
            _CALL.reset(token)

    def _read(self, content: bytes) -> dict[str, Any]:
        """The parsed, scrubbed body of a 200 response, its usage counted; BadResponse if unusable."""
        try:
            body = json.loads(content)
        except (UnicodeDecodeError, ValueError):
            raise BadResponse("response body is not JSON") from None
        if not isinstance(body, dict) or not body.get("choices"):
            raise BadResponse("response has no choices")
        try:
            prompt_tokens, completion_tokens = usage_counts(body)
        except ValueError as error:
            raise BadResponse(str(error)) from None
        self.usage.responses += 1
        self.usage.prompt_tokens += prompt_tokens
        self.usage.completion_tokens += completion_tokens
        return scrub(body, self._key)

    def _failure(self, error: BaseException, call: _Call, model: Any) -> EndpointError | RequestFailed:
        """The SDK's final error as one credential-free line naming the problem and the fix."""
        import openai

        where, tried = f"{self.label} {self.base_url}", _attempts(call)
        code = getattr(error, "status_code", None)
        detail = redact(server_message(error), self._key)[:300]
        if isinstance(error, openai.APITimeoutError):
            return RequestFailed(
                f"{where} did not answer within {self.timeout_s:g}s ({tried}): raise the timeout, lower the "
                "concurrency, or check the server's load"
            )
        if isinstance(error, openai.APIConnectionError):
            if not call.responded and _is_connect_failure(error):
                return EndpointError(
                    f"cannot reach {where} ({tried}): is the server running and the address right? "
                    f"{self.url_hint[:1].upper()}{self.url_hint[1:]}"
                )
            return RequestFailed(f"{where} dropped the connection ({tried}): {_cause_name(error)}")
        if code in (401, 403):
            return EndpointError(f"{where} rejected the API key as unauthorised (HTTP {code}): {self.key_hint}")
        if code == 404:
            return EndpointError(
                f"{where} answered HTTP 404 for model {model!r}: check the served model name (GET "
                f"{self.base_url}/models lists them) and that the address ends in /v1 ({self.url_hint}) [{detail}]"
            )
        if code == 429:
            wait = getattr(getattr(error, "response", None), "headers", {}).get("retry-after")
            asked = f" (Retry-After: {redact(wait, self._key)[:40]})" if wait else ""
            return EndpointError(
                f"{where} is still rate-limiting after {tried}{asked}: lower the concurrency or retry later [{detail}]"
            )
        if code is not None and code >= 500:
            return RequestFailed(f"{where} kept failing with HTTP {code} after {tried} [{detail}]")
        if code is not None:
            return RequestFailed(f"{where} refused the request with HTTP {code} [{detail}]")
        return RequestFailed(f"a request to {where} failed ({tried}): {type(error).__name__}: {detail}")


def _attempts(call: _Call) -> str:
    return f"{call.attempts} attempt{'s' if call.attempts != 1 else ''}"


def _cause_name(error: BaseException) -> str:
    cause = error.__cause__ or error.__context__
    return type(cause or error).__name__


def _is_connect_failure(error: BaseException) -> bool:
    """The connection could not even be opened (refused, unresolvable host), for httpx and httpx2 alike."""
    names: set[str] = set()
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        names.update(cls.__name__ for cls in type(current).__mro__)
        current = current.__cause__ or current.__context__
    return bool(names & {"ConnectError", "ConnectionRefusedError", "gaierror"})


def server_message(error: BaseException) -> str:
    """The server's own error text of an SDK status error (may echo the key: redact it)."""
    body = getattr(error, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            return str(inner.get("message", inner))
        return str(body.get("message", inner))
    return str(getattr(error, "message", "") or error)


def run_coroutine(coro: Awaitable[T]) -> T:
    """Run a coroutine to completion from sync code, even inside a running event loop (notebooks)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)  # type: ignore[arg-type]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()  # type: ignore[arg-type]
