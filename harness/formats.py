"""Chat formats: how an instruction (and a response) become model text.

`tulu` is the study's format (`<|user|>\\n{instruction}\\n<|assistant|>\\n{response}` + EOS);
`ab` is the study's ablation with neutral tags; `chat_template` uses the tokenizer's own
template. Loss and scores fall on the response and EOS only, so every format is split into a
prompt (ends with the assistant tag) and a completion.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

FORMAT_NAMES = ("tulu", "ab", "chat_template")


@dataclass(frozen=True)
class TagFormat:
    user_tag: str
    assistant_tag: str

    def prompt(self, messages: Sequence[dict[str, str]], eos: str = "") -> str:
        """Text up to and including the final assistant tag (the generation prompt).

        Earlier assistant turns end with `eos` and a newline, as in open-instruct's Tulu format.
        """
        parts: list[str] = []
        for message in messages:
            if message["role"] == "user":
                parts.append(f"{self.user_tag}\n{message['content']}\n")
            elif message["role"] == "assistant":
                parts.append(f"{self.assistant_tag}\n{message['content']}{eos}\n")
            else:  # system turns are folded into a user-style block, as open-instruct does
                parts.append(f"{self.user_tag}\n{message['content']}\n")
        return "".join(parts) + f"{self.assistant_tag}\n"


TAG_FORMATS = {
    "tulu": TagFormat("<|user|>", "<|assistant|>"),
    "ab": TagFormat("<|A|>", "<|B|>"),
}


def check_format(name: str) -> str:
    if name not in FORMAT_NAMES:
        raise ValueError(f"unknown chat format {name!r}: choose one of {', '.join(FORMAT_NAMES)}")
    return name


def format_prompt(instruction: str, fmt: str = "tulu", tokenizer: Any = None) -> str:
    """The prompt for one single-turn instruction, ending where the response starts."""
    return format_messages([{"role": "user", "content": instruction}], fmt, tokenizer)


def format_messages(messages: Sequence[dict[str, str]], fmt: str = "tulu", tokenizer: Any = None) -> str:
    """The prompt for a conversation whose next turn is the assistant's."""
    check_format(fmt)
    if fmt in TAG_FORMATS:
        eos = getattr(tokenizer, "eos_token", None) or ""
        return TAG_FORMATS[fmt].prompt(messages, eos=eos)
    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        raise ValueError(
            "format 'chat_template' needs a tokenizer with a chat template; this model has none "
            "(base models usually don't): use --format tulu or --format ab"
        )
    return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)


def uses_special_tokens_in_text(fmt: str) -> bool:
    """Chat templates already contain BOS-like special tokens; tag formats do not."""
    return fmt == "chat_template"
