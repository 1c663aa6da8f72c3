from __future__ import annotations

import pytest

from implicit_if.formats import FORMAT_NAMES, format_messages, format_prompt


def test_tulu_prompt_matches_the_study_layout() -> None:
    assert format_prompt("Name a colour.") == "<|user|>\nName a colour.\n<|assistant|>\n"


def test_ab_tags_are_the_neutral_ablation() -> None:
    assert format_prompt("Hi", "ab") == "<|A|>\nHi\n<|B|>\n"


def test_multi_turn_tulu_closes_assistant_turns_with_eos() -> None:
    class Tok:
        eos_token = "</s>"

    messages = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"},
    ]
    assert format_messages(messages, "tulu", Tok()) == "<|user|>\na\n<|assistant|>\nb</s>\n<|user|>\nc\n<|assistant|>\n"


def test_chat_template_needs_a_template() -> None:
    class NoTemplate:
        chat_template = None

    with pytest.raises(ValueError, match="no chat template|needs a tokenizer"):
        format_prompt("x", "chat_template", NoTemplate())


def test_unknown_format_names_the_choices() -> None:
    with pytest.raises(ValueError, match="tulu"):
        format_prompt("x", "alpaca")
    assert set(FORMAT_NAMES) == {"tulu", "ab", "chat_template"}


def test_chat_template_uses_the_tokenizer(smollm2_dir: str) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    prompt = format_prompt("What is 2+2?", "chat_template", tok)
    assert "What is 2+2?" in prompt and prompt.rstrip().endswith("assistant")
