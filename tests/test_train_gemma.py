"""The study's recipes on the real Gemma 3 270M base model: a few steps learn, and only responses carry loss."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from implicit_if.train import load_recipe, train
from implicit_if.train.examples import load_training_data
from implicit_if.train.masking import IGNORE
from implicit_if.train.modeling import load_tokenizer

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _isolated(offline_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMPLICIT_IF_CACHE", str(tmp_path / "cache"))


@pytest.mark.parametrize("recipe", ["gemma-3-270m-cpu-response", "gemma-3-270m-cpu-gsm"])
def test_only_response_and_eos_tokens_carry_loss(recipe: str, gemma_dir: str) -> None:
    resolved = load_recipe(recipe, {"model": {"name_or_path": gemma_dir}, "data": {"limit": 6}})
    tokenizer = load_tokenizer(resolved.model)
    data = load_training_data(resolved.data, tokenizer)
    from implicit_if.data import load_pairs

    records = load_pairs(resolved.data.dataset, limit=6)
    for example, record in zip(data.examples, records):
        targets = [t for t, label in zip(example.input_ids, example.labels) if label != IGNORE]
        assert targets[-1] == tokenizer.eos_token_id
        trained = tokenizer.decode(targets)
        if len(record.get("messages") or []) <= 2:  # single exchange: the targets are the response and EOS, exactly
            assert trained == record["response"].strip() + tokenizer.eos_token
        assert "<|user|>" not in trained and "<|assistant|>" not in trained
        if resolved.data.adaptation == "response":  # the instruction is blanked: no token of it is even in the input
            assert record["instruction"].strip()[:40] not in tokenizer.decode(example.input_ids)


def test_a_few_steps_of_the_response_recipe_lower_the_loss(tmp_path: Path, gemma_dir: str) -> None:
    # Two examples in one step, repeated: the loss on the same batch must fall.
    recipe = load_recipe(
        "gemma-3-270m-cpu-response",
        {
            "model": {"name_or_path": gemma_dir},
            "data": {"limit": 2, "max_length": 256},
            "training": {
                "max_steps": 4,
                "batch_size": 2,
                "learning_rate": 1e-4,
                "warmup_ratio": 0.0,
                "checkpoint_every": None,
            },
        },
    )
    result = train(recipe, tmp_path / "model", progress=False)
    losses = [json.loads(line)["loss"] for line in (tmp_path / "model" / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == 4 and losses[-1] < 0.8 * losses[0]
    provenance = json.loads((tmp_path / "model" / "training_provenance.json").read_text())
    assert provenance["training"]["loss"].startswith("fused")
    assert provenance["training"]["trained_parameters"] == "all"
    assert result.steps == 4 and (tmp_path / "model" / "README.md").is_file()
