"""Building the tokenizer and model of a recipe, and the packed-sequence loss.

Packed rows carry position ids that restart per example and no attention mask; transformers
(>= 4.54) turns those restarts into a block-diagonal causal mask for sdpa/eager/flex and into
`cu_seqlens` for flash attention. It only does so when no KV cache is in play, so every forward
here passes `use_cache=False` (with the default cache, attention silently crosses examples).
`check_packing_isolation` proves it on the actual model before training starts.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import torch
import torch.nn.functional as F

from ..models import resolve_model
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


def packed_loss_sum(model: Any, batch: dict[str, torch.Tensor], logits_to_keep: bool = True) -> torch.Tensor:
    """Summed next-token cross-entropy over the target positions of one packed row (not yet normalised)."""
    targets = batch["targets"][0]
    keep = torch.nonzero(targets != IGNORE).squeeze(-1)
    extra = {"logits_to_keep": keep} if logits_to_keep else {}
    logits = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False, **extra).logits
    logits = logits.reshape(-1, logits.shape[-1])
    if not logits_to_keep:
        logits = logits[keep]
    return F.cross_entropy(logits.float(), targets[keep], reduction="sum")


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
            model(input_ids=torch.cat([head, second])[None].to(device), position_ids=positions, use_cache=False).logits[0, 6:].float()
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
