"""Recipes are data: bundled names resolve, carry the study's settings, and overrides are checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from implicit_if.train import RecipeError, accelerate_config, list_recipes, load_recipe
from implicit_if.train.recipes import parse_overrides

STUDY_CELLS = [
    "lima-instruction",
    "lima-response",
    "lima-instruction-ab",
    "lima-response-ab",
    "gsm8k",
    "mbpp",
    "poetry",
    "recipes",
    "chess",
]


def test_every_bundled_recipe_resolves_and_validates() -> None:
    names = list_recipes()
    expected = {f"{m}-{c}" for m in ("llama2-7b", "olmo-7b") for c in STUDY_CELLS}
    expected |= {"tiny-cpu", "gemma-3-270m-lima-response", "smollm2-135m-lima-response"}
    assert expected <= set(names)
    assert not any(name.startswith("_") for name in names)  # shared bases stay hidden
    for name in names:
        recipe = load_recipe(name)
        assert recipe.name == name and recipe.description


@pytest.mark.parametrize(
    "model,lr,hub_id", [("llama2-7b", 1e-5, "meta-llama/Llama-2-7b-hf"), ("olmo-7b", 3e-6, "allenai/OLMo-7B-hf")]
)
def test_study_recipes_carry_the_study_hyperparameters(model: str, lr: float, hub_id: str) -> None:
    for cell in STUDY_CELLS:
        recipe = load_recipe(f"{model}-{cell}")
        t = recipe.training
        assert recipe.model.name_or_path == hub_id and recipe.model.init == "pretrained"
        assert (t.learning_rate, t.batch_size, recipe.data.max_length) == (lr, 64, 2048)
        assert (t.schedule, t.warmup_ratio, t.weight_decay, t.precision) == ("linear", 0.03, 0.0, "auto")
        assert t.epochs in {5, 7, 10, 15, 20}
        assert recipe.data.adaptation == ("response" if "response" in cell else "instruction")
        assert recipe.data.format == ("ab" if cell.endswith("-ab") else "tulu")
    assert load_recipe(f"{model}-lima-response").training.epochs == (5 if model == "llama2-7b" else 7)
    assert load_recipe(f"{model}-gsm8k").training.epochs == 7
    assert load_recipe(f"{model}-gsm8k").data.limit == 1000


def test_overrides_are_typed_and_nested() -> None:
    recipe = load_recipe(
        "tiny-cpu",
        ["training.epochs=3", "training.learning_rate=1e-4", "data.limit=null", "model.config.num_hidden_layers=1"],
    )
    assert recipe.training.epochs == 3 and recipe.training.learning_rate == 1e-4
    assert recipe.data.limit is None and recipe.model.config["num_hidden_layers"] == 1
    assert recipe.model.config["hidden_size"] == 32  # untouched siblings survive the merge
    assert parse_overrides(["a.b=x=y"]) == {"a": {"b": "x=y"}}


@pytest.mark.parametrize(
    "overrides,fragment",
    [
        (["training.epoch=3"], "training.epoch: unknown key"),
        (["training.epochs"], "not key=value"),
        (["training.epochs=zero"], "training.epochs"),
        (["data.format=chatml"], "not a tag format"),
        (["training.micro_batch_tokens=100"], "micro_batch_tokens (100) is smaller than data.max_length"),
    ],
)
def test_bad_overrides_name_the_problem(overrides: list[str], fragment: str) -> None:
    with pytest.raises(RecipeError) as caught:
        load_recipe("tiny-cpu", overrides)
    assert fragment in str(caught.value)


def test_unknown_recipe_lists_the_known_ones() -> None:
    with pytest.raises(RecipeError) as caught:
        load_recipe("llama3-lima")
    assert "tiny-cpu" in str(caught.value) and "--list-recipes" in str(caught.value)


def test_a_recipe_file_can_extend_a_bundled_recipe_and_a_sibling_file(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text("extends: tiny-cpu\ntraining:\n  epochs: 2\n")
    (tmp_path / "mine.yaml").write_text("extends: base.yaml\ndescription: mine\ndata:\n  adaptation: instruction\n")
    recipe = load_recipe(str(tmp_path / "mine.yaml"))
    assert recipe.name == "mine" and recipe.training.epochs == 2
    assert recipe.data.adaptation == "instruction" and recipe.model.init == "random"
    (tmp_path / "loop.yaml").write_text("extends: loop.yaml\n")
    with pytest.raises(RecipeError, match="extends itself"):
        load_recipe(str(tmp_path / "loop.yaml"))


def test_random_init_needs_a_model_type(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(
        "model: {init: random, tokenizer: smollm2-135m-instruct, config: {hidden_size: 8}}\n"
        "data: {dataset: lima}\ntraining: {learning_rate: 0.001}\n"
    )
    with pytest.raises(RecipeError, match="needs a model_type"):
        load_recipe(str(tmp_path / "r.yaml"))


def test_accelerate_configs_ship_fsdp_and_zero3() -> None:
    import yaml

    fsdp = yaml.safe_load(Path(accelerate_config("fsdp")).read_text())
    zero3 = yaml.safe_load(Path(accelerate_config("deepspeed-zero3")).read_text())
    assert (
        fsdp["distributed_type"] == "FSDP" and fsdp["fsdp_config"]["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    )
    assert zero3["distributed_type"] == "DEEPSPEED" and zero3["deepspeed_config"]["zero_stage"] == 3
    assert zero3["deepspeed_config"]["zero3_save_16bit_model"] is True  # needed to save a full model at the end
    with pytest.raises(RecipeError, match="fsdp or deepspeed-zero3"):
        accelerate_config("zero2")
