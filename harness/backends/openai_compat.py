"""Backend for any OpenAI-compatible endpoint (OpenAI, vLLM's server, and the like).

- `generate` sends our formatted prompts to the completions endpoint; `generate_chat` sends
  message lists to chat completions (the server applies its chat template).
- `score` tokenises locally with the served model's tokenizer (the study's contract, see
  `implicit_if.scoring.tokenize_pair`), sends the token ids as the prompt with `echo=True`,
  `logprobs=0` and one generated token, and sums the echoed log-probabilities of the
  continuation. vLLM's server supports this; most hosted chat APIs do not, and say so clearly.
- Requests run concurrently (asyncio, at most `max_concurrency` in flight) through the shared
  client `implicit_if.openai_endpoint.OpenAIEndpoint`: the openai SDK retries 408/409/429/5xx,
  timeouts and connection errors (honouring Retry-After), and unusable 200 bodies are asked
  again; a request that fails for good stops the run with an `EndpointError` naming the fix.
- The API key is held in a `Secret`, never printed, logged or put into an error message.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from ..openai_endpoint import (
    BadResponse,
    EndpointError,
    Kind,
    OpenAIEndpoint,
    RequestFailed,
    Secret,
    Usage,
    run_coroutine,
)
from .base import GenerationConfig, ScoredContinuation, truncate_at_stop

__all__ = ["EndpointError", "OpenAIBackend", "Secret", "echoed_continuation_score"]

T = TypeVar("T")
Read = Callable[[dict[str, Any]], T]  # a response body -> the result (BadResponse: ask again)


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
        max_retries: int = 5,
        extra_body: dict[str, Any] | None = None,
        progress: bool = True,
    ) -> None:
        """`model` is the served model name. `tokenizer` (a HF name/path, an embedded model name,
        or a tokenizer object) must match the served model; `score` needs it and defaults to
        loading one named like `model`. `max_retries` bounds the retries of each request (the
        openai SDK's and ours together). `extra_body` is sent with every request (server extras)."""
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        if not key:
            raise ValueError(
                "no API key: pass api_key= or set OPENAI_API_KEY (for a local server started without "
                "--api-key any placeholder such as EMPTY works)"
            )
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be at least 0, got {max_retries}")
        self.model_id = model
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1").rstrip("/")
        self._api_key = Secret(key)
        self._tokenizer_spec = tokenizer
        self._tokenizer: Any = None if isinstance(tokenizer, str) or tokenizer is None else tokenizer
        self.max_concurrency = max_concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.extra_body = dict(extra_body) if extra_body else None
        self.progress = progress
        self.usage = Usage()  # requests, retries and tokens of every run so far

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
    def _run(self, kind: Kind, requests: Sequence[tuple[dict[str, Any], Read[T]]], desc: str) -> list[T]:
        """Send each (payload, read) to `kind` (completions or chat/completions), at most max_concurrency
        at a time; `read` turns a body into the result (BadResponse: ask again). Results in order."""
        return run_coroutine(self._run_async(kind, requests, desc))

    async def _run_async(self, kind: Kind, requests: Sequence[tuple[dict[str, Any], Read[T]]], desc: str) -> list[T]:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(requests), desc=f"{desc} ({self.model_id})", disable=not self.progress)
        endpoint = OpenAIEndpoint(
            self.base_url,
            self._api_key,
            concurrency=self.max_concurrency,
            timeout_s=self.timeout,
            max_retries=self.max_retries,
        )
        extra = {"extra_body": self.extra_body} if self.extra_body else {}

        async def one(payload: dict[str, Any], read: Read[T]) -> T:
            try:
                result = await endpoint.request(kind, {"model": self.model_id, **payload, **extra}, read)
            except RequestFailed as error:  # a generation run cannot have holes: one failure stops it
                raise EndpointError(str(error)) from None
            bar.update(1)
            return result

        tasks = [asyncio.ensure_future(one(payload, read)) for payload, read in requests]
        try:
            return list(await asyncio.gather(*tasks))
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            bar.close()
            await endpoint.aclose()
            self.usage.add(endpoint.usage)

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
        return options

    # -- generation -------------------------------------------------------------------------
    def generate(self, prompts: Sequence[str], config: GenerationConfig = GenerationConfig()) -> list[str]:
        """Complete already formatted prompts (tag formats) through the completions endpoint."""
        options = self._sampling(config)
        requests = [({"prompt": prompt, **options}, completion_text) for prompt in prompts]
        texts = self._run("completions", requests, "generate")
        return [truncate_at_stop(t, config.stop) for t in texts]  # servers may ignore stop

    def generate_chat(
        self, conversations: Sequence[Sequence[dict[str, str]]], config: GenerationConfig = GenerationConfig()
    ) -> list[str]:
        """Answer message lists through chat completions; the server applies its chat template."""
        options = self._sampling(config)
        requests = [({"messages": list(messages), **options}, chat_text) for messages in conversations]
        texts = self._run("chat/completions", requests, "generate_chat")
        return [truncate_at_stop(t, config.stop) for t in texts]

    # -- scoring ----------------------------------------------------------------------------
    def score(
        self, contexts: Sequence[str], continuations: Sequence[str], add_eos: bool = True
    ) -> list[ScoredContinuation]:
        from ..tokenization import tokenize_pair

        if len(contexts) != len(continuations):
            raise ValueError("score() needs as many contexts as continuations")
        pairs = [tokenize_pair(self.tokenizer, c, r, add_eos) for c, r in zip(contexts, continuations)]
        return [ScoredContinuation(sum(lp), len(lp), tuple(lp)) for lp in self.score_tokens(pairs)]

    def score_tokens(
        self, pairs: Sequence[tuple[list[int], list[int]]], *, batch_size: int | None = None, progress: bool = False
    ) -> list[list[float]]:
        """Token ids as the prompt, echoed with their log-probabilities (`batch_size`: the server's business)."""
        from ..tokenization import check_contexts

        check_contexts(list(pairs))
        requests = [
            (
                {"prompt": ctx + cont, "max_tokens": 1, "temperature": 0.0, "echo": True, "logprobs": 0},
                functools.partial(
                    echoed_continuation_score, n_context=len(ctx), n_continuation=len(cont), base_url=self.base_url
                ),
            )
            for ctx, cont in pairs
        ]
        return [list(scored.token_logprobs) for scored in self._run("completions", requests, "score")]


