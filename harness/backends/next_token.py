"""What a judge asks of a transformers model right after a prompt: the next token's log-probabilities,
or the float32 logit margin between two label tokens. The hf backend's `next_token_logprobs` and
`label_margins` call these; rows are tokenised as `tokenization.tokenize_pair` tokenises a context.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..transformers_compat import accepts_logits_to_keep, cache_keyword, output_cache

# Below this many shared tokens a batch runs as one left-padded pass: the prefix pass costs more than it saves.
MIN_SHARED_PREFIX = 16


def label_margins(model: Any, tokenizer: Any, contexts: Sequence[str], label_ids: Sequence[int]) -> list[float]:
    """logit(label 0) - logit(label 1) at the next position after each context, the two output rows
    in float32 (the body in the model's own precision).

    Every grading prompt starts with the same system message and header: that shared token prefix
    runs once per batch and its KV cache serves every row, whose own tokens follow right-padded
    (a causal model never attends to the padding after a row's last token).
    """
    import torch

    from ..scoring import sliding_window

    rows = [tokenizer(context, add_special_tokens=True)["input_ids"] for context in contexts]
    if not rows:
        return []
    shared = min(_common_prefix_length(rows), min(len(row) for row in rows) - 1)
    body = model.base_model
    device = model.device
    with torch.no_grad():
        if shared >= MIN_SHARED_PREFIX and sliding_window(model) is None:
            prefix = body(input_ids=torch.tensor([rows[0][:shared]], device=device), use_cache=True)
            cache = output_cache(prefix)
            cache.batch_repeat_interleave(len(rows))
            tails = [row[shared:] for row in rows]
            width = max(len(tail) for tail in tails)
            pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
            input_ids = torch.tensor([tail + [pad] * (width - len(tail)) for tail in tails], device=device)
            attention_mask = torch.tensor(
                [[1] * (shared + len(tail)) + [0] * (width - len(tail)) for tail in tails], device=device
            )
            position_ids = torch.arange(shared, shared + width, device=device).expand(len(rows), width)
            hidden = body(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids,
                use_cache=True,
                **{cache_keyword(body): cache},
            ).last_hidden_state
            last = torch.tensor([len(tail) - 1 for tail in tails], device=device)
            hidden = hidden[torch.arange(len(rows), device=device), last].float()
        else:
            hidden = _left_padded_last_hidden(body, tokenizer, rows, device).float()
        head = model.get_output_embeddings()
        logits = hidden @ head.weight[list(label_ids)].float().T
        if getattr(head, "bias", None) is not None:
            logits = logits + head.bias[list(label_ids)].float()
        cap = getattr(model.config, "final_logit_softcapping", None)
        if cap:
            logits = cap * torch.tanh(logits / cap)
    return [float(v) for v in (logits[:, 0] - logits[:, 1]).cpu()]


def _common_prefix_length(rows: Sequence[Sequence[int]]) -> int:
    first = rows[0]
    length = min(len(row) for row in rows)
    for i in range(length):
        token = first[i]
        if any(row[i] != token for row in rows):
            return i
    return length


def left_padded_batch(tokenizer: Any, rows: list[list[int]], device: Any) -> dict[str, Any]:
    """Rows as one left-padded batch with explicit positions: every row's last token in the last column."""
    import torch

    width = max(len(row) for row in rows)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    input_ids = torch.tensor([[pad] * (width - len(row)) + row for row in rows], device=device)
    attention_mask = torch.tensor([[0] * (width - len(row)) + [1] * len(row) for row in rows], device=device)
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "position_ids": position_ids}


def _left_padded_last_hidden(body: Any, tokenizer: Any, rows: list[list[int]], device: Any) -> Any:
    """The last position's hidden state of each row, all rows as one left-padded batch."""
    return body(**left_padded_batch(tokenizer, rows, device)).last_hidden_state[:, -1]


def next_token_logprobs(
    model: Any, tokenizer: Any, contexts: Sequence[str], token_ids: Sequence[int]
) -> list[tuple[float, ...]]:
    """Log-probabilities of candidate next tokens after each context (tokenised as `tokenize_pair` does).

    The contexts run as one left-padded batch with explicit positions, so each row's last column is
    its own last token and only that column goes through the output layer (`logits_to_keep=1`).
    """
    import torch

    rows = [tokenizer(context, add_special_tokens=True)["input_ids"] for context in contexts]
    if not rows:
        return []
    inputs = left_padded_batch(tokenizer, rows, model.device)
    # Only the last column's logits: the output layer over the whole prompt is wasted work.
    keep = {"logits_to_keep": 1} if accepts_logits_to_keep(model) else {}
    with torch.no_grad():
        logits = model(**inputs, **keep).logits[:, -1]
    logprobs = torch.log_softmax(logits.float(), dim=-1)[:, list(token_ids)]
    return [tuple(float(v) for v in row) for row in logprobs.cpu()]
