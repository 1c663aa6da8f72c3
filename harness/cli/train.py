"""`implicit-if train`: run a bundled or custom training recipe and write an HF model directory."""

from __future__ import annotations

import typer

from ._common import fail, print_json

EPILOG = (
    "Examples: `implicit-if train --recipe tiny-cpu --output out/tiny`; "
    "`implicit-if train --recipe gemma-3-270m-lima-response --output out/g training.epochs=3`; "
    'multi-GPU: `accelerate launch --config_file "$(implicit-if train --accelerate-config deepspeed-zero3)" '
    "-m implicit_if.train --recipe llama2-7b-lima-response --output out/llama`."
)


def train(
    overrides: list[str] | None = typer.Argument(
        None,
        metavar="[KEY=VALUE]...",
        help="Recipe overrides, e.g. training.epochs=3 data.limit=100 model.gradient_checkpointing=true.",
    ),
    recipe: str | None = typer.Option(
        None, "--recipe", "-r", help="Bundled recipe name (see --list-recipes) or a recipe .yaml file."
    ),
    output: str | None = typer.Option(
        None, "--output", "-o", help="Directory for the model, model card, metrics.jsonl and checkpoints."
    ),
    resume: str | None = typer.Option(
        None, "--resume", help="'auto' (newest checkpoint in --output, or start fresh) or a checkpoint folder."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a previous training run in --output."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print the resolved recipe as JSON and exit without loading anything."
    ),
    list_recipes: bool = typer.Option(False, "--list-recipes", help="List the bundled recipes and exit."),
    accelerate_config: str | None = typer.Option(
        None,
        "--accelerate-config",
        metavar="fsdp|deepspeed-zero3",
        help="Print the path of a shipped accelerate config and exit.",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Fine-tune a model by instruction, response or single-task tuning (Tulu format, loss on responses and EOS).

    The output directory becomes a Hugging Face model directory (config.json, safetensors,
    tokenizer) with a model card (README.md) holding the provenance, metrics.jsonl (one record
    per logging step) and, when the recipe asks, resumable checkpoints under checkpoints/.
    """
    from ..train import RecipeError, load_recipe
    from ..train import accelerate_config as config_path
    from ..train import list_recipes as bundled

    if list_recipes:
        from tabulate import tabulate

        typer.echo(tabulate(sorted(bundled().items()), headers=["recipe", "description"]))
        return
    if accelerate_config:
        try:
            typer.echo(config_path(accelerate_config))
        except RecipeError as error:
            fail(str(error))
        return
    if not recipe:
        fail("--recipe is required: give a bundled name (`implicit-if train --list-recipes`) or a .yaml file")
    try:
        resolved = load_recipe(recipe, list(overrides or []))
    except RecipeError as error:
        fail(str(error))
    if dry_run:
        print_json(resolved.model_dump(mode="json"))
        return
    if not output:
        fail("--output is required: the directory to write the trained model into")

    from ..data import DatasetUnavailable
    from ..train import train as run
    from ..train.checkpoint import OutputDirError

    try:
        result = run(resolved, output, resume=resume, overwrite=overwrite, progress=not quiet)
    except (OutputDirError, DatasetUnavailable) as error:
        fail(str(error))
    typer.echo(
        f"trained {result.steps} steps in {result.seconds:.1f} s, final loss {result.final_loss:.4f}; "
        f"model in {result.output_dir}"
    )


def register(app: typer.Typer) -> None:
    app.command("train", epilog=EPILOG)(train)
