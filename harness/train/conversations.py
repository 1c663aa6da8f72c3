"""Dataset records -> the conversations a recipe trains on (pure).

Instruction tuning keeps every turn; response tuning blanks every user turn (multi-turn too)
and keeps the tags, so the model learns p(response | empty instruction). Single-task tuning is
instruction tuning on a narrow set; its converters live in `implicit_if.data`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

Message = dict[str, str]
ADAPTATIONS = ("instruction", "response")


def record_messages(record: dict[str, Any]) -> list[Message]:
    """The conversation of one record: its `messages` (LIMA, multi-turn) or one instruction/response exchange."""
    messages = record.get("messages")
    if messages:
        return [{"role": m["role"], "content": m["content"]} for m in messages]
    return [
        {"role": "user", "content": record["instruction"]},
        {"role": "assistant", "content": record["response"]},
    ]


def adapt(messages: Sequence[Message], adaptation: str) -> list[Message]:
    """Apply an adaptation to one conversation; response tuning empties every non-assistant turn."""
    if adaptation == "instruction":
        return [dict(m) for m in messages]
    if adaptation == "response":
        return [m if m["role"] == "assistant" else {"role": m["role"], "content": ""} for m in messages]
    raise ValueError(f"unknown adaptation {adaptation!r}: use one of {', '.join(ADAPTATIONS)}")


def training_conversations(records: Iterable[dict[str, Any]], adaptation: str) -> list[dict[str, Any]]:
    """`[{"id", "messages"}]`, one per usable record (those with at least one non-empty assistant turn)."""
    conversations = []
    for record in records:
        messages = adapt(record_messages(record), adaptation)
        if any(m["role"] == "assistant" and m["content"].strip() for m in messages):
            conversations.append({"id": str(record.get("id", len(conversations))), "messages": messages})
    return conversations
