"""Loss falls on response tokens and EOS only, at exact token positions; response tuning blanks user turns."""

from __future__ import annotations

import pytest

from implicit_if.train.conversations import adapt, training_conversations
from implicit_if.train.examples import tokenize_conversations
from implicit_if.train.masking import IGNORE, render_segments, tokenize_conversation


@pytest.fixture(scope="module")
def tokenizer(smollm2_dir: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm2_dir)


def ids(tokenizer, text: str, special: bool = False) -> list[int]:
    return tokenizer(text, add_special_tokens=special)["input_ids"]


def targets(example) -> list[int]:
    return [p for p, label in enumerate(example.labels) if label != IGNORE]


def test_single_turn_targets_are_exactly_the_response_and_eos(tokenizer) -> None:
    messages = [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "Four, of course."}]
    example = tokenize_conversation(tokenizer, messages)
    prompt = ids(tokenizer, "<|user|>\nWhat is 2+2?\n<|assistant|>\n", special=True)
    response = ids(tokenizer, "Four, of course.")
    assert example.input_ids == prompt + response + [tokenizer.eos_token_id]
    assert targets(example) == list(range(len(prompt), len(prompt) + len(response) + 1))
    assert example.labels[len(prompt) :] == response + [tokenizer.eos_token_id]
    # the assistant tag and its newline are the last prompt tokens, and are masked
    assert tokenizer.decode(example.input_ids[len(prompt) - 7 : len(prompt)]) == "<|assistant|>\n"


def test_multi_turn_trains_every_assistant_turn_and_masks_the_newline_after_eos(tokenizer) -> None:
    messages = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Bye"},
        {"role": "assistant", "content": "Goodbye."},
    ]
    example = tokenize_conversation(tokenizer, messages)
    eos = tokenizer.eos_token_id
    first_prompt = ids(tokenizer, "<|user|>\nHi\n<|assistant|>\n", special=True)
    first = ids(tokenizer, "Hello!") + [eos]
    second_prompt = ids(tokenizer, "\n<|user|>\nBye\n<|assistant|>\n")
    second = ids(tokenizer, "Goodbye.") + [eos]
    assert example.input_ids == first_prompt + first + second_prompt + second
    start_second = len(first_prompt) + len(first) + len(second_prompt)
    assert targets(example) == [
        *range(len(first_prompt), len(first_prompt) + len(first)),
        *range(start_second, start_second + len(second)),
    ]
    assert tokenizer.decode([example.labels[p] for p in targets(example)]) == "Hello!<|im_end|>Goodbye.<|im_end|>"


def test_response_tuning_blanks_every_user_turn_and_keeps_the_tags(tokenizer) -> None:
    record = {
        "id": "lima-0",
        "instruction": "Q1",
        "response": "A1",
        "messages": [
            {"role": "user", "content": "Q1"},
            {"role": "assistant", "content": "A1"},
            {"role": "user", "content": "Q2"},
            {"role": "assistant", "content": "A2"},
        ],
    }
    (conversation,) = training_conversations([record], "response")
    text = "".join(s.text for s in render_segments(conversation["messages"], "tulu", "</s>"))
    assert text == "<|user|>\n\n<|assistant|>\nA1</s>\n<|user|>\n\n<|assistant|>\nA2</s>"
    assert "Q1" not in text and "Q2" not in text
    instruction = training_conversations([record], "instruction")[0]["messages"]
    assert [m["content"] for m in instruction] == ["Q1", "A1", "Q2", "A2"]
    single = training_conversations(
        [{"id": "g-1", "instruction": "Add 1 and 2.", "response": "3\n#### 3"}], "response"
    )[0]
    assert single["messages"] == [{"role": "user", "content": ""}, {"role": "assistant", "content": "3\n#### 3"}]
    example = tokenize_conversation(tokenizer, conversation["messages"])
    assert tokenizer.decode([example.labels[p] for p in targets(example)]) == "A1<|im_end|>A2<|im_end|>"


def test_neutral_tags_for_the_ablation(tokenizer) -> None:
    text = "".join(
        s.text
        for s in render_segments(
            adapt([{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}], "instruction"),
            "ab",
            "</s>",
        )
    )
    assert text == "<|A|>\nx\n<|B|>\ny</s>"
    example = tokenize_conversation(
        tokenizer, [{"role": "user", "content": "x"}, {"role": "assistant", "content": "yes"}], "ab"
    )
    assert example.labels[-len(ids(tokenizer, "yes")) - 1 :] == ids(tokenizer, "yes") + [tokenizer.eos_token_id]


def test_truncation_keeps_the_prefix_and_drops_examples_without_targets(tokenizer) -> None:
    long = [{"role": "user", "content": "word " * 50}, {"role": "assistant", "content": "fine"}]
    short = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "a b c d e f g"}]
    cut = tokenize_conversation(tokenizer, short, max_length=14)
    full = tokenize_conversation(tokenizer, short)
    assert cut.truncated and cut.input_ids == full.input_ids[:14] and cut.labels == full.labels[:14]
    examples, kept, truncated, dropped = tokenize_conversations(
        tokenizer, [{"id": "long", "messages": long}, {"id": "short", "messages": short}], "tulu", 40
    )
    assert kept == ["short"] and (truncated, dropped) == (1, 1)


def test_trailing_user_turn_carries_no_loss_and_is_dropped() -> None:
    segments = render_segments(
        [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}],
        "tulu",
        "</s>",
    )
    assert "".join(s.text for s in segments) == "<|user|>\na\n<|assistant|>\nb</s>"


def test_a_slow_tokenizer_is_refused_with_the_fix() -> None:
    class Slow:
        is_fast = False

    with pytest.raises(ValueError, match="use_fast=True"):
        tokenize_conversation(Slow(), [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}])


@pytest.mark.slow
def test_gemma_tokenizer_masks_its_bos(gemma_dir: str) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gemma_dir)
    example = tokenize_conversation(
        tokenizer, [{"role": "user", "content": "Name a fruit."}, {"role": "assistant", "content": "A pear."}]
    )
    assert example.input_ids[0] == tokenizer.bos_token_id and example.labels[0] == IGNORE
    assert tokenizer.decode([example.labels[p] for p in targets(example)]) == "A pear." + tokenizer.eos_token
    assert targets(example)[-1] == len(example.input_ids) - 1
