"""Helpers for the trainer tests: tiny randomly initialised models and a tiny recipe."""

from __future__ import annotations

import torch

# Overrides that shrink tiny-cpu further so a run costs a few seconds (the test of tiny-cpu
# itself runs the recipe as shipped).
SMALL = [
    "model.config.num_hidden_layers=1",
    "data.max_length=96",
    "data.limit=12",
    "training.micro_batch_tokens=256",
    "training.batch_size=4",
]


def tiny_llama(vocab_size: int = 97, attn: str = "sdpa", seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
    )
    config._attn_implementation = attn
    return LlamaForCausalLM(config).eval()


def tiny_gemma3(vocab_size: int = 97, attn: str = "sdpa", seed: int = 0):
    """Alternating sliding-window (window 4) and full attention layers, like Gemma 3."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(seed)
    config = Gemma3TextConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        max_position_embeddings=256,
        sliding_window=4,
        layer_types=["sliding_attention", "full_attention"],
    )
    config._attn_implementation = attn
    return Gemma3ForCausalLM(config).eval()


def safetensors_weights(directory) -> dict[str, torch.Tensor]:
    from pathlib import Path

    from safetensors.torch import load_file

    weights: dict[str, torch.Tensor] = {}
    for path in sorted(Path(directory).glob("*.safetensors")):
        weights.update(load_file(str(path)))
    return weights
