"""Backend for any OpenAI-compatible endpoint (OpenAI, vLLM's server, and the like).

- `generate` sends our formatted prompts to the completions endpoint; `generate_chat` sends
  message lists to chat completions (the server applies its chat template).
- `score` tokenises locally with the served model's tokenizer (the study's contract, see
  `implicit_if.scoring.tokenize_pair`), sends the token ids as the prompt with `echo=True`,
  `logprobs=0` and one generated token, and sums the echoed log-probabilities of the
  continuation. vLLM's server supports this; most hosted chat APIs do not, and say so clearly.
- Requests run concurrently (asyncio, at most `max_concurrency` in flight) and are retried with
  exponential backoff and jitter on 429, 408/409, 5xx, timeouts and connection errors, waiting
  at least as long as the server's Retry-After. `with_retries` is the reusable piece: any
  async client call can go through it.
- The API key is held in a `Secret`, never printed, logged or put into an error message.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from .base import GenerationConfig, ScoredContinuation, truncate_at_stop

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


# -- retries ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry a transient failure.

    The n-th retry waits `min(max_delay, base_delay * 2**n)` scaled by a random factor in
    [0.5, 1] (jitter spreads out concurrent clients), or the server's Retry-After when it gives
    one. A Retry-After longer than `max_retry_after` is not waited for: the error surfaces.
    """

    max_retries: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_retry_after: float = 120.0
    # A refused connection usually means no server at that address: retry only briefly (a restart).
    connect_retries: int = 2


RETRYABLE_STATUS = frozenset({408, 409, 429})


def status_code(exc: BaseException) -> int | None:
    """HTTP status of an openai or httpx error, if it carries a response."""
    code = getattr(exc, "status_code", None)
    if isinstance(code, int):
        return code
    response = getattr(exc, "response", None)
    code = getattr(response, "status_code", None)
    return code if isinstance(code, int) else None


def error_names(exc: BaseException) -> set[str]:
    """Class names along the exception's cause chain (matches httpx and its forks alike)."""
    names: set[str] = set()
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        names.update(cls.__name__ for cls in type(current).__mro__)
        current = current.__cause__ or current.__context__
    return names


def is_connect_failure(exc: BaseException) -> bool:
    """The connection could not even be opened (refused, unresolvable host)."""
    return bool(error_names(exc) & {"ConnectError", "ConnectionRefusedError", "gaierror"})


def is_retryable(exc: BaseException) -> bool:
    """Transient failures: rate limits, server errors, timeouts and dropped connections."""
    code = status_code(exc)
    if code is not None:
        return code in RETRYABLE_STATUS or code >= 500
    names = error_names(exc)
    return bool(names & {"APIConnectionError", "TimeoutException", "TransportError", "TimeoutError", "ConnectionError"})


def retry_after_seconds(exc: BaseException, now: float | None = None) -> float | None:
    """The server's requested wait (Retry-After-Ms, or Retry-After in seconds or as a date)."""
    headers = getattr(getattr(exc, "response", None), "headers", None)
    if headers is None:
        return None
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(float(value) / divisor, 0.0)
        except ValueError:
            if name == "retry-after":
                parsed = email.utils.parsedate_tz(value)
                if parsed is not None:
                    return max(email.utils.mktime_tz(parsed) - (now if now is not None else time.time()), 0.0)
    return None


def backoff_delay(retry: int, policy: RetryPolicy, rng: random.Random) -> float:
    """Exponential backoff with jitter for the `retry`-th retry (0-based)."""
    return min(policy.max_delay, policy.base_delay * 2.0**retry) * (0.5 + 0.5 * rng.random())


