"""The backend contract every stage relies on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

BACKEND_NAMES = ("hf", "vllm", "openai")


@dataclass(frozen=True)
class GenerationConfig:
    """Decoding parameters; greedy unless temperature > 0."""

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int = 0

    def as_record(self) -> dict[str, Any]:
        return {
            "max_new_tokens": self.max_new_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "stop": list(self.stop),
            "seed": self.seed,
        }


@dataclass(frozen=True)
class ScoredContinuation:
    """Log-probability of a continuation given its context.

    `logprob` is the natural-log sum over the continuation's tokens (EOS included when asked);
    `n_tokens` counts them, so `logprob / n_tokens` is the study's length-normalised score.
    """

    logprob: float
    n_tokens: int
    token_logprobs: tuple[float, ...] = field(default=(), compare=False)

    @property
    def mean_logprob(self) -> float:
        return self.logprob / max(self.n_tokens, 1)


@runtime_checkable
class Backend(Protocol):
    name: str
    model_id: str

    def generate(self, prompts: Sequence[str], config: GenerationConfig) -> list[str]:
        """One completion per prompt (prompts are already formatted)."""
        ...

    def score(
        self, contexts: Sequence[str], continuations: Sequence[str], add_eos: bool = True
    ) -> list[ScoredContinuation]:
        """Score each continuation given its context.

        Tokenisation contract (the study's, `implicit_if.tokenization.tokenize_pair`): the context
        is tokenised with the tokenizer's special tokens, the continuation without, tokenised
        separately, and EOS appended when `add_eos`.
        """
        ...

    def score_tokens(
        self, pairs: Sequence[tuple[list[int], list[int]]], *, batch_size: int | None = None, progress: bool = False
    ) -> list[list[float]]:
        """Per-token natural-log probabilities of each continuation's ids given its context's ids
        (already tokenised with `self.tokenizer`); what response ranking asks of every engine."""
        ...


def truncate_at_stop(text: str, stop: Sequence[str]) -> str:
    """Cut the text at the first stop string, if any."""
    cut = len(text)
    for s in stop:
        if s and (pos := text.find(s)) != -1:
            cut = min(cut, pos)
    return text[:cut]
