"""Backends behind one interface: generate(prompts) and score(context, continuation).

`hf` (transformers, CPU/GPU), `vllm` (the fast path), `openai` (any OpenAI-compatible endpoint).
Heavy libraries are imported only when a backend is built.
"""

from .base import Backend, GenerationConfig, ScoredContinuation, get_backend, BACKEND_NAMES

__all__ = ["BACKEND_NAMES", "Backend", "GenerationConfig", "ScoredContinuation", "get_backend"]
