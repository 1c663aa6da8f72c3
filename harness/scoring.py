"""Log-probabilities of continuations under a transformers causal LM.

Two implementations of one contract (per-token natural-log probabilities of each continuation
given its context):

* `score_token_ids` - the plain reference: right-padded batches of whole sequences, logits over
  the full vocabulary at every position. Simple and obviously right; the hf backend's default.
* `score_token_ids_fast` - does only the work the answer needs: pairs that share a context
  (one instruction scored against several responses) run the context once and reuse its KV
  cache; continuations are length-bucketed; the output projection and log-softmax run only at
  the positions whose next token is scored. For Gemma 3 (vocabulary 262k) the output layer costs
  more than the rest of the model, so skipping it at prompt positions is most of the gain.
  Models whose structure it does not know fall back to the plain path with a warning.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence

import torch

# Rows of the output projection materialised at once (rows x vocab floats): bounds memory.
LOGIT_ROWS_PER_CHUNK = 256
# The fast path checks itself against the plain path on its first pair; beyond this it falls back.
SELF_CHECK_TOLERANCE = 1e-3

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

    The two parts are tokenised separately (no merge across the boundary). Pass
    `add_special_tokens=False` when the context text already carries them (chat templates).
    """
    return tokenize_context(tokenizer, context, add_special_tokens), tokenize_continuation(tokenizer, continuation, add_eos)


def _check_pairs(pairs: Sequence[TokenPair]) -> None:
    for index, (ctx, cont) in enumerate(pairs):
        if not ctx:
            raise ValueError(f"pair {index} has an empty context: a causal LM needs at least one token to condition on")
        if not cont:
            raise ValueError(f"pair {index} has an empty continuation: nothing to score")


@torch.no_grad()
def score_token_ids(model, pairs: Sequence[TokenPair], batch_size: int = 8) -> list[list[float]]:
    """Per-token log-probabilities of each continuation (natural log), one list per pair."""
    _check_pairs(pairs)
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


# -- the fast path ----------------------------------------------------------------------------


def fast_path_problem(model) -> str | None:
    """Why the fast path cannot split this model into body + output layer (None when it can).

    It needs `model.base_model` to return last hidden states and `lm_head` to map them to
    logits, with no post-processing other than Gemma's final logit soft-capping.
    """
    body = getattr(model, "base_model", None)
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if body is None or body is model or head is None:
        return f"{type(model).__name__} has no separate base model and output layer"
    config = model.config
    for name in ("logit_scale", "logits_scaling", "output_logits_scale"):
        value = getattr(config, name, None)
        if value not in (None, 1, 1.0):
            return f"{type(model).__name__} rescales its logits ({name}={value})"
    return None


