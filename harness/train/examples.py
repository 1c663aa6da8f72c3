"""A recipe's data section -> tokenized training examples, with their fingerprints."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .conversations import training_conversations
from .masking import TokenizedExample, tokenize_conversation
from .recipes import DataSpec


@dataclass(frozen=True)
class TrainingData:
    examples: list[TokenizedExample]
    ids: list[str]
    n_records: int
    n_truncated: int
    n_without_targets: int  # dropped: truncation left no response token
    origins: list[str]
    fingerprint: str  # of the conversations as trained (after blanking), the format and max_length
    tokens_fingerprint: str  # of the exact token ids and labels (also pins the tokenizer)

    @property
    def n_tokens(self) -> int:
        return sum(len(e.input_ids) for e in self.examples)

    @property
    def n_targets(self) -> int:
        return sum(e.n_targets for e in self.examples)


def _sha256(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def tokenize_conversations(
    tokenizer: Any, conversations: Sequence[dict[str, Any]], fmt: str, max_length: int
) -> tuple[list[TokenizedExample], list[str], int, int]:
    """Tokenize and drop examples without targets; returns (examples, ids, n_truncated, n_dropped)."""
    examples, ids, truncated, dropped = [], [], 0, 0
    for conversation in conversations:
        example = tokenize_conversation(tokenizer, conversation["messages"], fmt, max_length)
        truncated += example.truncated
        if example.n_targets == 0:
            dropped += 1
            continue
        examples.append(example)
        ids.append(conversation["id"])
    return examples, ids, truncated, dropped


def load_training_data(spec: DataSpec, tokenizer: Any) -> TrainingData:
    from ..data import load_pairs

    records = load_pairs(spec.dataset, offline=spec.offline, limit=spec.limit)
    conversations = training_conversations(records, spec.adaptation)
    examples, ids, truncated, dropped = tokenize_conversations(tokenizer, conversations, spec.format, spec.max_length)
    if not examples:
        raise ValueError(
            f"dataset {spec.dataset!r} gave no trainable example (records: {len(records)}); "
            "check data.limit and data.max_length"
        )
    return TrainingData(
        examples=examples,
        ids=ids,
        n_records=len(records),
        n_truncated=truncated,
        n_without_targets=dropped,
        origins=sorted({str(r.get("origin", "unknown")) for r in records}),
        fingerprint=_sha256({"format": spec.format, "max_length": spec.max_length, "conversations": conversations}),
        tokens_fingerprint=_sha256([[e.input_ids, e.labels] for e in examples]),
    )