def first_choice(body: dict[str, Any]) -> dict[str, Any]:
    choice = body["choices"][0]
    if not isinstance(choice, dict):
        raise BadResponse("response choice is not an object")
    return choice


def completion_text(body: dict[str, Any]) -> str:
    """The generated text of a completions body."""
    text = first_choice(body).get("text")
    if text is not None and not isinstance(text, str):
        raise BadResponse("response text is not a string")
    return text or ""


def chat_text(body: dict[str, Any]) -> str:
    """The reply text of a chat completions body."""
    message = first_choice(body).get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if content is not None and not isinstance(content, str):
        raise BadResponse("response message content is not text")
    return content or ""


def echoed_continuation_score(
    body: dict[str, Any], n_context: int, n_continuation: int, base_url: str
) -> ScoredContinuation:
    """Sum the echoed prompt log-probabilities over the continuation's positions."""
    logprobs = first_choice(body).get("logprobs")
    values = logprobs.get("token_logprobs") if isinstance(logprobs, dict) else None
    end = n_context + n_continuation
    if not isinstance(values, list) or len(values) < end or any(v is None for v in values[n_context:end]):
        raise EndpointError(
            f"the endpoint at {base_url} returned no prompt log-probabilities (it must support completions "
            "with echo=True and logprobs, as vLLM's OpenAI server does): score with the hf or vllm backend instead"
        )
    try:
        token_logprobs = tuple(float(v) for v in values[n_context:end])
    except (TypeError, ValueError):
        raise BadResponse("response prompt log-probabilities are not numbers") from None
    return ScoredContinuation(sum(token_logprobs), n_continuation, token_logprobs)
