"""The three rules as pure tensor functions, shared by the transformers, vLLM and scoring paths.

The study combined the base model and the rules as a product of experts: it added the rules'
scores to the base model's log-probabilities. Adding them to the raw logits instead changes
each row by a constant only, so greedy choices, sampling distributions and renormalised
log-probabilities are the same.

Every function takes a batch of N rows (sequences being decoded, or positions being scored),
each with its own response length and its own set of already-used token ids.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .config import RuleConfig
from .tokens import ResolvedTokens

if TYPE_CHECKING:
    import torch

NO_TOKEN = -1  # fills rows of `used_ids` that have fewer used tokens than others


def eos_bonus(lengths: torch.Tensor, config: RuleConfig) -> torch.Tensor:
    """EOS logit bonus for responses of `lengths` tokens: scale * L / horizon while L < horizon."""
    import torch

    lengths = lengths.to(torch.float32)
    ramp = config.eos_scale * lengths / config.eos_horizon
    after = config.eos_scale if config.eos_hold_after_horizon else 0.0
    return torch.where(lengths < config.eos_horizon, ramp, torch.full_like(ramp, after))


def uniform_shift_vector(vocab_size: int, tokens: ResolvedTokens, device=None, dtype=None) -> torch.Tensor:
    """A [vocab_size] vector holding each named token's shift (ids beyond the model's logits are dropped)."""
    import torch

    vector = torch.zeros(vocab_size, device=device, dtype=dtype or torch.float32)
    pairs = [(i, s) for i, s in zip(tokens.shift_ids, tokens.shift_values) if 0 <= i < vocab_size]
    if pairs:
        ids, values = zip(*pairs)
        vector[torch.tensor(ids, device=device)] = torch.tensor(values, device=device, dtype=vector.dtype)
    return vector


def used_token_mask(used_ids: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """[N, K] token ids (NO_TOKEN where absent) -> [N, vocab_size] mask of the ids each row has used."""
    import torch

    n_rows = used_ids.shape[0]
    ids = used_ids.clone()
    ids[(ids < 0) | (ids >= vocab_size)] = vocab_size  # an extra column that is dropped below
    mask = torch.zeros((n_rows, vocab_size + 1), dtype=torch.bool, device=used_ids.device)
    if ids.numel():
        mask.scatter_(1, ids, True)
    return mask[:, :vocab_size]


def rule_offsets(
    shape: tuple[int, int],
    lengths: torch.Tensor,
    used_ids: torch.Tensor,
    config: RuleConfig,
    tokens: ResolvedTokens,
    uniform: torch.Tensor | None = None,
    device=None,
    dtype=None,
) -> torch.Tensor:
    """The [N, V] additive offsets of the enabled rules.

    `lengths[n]` is row n's response length so far (EOS rule); `used_ids[n]` the token ids whose
    reuse is penalised (diversity rule); `uniform` may pass a cached uniform_shift_vector.
    """
    import torch

    n_rows, vocab_size = shape
    offsets = torch.zeros(shape, device=device, dtype=dtype or torch.float32)
    if config.uniform:
        if uniform is None:
            uniform = uniform_shift_vector(vocab_size, tokens, device=device, dtype=offsets.dtype)
        offsets += uniform
    if config.eos:
        if tokens.eos_id is None:
            raise ValueError(
                "the eos rule needs a tokenizer with an EOS token: turn it off (--rules uniform,diversity)"
            )
        if tokens.eos_id < vocab_size:
            offsets[:, tokens.eos_id] += eos_bonus(lengths, config).to(device=offsets.device, dtype=offsets.dtype)
    if config.diversity and used_ids.numel():
        mask = used_token_mask(used_ids.to(offsets.device), vocab_size)
        offsets -= config.diversity_penalty * mask.to(offsets.dtype)
    return offsets


def apply_rules(
    scores: torch.Tensor,
    lengths: torch.Tensor,
    used_ids: torch.Tensor,
    config: RuleConfig,
    tokens: ResolvedTokens,
    uniform: torch.Tensor | None = None,
) -> torch.Tensor:
    """scores [N, V] plus the rules' offsets (a new tensor; `scores` is left untouched)."""
    offsets = rule_offsets(
        tuple(scores.shape),
        lengths,
        used_ids,
        config,
        tokens,
        uniform=uniform,
        device=scores.device,
        dtype=scores.dtype,
    )
    return scores + offsets


def pad_rows(rows: list[list[int]], device=None) -> torch.Tensor:
    """Ragged lists of token ids -> [N, max_len] tensor padded with NO_TOKEN."""
    import torch

    width = max((len(r) for r in rows), default=0)
    out = torch.full((len(rows), width), NO_TOKEN, dtype=torch.long)
    for n, row in enumerate(rows):
        if row:
            out[n, : len(row)] = torch.tensor(row, dtype=torch.long)
    return out.to(device) if device is not None else out
