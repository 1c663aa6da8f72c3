"""Backends behind one interface: generate(prompts) and score(context, continuation).

`hf` (transformers, CPU/GPU), `vllm` (the fast path), `openai` (any OpenAI-compatible endpoint).
Heavy libraries are imported only when a backend is built.
"""

from __future__ import annotations

from typing import Any

from .base import BACKEND_NAMES, Backend, GenerationConfig, ScoredContinuation

__all__ = ["BACKEND_NAMES", "Backend", "GenerationConfig", "ScoredContinuation", "get_backend"]


def get_backend(kind: str, model: str, **options: Any) -> Backend:
    """Build a backend by name. `model` may be an embedded model name, a hub id or a local path."""
    if kind == "hf":
        from .hf import HFBackend

        return HFBackend(model, **options)
    if kind == "vllm":
        if options.get("data_parallel_size", 1) > 1:  # one engine per device slice, each in its own process
            from .vllm_data_parallel import DataParallelVLLM

            return DataParallelVLLM(model, **options)
        from .vllm import VLLMBackend

        options.pop("data_parallel_size", None)
        return VLLMBackend(model, **options)
    if kind == "openai":
        from .openai_compat import OpenAIBackend

        return OpenAIBackend(model, **options)
    raise ValueError(f"unknown backend {kind!r}: choose one of {', '.join(BACKEND_NAMES)}")
