"""The rules for transformers: a LogitsProcessor for batched, KV-cached `generate`, and scoring.

The study decoded one sequence at a time without a cache and found the response start by
searching for the assistant tag. Here the caller says where the (left-padded) prompt ends:
every row of a batch has generated the same number of tokens, `input_ids[:, prompt_width:]`,
so the response length is one number per step and the padding never counts.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import LogitsProcessor

from .config import RuleConfig
from .core import NO_TOKEN, apply_rules, pad_rows, uniform_shift_vector
from .tokens import ResolvedTokens


def mask_left_padding(prompt_ids: torch.Tensor, pad_id: int | None) -> torch.Tensor:
    """Replace each row's leading run of padding with NO_TOKEN (left padding never counts as used)."""
    if pad_id is None or prompt_ids.shape[1] == 0:
        return prompt_ids
    leading = (prompt_ids == pad_id).to(torch.int64).cumprod(dim=1).bool()
    return prompt_ids.masked_fill(leading, NO_TOKEN)


class RulesLogitsProcessor(LogitsProcessor):
    """Adds the enabled rules' offsets to the next-token scores of a left-padded batch."""

    def __init__(self, config: RuleConfig, tokens: ResolvedTokens, prompt_width: int) -> None:
        self.config = config
        self.tokens = tokens
        self.prompt_width = prompt_width
        self._uniform: torch.Tensor | None = None

    def _uniform_vector(self, scores: torch.Tensor) -> torch.Tensor:
        cached = self._uniform
        if (
            cached is None
            or cached.shape[0] != scores.shape[-1]
            or cached.device != scores.device
            or cached.dtype != scores.dtype
        ):
            cached = self._uniform = uniform_shift_vector(scores.shape[-1], self.tokens, scores.device, scores.dtype)
        return cached

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if input_ids.shape[1] < self.prompt_width:
            raise ValueError(
                f"rules adapter: input has {input_ids.shape[1]} tokens but the prompt width is {self.prompt_width}; "
                "build the processor with the width of the padded prompt batch"
            )
        generated = input_ids[:, self.prompt_width :]
        lengths = torch.full((input_ids.shape[0],), generated.shape[1], device=input_ids.device)
        used = generated
        if self.config.count_instruction_tokens:
            prompt = mask_left_padding(input_ids[:, : self.prompt_width], self.tokens.pad_id)
            used = torch.cat([prompt, generated], dim=1)
        uniform = self._uniform_vector(scores) if self.config.uniform else None
        return apply_rules(scores, lengths, used, self.config, self.tokens, uniform=uniform)


def rule_continuation_logprobs(
    logits: torch.Tensor,
    context_ids: Sequence[int],
    continuation_ids: Sequence[int],
    config: RuleConfig,
    tokens: ResolvedTokens,
    chunk: int = 64,
) -> tuple[list[float], bool]:
    """Per-token log-probabilities of a continuation under base model x rules, and whether greedy.

    `logits` [len(continuation), V] are the base model's logits at the positions that predict
    each continuation token. Position j has a response of j tokens so far, and has used
    continuation[:j] (plus the context when the instruction's tokens count).
    """
    n, vocab_size = logits.shape
    if n != len(continuation_ids):
        raise ValueError(f"{n} logit rows for {len(continuation_ids)} continuation tokens")
    cont = list(continuation_ids)
    prefix = list(context_ids) if config.count_instruction_tokens else []
    uniform = uniform_shift_vector(vocab_size, tokens, logits.device, logits.dtype) if config.uniform else None
    target = torch.tensor(cont, device=logits.device)
    logprobs: list[float] = []
    greedy = True
    for start in range(0, n, chunk):
        rows = range(start, min(n, start + chunk))
        lengths = torch.tensor(list(rows), device=logits.device)
        used = pad_rows([prefix + cont[:j] for j in rows], device=logits.device)
        adjusted = apply_rules(logits[start : start + len(rows)], lengths, used, config, tokens, uniform=uniform)
        logp = torch.log_softmax(adjusted.float(), dim=-1)
        picked = logp.gather(1, target[start : start + len(rows)].unsqueeze(1)).squeeze(1)
        logprobs.extend(picked.tolist())
        greedy = greedy and bool((logp.argmax(dim=-1) == target[start : start + len(rows)]).all())
    return logprobs, greedy