async def with_retries(
    call: Callable[[], Awaitable[T]],
    policy: RetryPolicy = RetryPolicy(),
    *,
    rng: random.Random | None = None,
    on_retry: Callable[[int, BaseException, float], None] | None = None,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> T:
    """Await `call()` until it succeeds, retrying transient failures (see `is_retryable`).

    `call` must build a fresh request each time. `on_retry(retry_number, error, delay)` is told
    before each wait (for logging; do not log the error's request, it carries credentials).
    The last error is re-raised once retries are spent or the error is not transient.
    """
    rng = rng or random.Random()
    retry = 0
    while True:
        try:
            return await call()
        except Exception as exc:  # noqa: BLE001 - classified just below
            limit = policy.connect_retries if is_connect_failure(exc) else policy.max_retries
            if retry >= min(limit, policy.max_retries) or not is_retryable(exc):
                raise
            delay = backoff_delay(retry, policy, rng)
            requested = retry_after_seconds(exc)
            if requested is not None:
                if requested > policy.max_retry_after:
                    raise
                delay = max(delay, requested)
            retry += 1
            if on_retry is not None:
                on_retry(retry, exc, delay)
            await sleep(delay)


def describe_failure(exc: BaseException) -> str:
    """A short, credential-free description of a failed request (for logs)."""
    code = status_code(exc)
    return f"HTTP {code}" if code is not None else type(exc).__name__


# -- errors -----------------------------------------------------------------------------------
class EndpointError(RuntimeError):
    """A request to an OpenAI-compatible endpoint failed for good; the message says what to do."""


def explain_failure(exc: BaseException, *, base_url: str, model: str, timeout: float, attempts: int) -> str:
    """Turn a final client error into one clear sentence naming the problem and the fix."""
    import openai

    code = status_code(exc)
    tried = f"{attempts} attempt{'s' if attempts != 1 else ''}"
    if isinstance(exc, openai.APITimeoutError):
        return (
            f"the endpoint at {base_url} did not answer within {timeout:g}s ({tried}): "
            "raise the timeout, lower max_concurrency, or check the server's load"
        )
    if isinstance(exc, openai.APIConnectionError):
        return (
            f"cannot reach the OpenAI-compatible endpoint at {base_url} ({tried}): is the server running "
            "and the address right? Set it with base_url= or OPENAI_BASE_URL"
        )
    if code in (401, 403):
        return (
            f"the endpoint at {base_url} rejected the API key (HTTP {code}): pass the right key with "
            "api_key= or set OPENAI_API_KEY"
        )
    detail = server_message(exc)
    if code == 404:
        return (
            f"the endpoint at {base_url} answered HTTP 404 for model {model!r}: check the served model "
            f"name (GET {base_url.rstrip('/')}/models lists them) [{detail}]"
        )
    if code == 429:
        return (
            f"the endpoint at {base_url} is still rate-limiting after {tried}: "
            f"lower max_concurrency or retry later [{detail}]"
        )
    if code is not None and code >= 500:
        return f"the endpoint at {base_url} kept failing with HTTP {code} after {tried} [{detail}]"
    if code is not None and code < 400:
        return f"the endpoint at {base_url} sent a response that is not valid OpenAI API JSON (HTTP {code}) [{detail}]"
    if code is not None:
        return f"the endpoint at {base_url} refused the request with HTTP {code} [{detail}]"
    return f"request to {base_url} failed: {type(exc).__name__}: {exc}"


def server_message(exc: BaseException) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            return str(inner.get("message", inner))
        return str(body.get("message", inner))
    return str(getattr(exc, "message", "") or exc)


def run_coroutine(coro: Awaitable[T]) -> T:
    """Run a coroutine to completion from sync code, even inside a running event loop (notebooks)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)  # type: ignore[arg-type]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()  # type: ignore[arg-type]


# -- the backend ------------------------------------------------------------------------------
class OpenAIBackend:
    name = "openai"

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        tokenizer: Any = None,
        max_concurrency: int = 8,
        timeout: float = 60.0,
        retry: RetryPolicy = RetryPolicy(),
        extra_body: dict[str, Any] | None = None,
        progress: bool = True,
    ) -> None:
        """`model` is the served model name. `tokenizer` (a HF name/path, an embedded model name,
        or a tokenizer object) must match the served model; `score` needs it and defaults to
        loading one named like `model`. `extra_body` is sent with every request (server extras)."""
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        if not key:
            raise ValueError(
                "no API key: pass api_key= or set OPENAI_API_KEY (for a local server started without "
                "--api-key any placeholder such as EMPTY works)"
            )
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency}")
        self.model_id = model
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1").rstrip("/")
        self._api_key = Secret(key)
        self._tokenizer_spec = tokenizer
        self._tokenizer: Any = None if isinstance(tokenizer, str) or tokenizer is None else tokenizer
        self.max_concurrency = max_concurrency
        self.timeout = timeout
        self.retry = retry
        self.extra_body = dict(extra_body) if extra_body else None
        self.progress = progress

    def __repr__(self) -> str:
        return (
            f"OpenAIBackend(model={self.model_id!r}, base_url={self.base_url!r}, "
            f"max_concurrency={self.max_concurrency})"
        )

    # -- tokenizer (scoring only) -----------------------------------------------------------
    @property
    def tokenizer(self):
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            from ..models import resolve_model

            spec = self._tokenizer_spec or self.model_id
            try:
                self._tokenizer = AutoTokenizer.from_pretrained(resolve_model(spec))
            except Exception as err:  # noqa: BLE001 - any failure means the same fix
                raise ValueError(
                    f"score() tokenises locally and needs the served model's tokenizer; loading {spec!r} "
                    f"failed ({type(err).__name__}): pass tokenizer=<HF name or local path of the served model>"
                ) from None
        return self._tokenizer

    # -- requests ---------------------------------------------------------------------------
    def _run(self, requests: Sequence[Callable[[Any], Awaitable[T]]], desc: str) -> list[T]:
        """Send every request (a function of the client), at most max_concurrency at a time."""
        return run_coroutine(self._run_async(requests, desc))

    async def _run_async(self, requests: Sequence[Callable[[Any], Awaitable[T]]], desc: str) -> list[T]:
        import openai
        from tqdm.auto import tqdm

        limit = asyncio.Semaphore(self.max_concurrency)
        rng = random.Random(0)
        bar = tqdm(total=len(requests), desc=f"{desc} ({self.model_id})", disable=not self.progress)
        client = openai.AsyncOpenAI(
            base_url=self.base_url, api_key=self._api_key.reveal(), timeout=self.timeout, max_retries=0
        )

        async def one(request: Callable[[Any], Awaitable[T]]) -> T:
            attempts = 0

            async def attempt() -> T:
                nonlocal attempts
                attempts += 1
                return await request(client)

            async with limit:
                try:
                    result = await with_retries(attempt, self.retry, rng=rng, on_retry=self._log_retry)
                except openai.APIError as exc:
                    message = explain_failure(
                        exc, base_url=self.base_url, model=self.model_id, timeout=self.timeout, attempts=attempts
                    )
                    raise EndpointError(self._api_key.redact(message)) from None
            bar.update(1)
            return result

        tasks = [asyncio.ensure_future(one(r)) for r in requests]
        try:
            return list(await asyncio.gather(*tasks))
        finally:
            for task in tasks:
                task.cancel()
            bar.close()
            await client.close()

    def _log_retry(self, retry: int, exc: BaseException, delay: float) -> None:
        log.warning(
            "%s from %s; retry %d/%d in %.1fs",
            describe_failure(exc),
            self.base_url,
            retry,
            self.retry.max_retries,
            delay,
        )

    def _sampling(self, config: GenerationConfig) -> dict[str, Any]:
        sampled = config.temperature > 0
        options: dict[str, Any] = {
            "max_tokens": config.max_new_tokens,
            "temperature": config.temperature if sampled else 0.0,
            "seed": config.seed,
        }
        if sampled:
            options["top_p"] = config.top_p
        if config.stop:
            options["stop"] = list(config.stop)
        if self.extra_body:
            options["extra_body"] = self.extra_body
        return options

    # -- generation -------------------------------------------------------------------------
    def generate(self, prompts: Sequence[str], config: GenerationConfig = GenerationConfig()) -> list[str]:
        """Complete already formatted prompts (tag formats) through the completions endpoint."""
        options = self._sampling(config)

        def request(prompt: str):
            async def send(client) -> str:
                response = await client.completions.create(model=self.model_id, prompt=prompt, **options)
                return response.choices[0].text or ""

            return send

        texts = self._run([request(p) for p in prompts], "generate")
        return [truncate_at_stop(t, config.stop) for t in texts]  # servers may ignore stop

    def generate_chat(
        self, conversations: Sequence[Sequence[dict[str, str]]], config: GenerationConfig = GenerationConfig()
    ) -> list[str]:
        """Answer message lists through chat completions; the server applies its chat template."""
        options = self._sampling(config)

        def request(messages: Sequence[dict[str, str]]):
            async def send(client) -> str:
                response = await client.chat.completions.create(model=self.model_id, messages=list(messages), **options)
                return response.choices[0].message.content or ""

            return send

        texts = self._run([request(m) for m in conversations], "generate_chat")
        return [truncate_at_stop(t, config.stop) for t in texts]

    # -- scoring ----------------------------------------------------------------------------
    def score(
        self, contexts: Sequence[str], continuations: Sequence[str], add_eos: bool = True
    ) -> list[ScoredContinuation]:
        from ..scoring import tokenize_pair

        if len(contexts) != len(continuations):
            raise ValueError("score() needs as many contexts as continuations")
        pairs = [tokenize_pair(self.tokenizer, c, r, add_eos) for c, r in zip(contexts, continuations)]
        for index, (ctx, _) in enumerate(pairs):
            if not ctx:
                raise ValueError(
                    f"pair {index}: the context tokenises to nothing, so its first token has no probability"
                )

        def request(ctx: list[int], cont: list[int]):
            async def send(client) -> ScoredContinuation:
                response = await client.completions.create(
                    model=self.model_id,
                    prompt=ctx + cont,
                    max_tokens=1,
                    temperature=0.0,
                    echo=True,
                    logprobs=0,
                    **({"extra_body": self.extra_body} if self.extra_body else {}),
                )
                return echoed_continuation_score(response, len(ctx), len(cont), self.base_url)

            return send

        return self._run([request(ctx, cont) for ctx, cont in pairs], "score")


def echoed_continuation_score(response: Any, n_context: int, n_continuation: int, base_url: str) -> ScoredContinuation:
    """Sum the echoed prompt log-probabilities over the continuation's positions."""
    choice = response.choices[0] if getattr(response, "choices", None) else None
    logprobs = getattr(choice, "logprobs", None)
    values = getattr(logprobs, "token_logprobs", None)
    end = n_context + n_continuation
    if not values or len(values) < end or any(v is None for v in values[n_context:end]):
        raise EndpointError(
            f"the endpoint at {base_url} returned no prompt log-probabilities (it must support completions "
            "with echo=True and logprobs, as vLLM's OpenAI server does): score with the hf or vllm backend instead"
        )
    token_logprobs = tuple(float(v) for v in values[n_context:end])
    return ScoredContinuation(sum(token_logprobs), n_continuation, token_logprobs)
