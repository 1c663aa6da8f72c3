"""The bundled trainer: reference checkpoints by instruction, response and single-task tuning.

`implicit-if train --recipe NAME_OR_FILE --output DIR [section.key=value ...]`, or from Python::

    from implicit_if.train import load_recipe, train
    train(load_recipe("tiny-cpu", ["training.max_steps=5"]), "out/tiny")

Kept import-light: torch, transformers and accelerate load only when training starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .recipes import Recipe, RecipeError, list_recipes, load_recipe

if TYPE_CHECKING:
    from .loop import TrainResult

__all__ = ["Recipe", "RecipeError", "TrainResult", "accelerate_config", "list_recipes", "load_recipe", "train"]


def train(recipe: Recipe, output_dir: Any, **options: Any) -> TrainResult:
    """Run a recipe; see `implicit_if.train.loop.train` for the options (resume, overwrite, progress)."""
    from .loop import train as run

    return run(recipe, output_dir, **options)


def accelerate_config(name: str) -> str:
    """Path of a shipped accelerate config (`fsdp` or `deepspeed-zero3`) for `accelerate launch --config_file`."""
    from importlib import resources

    path = resources.files(__name__) / "accelerate" / f"{name}.yaml"
    if not path.is_file():
        raise RecipeError(f"no accelerate config {name!r}: use fsdp or deepspeed-zero3")
    return str(path)