class _OutputLayer:
    """lm_head (+ Gemma's soft-capping) and log-softmax, applied only to the rows asked for."""

    def __init__(self, model) -> None:
        self.head = model.get_output_embeddings()
        self.softcap = getattr(model.config, "final_logit_softcapping", None)

    def logprobs(self, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """log p(target) for each row of `hidden` [N, d], computed in float32 after the projection."""
        out = torch.empty(hidden.shape[0], dtype=torch.float32, device=hidden.device)
        for start in range(0, hidden.shape[0], LOGIT_ROWS_PER_CHUNK):
            rows = slice(start, start + LOGIT_ROWS_PER_CHUNK)
            logits = self.head(hidden[rows]).float()
            if self.softcap is not None:
                logits = torch.tanh(logits / self.softcap) * self.softcap
            picked = logits.gather(1, targets[rows, None]).squeeze(1)
            out[rows] = picked - torch.logsumexp(logits, dim=-1)
        return out


def _group_by_context(pairs: Sequence[TokenPair]) -> list[tuple[list[int], list[int]]]:
    """[(context ids, indices of the pairs with that context)], in first-seen order."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for index, (ctx, _) in enumerate(pairs):
        groups.setdefault(tuple(ctx), []).append(index)
    return [(list(ctx), members) for ctx, members in groups.items()]


@torch.no_grad()
def _score_group(model, head: _OutputLayer, ctx: list[int], conts: list[list[int]], batch_size: int) -> list[list[float]]:
    """Score continuations that share one context: the context runs once, its KV cache is reused."""
    device = next(model.parameters()).device
    body = model.base_model
    prefix = body(input_ids=torch.tensor([ctx], device=device), use_cache=True)
    last_hidden = prefix.last_hidden_state[0, -1]  # predicts every continuation's first token
    prefix_cache = prefix.past_key_values

    results: list[list[float]] = [[] for _ in conts]
    order = sorted(range(len(conts)), key=lambda i: -len(conts[i]))  # similar lengths share a batch
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        # The last token of each continuation is only a target, never an input.
        width = max(len(conts[i]) for i in chunk) - 1
        rows_hidden = [last_hidden.expand(len(chunk), -1)]
        first_targets = torch.tensor([conts[i][0] for i in chunk], device=device)
        hidden_rows: list[torch.Tensor] = []
        rest_targets: list[int] = []
        if width > 0:
            ids = torch.zeros((len(chunk), width), dtype=torch.long)
            mask = torch.zeros((len(chunk), len(ctx) + width), dtype=torch.long)
            mask[:, : len(ctx)] = 1
            for row, i in enumerate(chunk):
                inputs = conts[i][:-1]
                ids[row, : len(inputs)] = torch.tensor(inputs)
                mask[row, len(ctx) : len(ctx) + len(inputs)] = 1
            cache = copy.deepcopy(prefix_cache)
            cache.batch_repeat_interleave(len(chunk))
            hidden = body(
                input_ids=ids.to(device), attention_mask=mask.to(device), past_key_values=cache, use_cache=True
            ).last_hidden_state
            for row, i in enumerate(chunk):
                n = len(conts[i]) - 1
                hidden_rows.append(hidden[row, :n])
                rest_targets.extend(conts[i][1:])
        rows_hidden.extend(hidden_rows)
        targets = torch.cat([first_targets, torch.tensor(rest_targets, dtype=torch.long, device=device)])
        logprobs = head.logprobs(torch.cat(rows_hidden), targets).tolist()
        # Unpack: the first len(chunk) values are the first tokens, then each row's remaining tokens.
        offset = len(chunk)
        for row, i in enumerate(chunk):
            n = len(conts[i]) - 1
            results[i] = [logprobs[row], *logprobs[offset : offset + n]]
            offset += n
    return results


def _self_check(model, head: _OutputLayer, pair: TokenPair) -> float:
    """Largest per-token difference between the fast and the plain path on one pair."""
    fast = _score_group(model, head, pair[0], [pair[1]], batch_size=1)[0]
    plain = score_token_ids(model, [pair], batch_size=1)[0]
    return max(abs(a - b) for a, b in zip(fast, plain))


@torch.no_grad()
def score_token_ids_fast(
    model, pairs: Sequence[TokenPair], batch_size: int = 8, *, self_check: bool = True, progress: bool = False
) -> list[list[float]]:
    """Same answer as `score_token_ids` (within float rounding), doing only the needed work.

    With `self_check`, the first pair is also scored by the plain path; if the two disagree by
    more than SELF_CHECK_TOLERANCE (an architecture that post-processes its logits in a way we
    do not know), everything is scored by the plain path instead, with a warning.
    """
    _check_pairs(pairs)
    if not pairs:
        return []
    problem = fast_path_problem(model)
    head = None if problem else _OutputLayer(model)
    if head is not None and self_check:
        try:
            gap = _self_check(model, head, pairs[0])
        except Exception as exc:  # an unusual cache or forward signature
            problem = f"its forward pass does not accept a reused KV cache ({type(exc).__name__}: {exc})"
        else:
            if gap > SELF_CHECK_TOLERANCE:
                problem = f"the fast path differs from the plain one by {gap:.2e} per token"
    if problem is not None:
        warnings.warn(f"fast scoring unavailable, using the plain path: {problem}", RuntimeWarning, stacklevel=2)
        return score_token_ids(model, pairs, batch_size=batch_size)

    from tqdm.auto import tqdm

    results: list[list[float]] = [[] for _ in pairs]
    with tqdm(total=len(pairs), desc="scoring", unit="seq", disable=not progress) as bar:
        for ctx, members in _group_by_context(pairs):
            scored = _score_group(model, head, ctx, [pairs[i][1] for i in members], batch_size)
            for i, values in zip(members, scored):
                results[i] = values
            bar.update(len(members))
    return results
