"""The rules for vLLM (v1 logits-processor API, checked against vLLM 0.32).

vLLM builds one instance per engine, `RulesLogitsProcessor(vllm_config, device, is_pin_memory)`,
and tells it which requests sit in which batch row (`update_state`). A request opts in through
`SamplingParams(extra_args={"implicit_if_rules": RuleConfig.to_dict()})`, which
`RuleSet.vllm_options()` provides; requests without it are left alone. Requests in one batch
may be at different response lengths, so each row carries its own length and used-token set.

This module imports vLLM and is only loaded inside a vLLM engine (by the name in
`ruleset.VLLM_PROCESSOR`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from vllm import SamplingParams
from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor
from vllm.v1.sample.logits_processor.builtin import process_dict_updates

from .config import RuleConfig
from .core import rule_offsets, uniform_shift_vector
from .ruleset import VLLM_EXTRA_ARGS_KEY
from .tokens import ResolvedTokens, resolve_tokens


def config_from_params(params: SamplingParams) -> RuleConfig | None:
    raw = (params.extra_args or {}).get(VLLM_EXTRA_ARGS_KEY)
    return None if raw is None else RuleConfig.from_dict(raw)


@dataclass
class RowState:
    """One request: its rules, prompt ids, and a live reference to its output ids."""

    config: RuleConfig
    prompt_ids: list[int]
    output_ids: list[int]  # vLLM appends to this very list as tokens are sampled
    used: torch.Tensor | None = field(default=None, repr=False)  # [V] bool, filled incrementally
    consumed: int = 0  # how many of output_ids are already in `used`

    def update_used(self, vocab_size: int, device: torch.device) -> torch.Tensor:
        if self.used is None:
            self.used = torch.zeros(vocab_size, dtype=torch.bool, device=device)
            if self.config.count_instruction_tokens and self.prompt_ids:
                self._mark(self.prompt_ids, vocab_size)
        fresh = self.output_ids[self.consumed :]
        if any(t < 0 for t in fresh):  # async placeholders (-1): wait until they are filled in
            fresh = fresh[: next(i for i, t in enumerate(fresh) if t < 0)]
        self._mark(fresh, vocab_size)
        self.consumed += len(fresh)
        return self.used

    def _mark(self, ids: list[int], vocab_size: int) -> None:
        ids = [t for t in ids if 0 <= t < vocab_size]
        if ids:
            self.used[torch.tensor(ids, device=self.used.device)] = True


class RulesLogitsProcessor(LogitsProcessor):
    """Applies the rules to every batch row whose request asked for them."""

    @classmethod
    def validate_params(cls, sampling_params: SamplingParams) -> None:
        config_from_params(sampling_params)  # raises ValueError naming a bad option

    def __init__(self, vllm_config: Any, device: torch.device, is_pin_memory: bool) -> None:
        self.device = device
        self.model_config = vllm_config.model_config
        self.rows: dict[int, RowState] = {}
        self._tokenizer: Any = None
        self._tokens: dict[tuple, ResolvedTokens] = {}  # by token_shifts
        self._uniform: dict[tuple, torch.Tensor] = {}

    def is_argmax_invariant(self) -> bool:
        return False  # the rules change greedy choices: vLLM must apply them before greedy sampling

    def tokens_for(self, config: RuleConfig) -> ResolvedTokens:
        """Named tokens resolved with the engine's tokenizer (loaded on first use, then cached)."""
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(
                self.model_config.tokenizer, revision=self.model_config.tokenizer_revision
            )
        if config.token_shifts not in self._tokens:
            self._tokens[config.token_shifts] = resolve_tokens(self._tokenizer, config.token_shifts)
        return self._tokens[config.token_shifts]

    def _new_row(self, params: SamplingParams, prompt_ids: list[int] | None, output_ids: list[int]) -> RowState | None:
        config = config_from_params(params)
        if config is None or not config.enabled:
            return None
        return RowState(config, list(prompt_ids or []), output_ids)

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        process_dict_updates(self.rows, batch_update, self._new_row)

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        if not self.rows:
            return logits
        vocab_size = logits.shape[-1]
        groups: dict[RuleConfig, list[int]] = {}
        for index, row in self.rows.items():
            groups.setdefault(row.config, []).append(index)
        for config, indices in groups.items():
            tokens = self.tokens_for(config)
            key = (config.token_shifts, vocab_size, logits.dtype)
            if config.uniform and key not in self._uniform:
                self._uniform[key] = uniform_shift_vector(vocab_size, tokens, logits.device, logits.dtype)
            lengths = torch.tensor([len(self.rows[i].output_ids) for i in indices], device=logits.device)
            # The diversity rule's mask is kept per row and grown incrementally, so pass it in directly.
            offsets = rule_offsets(
                (len(indices), vocab_size),
                lengths,
                torch.empty((len(indices), 0), dtype=torch.long, device=logits.device),
                config,
                tokens,
                uniform=self._uniform.get(key),
                device=logits.device,
                dtype=logits.dtype,
            )
            if config.diversity:
                used = torch.stack([self.rows[i].update_used(vocab_size, logits.device) for i in indices])
                offsets -= config.diversity_penalty * used.to(offsets.dtype)
            rows = torch.tensor(indices, device=logits.device)
            logits[rows] += offsets
        return logits
