"""Conversations -> token ids and labels, with loss on response tokens and EOS only.

The layout is open-instruct's Tulu format, one block per turn:
`<|user|>\\n{u}\\n` and `<|assistant|>\\n{a}{eos}\\n`, with the final newline dropped (open-instruct
strips the text). The whole text is tokenised in one call, as the study did, and each token is
a target when its first character lies inside a response or an EOS; so the `<|assistant|>\\n`
tag, the user turns, the newline after EOS and any BOS are masked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..formats import TAG_FORMATS

IGNORE = -100


@dataclass(frozen=True)
class Segment:
    text: str
    target: bool
    is_eos: bool = False


@dataclass(frozen=True)
class TokenizedExample:
    input_ids: list[int]
    labels: list[int]  # aligned with input_ids: the token itself where it is a target, IGNORE elsewhere
    truncated: bool = False

    @property
    def n_targets(self) -> int:
        return sum(label != IGNORE for label in self.labels)


def render_segments(messages: Sequence[dict[str, str]], fmt: str, eos: str) -> list[Segment]:
    """The text of a conversation as target / non-target pieces.

    Trailing non-assistant turns carry no loss and are dropped."""
    tags = TAG_FORMATS[fmt]
    last_assistant = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=-1)
    segments: list[Segment] = []
    for index, message in enumerate(messages[: last_assistant + 1]):
        content = message["content"].strip()
        if message["role"] == "assistant":
            segments.append(Segment(f"{tags.assistant_tag}\n", False))
            segments.append(Segment(content, True))
            segments.append(Segment(eos, True, is_eos=True))
            if index < last_assistant:
                segments.append(Segment("\n", False))
        else:  # user and system turns are both user-style blocks, as in formats.TagFormat
            segments.append(Segment(f"{tags.user_tag}\n{content}\n", False))
    return segments


def tokenize_conversation(
    tokenizer: Any, messages: Sequence[dict[str, str]], fmt: str = "tulu", max_length: int | None = None
) -> TokenizedExample:
    """Token ids and aligned labels of one conversation (needs a fast tokenizer for character offsets)."""
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(
            "training needs a fast tokenizer (offsets locate the response tokens): load it with use_fast=True"
        )
    eos, eos_id = tokenizer.eos_token, tokenizer.eos_token_id
    if eos is None or eos_id is None:
        raise ValueError(
            "this tokenizer has no EOS token, and the loss must end each response with one: set tokenizer.eos_token"
        )
    segments = render_segments(messages, fmt, eos)
    text, target_spans, eos_spans = "", [], []
    for segment in segments:
        span = (len(text), len(text) + len(segment.text))
        if segment.target and segment.text:
            target_spans.append(span)
        if segment.is_eos:
            eos_spans.append(span)
        text += segment.text
    encoded = tokenizer(text, add_special_tokens=True, return_offsets_mapping=True)
    ids, offsets = list(encoded["input_ids"]), encoded["offset_mapping"]
    labels = [IGNORE] * len(ids)
    span_index = 0
    for position, (start, end) in enumerate(offsets):
        if end <= start:  # added special tokens (BOS) have empty spans
            continue
        while span_index < len(target_spans) and target_spans[span_index][1] <= start:
            span_index += 1
        if span_index < len(target_spans) and target_spans[span_index][0] <= start:
            labels[position] = ids[position]
    eos_positions = {tuple(o) for o, i in zip(offsets, ids) if i == eos_id}
    if any(span not in eos_positions for span in eos_spans):
        raise ValueError(
            f"the tokenizer did not read {eos!r} in the text as its EOS token (id {eos_id}); "
            "use a tokenizer that treats its EOS string as a special token"
        )
    truncated = max_length is not None and len(ids) > max_length
    if truncated:
        ids, labels = ids[:max_length], labels[:max_length]
    return TokenizedExample(ids, labels, truncated)
