"""Log-probabilities of continuations under a transformers causal LM.

Pure tensor code shared by the hf backend, response ranking and lm-eval tasks. This is the
plain reference implementation: right-padded batches, full forward pass.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def tokenize_pair(tokenizer, context: str, continuation: str, add_eos: bool = True) -> tuple[list[int], list[int]]:
    """The study's tokenisation: context with special tokens, continuation without, then EOS."""
    ctx = tokenizer(context, add_special_tokens=True)["input_ids"]
    cont = tokenizer(continuation, add_special_tokens=False)["input_ids"]
    if add_eos:
        if tokenizer.eos_token_id is None:
            raise ValueError("this tokenizer has no EOS token; score with add_eos=False")
        cont = [*cont, tokenizer.eos_token_id]
    return list(ctx), list(cont)


@torch.no_grad()
def score_token_ids(model, pairs: Sequence[tuple[list[int], list[int]]], batch_size: int = 8) -> list[list[float]]:
    """Per-token log-probabilities of each continuation (natural log), one list per pair."""
    device = next(model.parameters()).device
    order = sorted(range(len(pairs)), key=lambda i: -(len(pairs[i][0]) + len(pairs[i][1])))
    results: list[list[float]] = [[] for _ in pairs]
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        seqs = [pairs[i][0] + pairs[i][1] for i in chunk]
        width = max(len(s) for s in seqs)
        ids = torch.zeros((len(seqs), width), dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for row, seq in enumerate(seqs):
            ids[row, : len(seq)] = torch.tensor(seq)
            mask[row, : len(seq)] = 1
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
        logprobs = torch.log_softmax(logits, dim=-1)
        for row, i in enumerate(chunk):
            ctx, cont = pairs[i]
            positions = torch.arange(len(ctx) - 1, len(ctx) + len(cont) - 1, device=device)
            targets = torch.tensor(cont, device=device)
            results[i] = logprobs[row, positions, targets].tolist()
    return results
