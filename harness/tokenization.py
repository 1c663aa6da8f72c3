"""The study's tokenisation of (context, continuation) pairs, for every backend and the lm-eval task.

Torch-free: any tokenizer with the transformers call signature will do, and importing this costs
nothing (the scorers that need torch live in `scoring.py`).

The context is tokenised with the tokenizer's special tokens (e.g. BOS) unless its text already
carries them (chat templates); the continuation without special tokens, then EOS. The two parts
are tokenised separately: no token merges across the boundary.
"""

from __future__ import annotations

TokenPair = tuple[list[int], list[int]]


def tokenize_context(tokenizer, context: str, add_special_tokens: bool = True) -> list[int]:
    """Context tokens, with the tokenizer's special tokens (e.g. BOS) unless the text carries them."""
    return list(tokenizer(context, add_special_tokens=add_special_tokens)["input_ids"])


def tokenize_continuation(tokenizer, continuation: str, add_eos: bool = True) -> list[int]:
    """Continuation tokens, without special tokens, then EOS."""
    cont = list(tokenizer(continuation, add_special_tokens=False)["input_ids"])
    if add_eos:
        if tokenizer.eos_token_id is None:
            raise ValueError("this tokenizer has no EOS token; score with add_eos=False")
        cont.append(tokenizer.eos_token_id)
    return cont


def tokenize_pair(
    tokenizer, context: str, continuation: str, add_eos: bool = True, *, add_special_tokens: bool = True
) -> TokenPair:
    """The study's tokenisation: context with special tokens, continuation without, then EOS.

    Pass `add_special_tokens=False` when the context text already carries them (chat templates).
    """
    return tokenize_context(tokenizer, context, add_special_tokens), tokenize_continuation(
        tokenizer, continuation, add_eos
    )


def check_contexts(pairs: list[TokenPair]) -> None:
    """A causal LM gives the first token no probability: every context needs at least one token."""
    for index, (ctx, _) in enumerate(pairs):
        if not ctx:
            raise ValueError(f"pair {index}: the context tokenises to nothing, so its first token has no probability")
