"""Building the tokenizer and model of a recipe, and the packed-sequence loss.

Packed rows carry position ids that restart per example and no attention mask; transformers
(>= 4.54) turns those restarts into a block-diagonal causal mask for sdpa/eager/flex and into
`cu_seqlens` for flash attention. It only does so when no KV cache is in play, so every forward
here passes `use_cache=False` (with the default cache, attention silently crosses examples).
`check_packing_isolation` proves it on the actual model before training starts.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ..models import resolve_model
from .loss import fused_linear_cross_entropy, fused_loss_unsupported, output_layer_skipped
from .masking import IGNORE
from .recipes import ModelSpec


def load_tokenizer(spec: ModelSpec) -> Any:
    from transformers import AutoTokenizer

    source = resolve_model(spec.tokenizer or spec.name_or_path or "")
    tokenizer = AutoTokenizer.from_pretrained(source, use_fast=True, trust_remote_code=spec.trust_remote_code)
    if tokenizer.eos_token is None:
        raise ValueError(f"tokenizer {source} has no EOS token; the trainer ends every response with one")
    return tokenizer


def choose_attention(requested: str, device_type: str) -> str:
    """`auto`: flash attention 2 on GPU when the package is installed, else PyTorch sdpa."""
    if requested != "auto":
        return requested
    if device_type == "cuda" and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


def build_model(spec: ModelSpec, tokenizer: Any, attn_implementation: str, seed: int) -> Any:
    """A randomly initialised model from `spec.config`, or pretrained weights (fp32 master copy)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    if spec.init == "random":
        settings = {
            "vocab_size": len(tokenizer),
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
            **spec.config,
        }
        config = AutoConfig.for_model(settings.pop("model_type"), **settings)
        torch.manual_seed(seed)  # the initial weights are part of the recipe
        model = AutoModelForCausalLM.from_config(config, attn_implementation=attn_implementation, dtype=torch.float32)
    else:
        model = AutoModelForCausalLM.from_pretrained(
            resolve_model(spec.name_or_path or ""),
            attn_implementation=attn_implementation,
            dtype=torch.float32,
            trust_remote_code=spec.trust_remote_code,
            **spec.config,
        )
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tokenizer))
    model.config.use_cache = False
    if spec.gradient_checkpointing:
        enable = getattr(model, "activation_checkpointing_enable", None)
        if enable is not None:
            enable({"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model


@dataclass(frozen=True)
class FusedHead:
    """The fused output-layer loss of `loss.py`: the unwrapped model (whose output layer it skips) and its settings."""

    model: Any
    chunk_tokens: int
    softcap: float | None


def packed_loss_sum(
    model: Any, batch: dict[str, torch.Tensor], logits_to_keep: bool = True, fused: FusedHead | None = None
) -> torch.Tensor:
    """Summed next-token cross-entropy over the target positions of one packed row (not yet normalised).

    With `fused`, the model returns final hidden states and the loss never holds the full
    logits; otherwise the logits of the target positions are computed and kept.
    """
    targets = batch["targets"][0]
    keep = torch.nonzero(targets != IGNORE).squeeze(-1)
    extra = {"logits_to_keep": keep} if logits_to_keep else {}
    inputs = {"input_ids": batch["input_ids"], "position_ids": batch["position_ids"], "use_cache": False, **extra}
    if fused is not None:
        with output_layer_skipped(fused.model) as head:
            hidden = model(**inputs).logits
        hidden = hidden.reshape(-1, hidden.shape[-1])
        if not logits_to_keep:
            hidden = hidden[keep]
        return fused_linear_cross_entropy(
            hidden, head.weight, targets[keep], chunk_tokens=fused.chunk_tokens, softcap=fused.softcap
        )
    logits = model(**inputs).logits
    logits = logits.reshape(-1, logits.shape[-1])
    if not logits_to_keep:
        logits = logits[keep]
    return F.cross_entropy(logits.float(), targets[keep], reduction="sum")


@torch.no_grad()
def fused_loss_plan(
    model: Any, chunk_tokens: int, device: torch.device, logits_to_keep: bool
) -> tuple[FusedHead | None, str]:
    """The fused loss for this model when it is exact here, else None; and a note for the provenance.

    Exactness is checked on the model itself (a few random tokens, float32): a model whose
    logits are more than `hidden @ W.T` (a scale, a bias) keeps the full-logits loss.
    """
    if chunk_tokens == 0:
        return None, "full logits (training.loss_chunk_tokens is 0)"
    reason = fused_loss_unsupported(model)
    if reason is not None:
        return None, f"full logits ({reason})"
    fused = FusedHead(model, chunk_tokens, getattr(model.config, "final_logit_softcapping", None))
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(model.get_input_embeddings().num_embeddings, (1, 12), generator=generator).to(device)
    batch = {
        "input_ids": ids,
        "position_ids": torch.arange(12, device=device)[None],
        "targets": torch.cat(
            [torch.full((4,), IGNORE, device=device), ids[0, 5:], torch.full((1,), IGNORE, device=device)]
        )[None],
    }
    was_training = model.training
    model.eval()
    try:
        plain = packed_loss_sum(model, batch, logits_to_keep).item()
        ours = packed_loss_sum(model, batch, logits_to_keep, fused).item()
    finally:
        model.train(was_training)
    if abs(plain - ours) > 1e-4 * max(1.0, abs(plain)):
        return None, f"full logits (the fused loss gave {ours:.6g}, the model's logits {plain:.6g})"
    return fused, f"fused, {chunk_tokens} tokens a chunk"


@torch.no_grad()
def check_packing_isolation(model: Any, vocab_size: int, device: torch.device) -> float:
    """Raise unless changing one packed example leaves the next example's logits unchanged.

    Returns the largest change seen (0.0 when the mask isolates examples exactly).
    """
    generator = torch.Generator().manual_seed(0)
    first, other, second = (torch.randint(vocab_size, (n,), generator=generator) for n in (6, 6, 5))
    positions = torch.cat([torch.arange(6), torch.arange(5)])[None].to(device)
    was_training = model.training
    model.eval()
    try:
        outputs = [
            model(input_ids=torch.cat([head, second])[None].to(device), position_ids=positions, use_cache=False)
            .logits[0, 6:]
            .float()
            for head in (first, other)
        ]
    finally:
        model.train(was_training)
    change = (outputs[0] - outputs[1]).abs().max().item()
    if change > 1e-4 * max(1.0, outputs[0].abs().max().item()):
        import transformers

        raise RuntimeError(
            f"packed examples attend to each other with this model and transformers {transformers.__version__} "
            f"(logits moved by {change:.3g}): upgrade transformers to >= 4.54, whose attention masks honour "
            "position-id restarts, or use an attn_implementation that does (sdpa, eager, flash_attention_2)"
        )
    return change
