"""The judge's client: the shared OpenAI-compatible client (`implicit_if.openai_endpoint`) posting chat
completions, its errors worded for a judge (the key comes from the spec's `api_key_env`, the address
from `--base-url` or the spec's `base_url`).

Retries, errors, usage and secrecy are the shared client's: the openai SDK retries 408/409/429/5xx,
timeouts and connection errors (honouring Retry-After), unusable bodies (not JSON, no choices, no
log-probabilities: `BadResponse` from the judge's reader) are asked again within the same budget;
a rejected key, an unknown model or address, an unreachable or still rate-limiting endpoint stop the
run (`EndpointError`); anything else fails only that comparison (`RequestFailed`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

# The shared types, importable from here too (the judging modules and their tests use them by this path).
from ..openai_endpoint import (
    BadResponse,
    EndpointError,
    OpenAIEndpoint,
    RequestFailed,
    Usage,
    redact,
    scrub,
    usage_counts,
)

__all__ = ["BadResponse", "ChatClient", "EndpointError", "RequestFailed", "Usage", "redact", "scrub", "usage_counts"]

T = TypeVar("T")


class ChatClient(OpenAIEndpoint):
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
    ) -> None:
        super().__init__(
            base_url,
            api_key,
            concurrency=concurrency,
            timeout_s=timeout_s,
            max_retries=max_retries,
            backoff_base_s=backoff_base_s,
            backoff_max_s=backoff_max_s,
            seed=seed,
            label="the judge endpoint",
            key_hint="check the API key in the environment variable named by the spec's api_key_env",
            url_hint="set it with --base-url or the spec's base_url",
        )

    async def complete(self, payload: dict[str, Any], validate: Callable[[dict[str, Any]], T]) -> T:
        """Send one chat request until `validate` accepts a response, or fail (see module docstring)."""
        return await self.request("chat/completions", payload, validate)
