"""Every command answers --help; the foundation commands do what they say."""

from __future__ import annotations

from pathlib import Path

import typer
from typer.testing import CliRunner

from implicit_if.cli import app

runner = CliRunner()


def _command_paths(application: typer.Typer, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    import typer.main

    group = typer.main.get_command(application)
    paths: list[tuple[str, ...]] = []

    def walk(command, path: tuple[str, ...]) -> None:
        paths.append(path)
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, (*path, name))

    walk(group, prefix)
    return paths


def test_every_command_has_help() -> None:
    paths = _command_paths(app)
    assert ("models", "prepare") in paths and ("tasks-dir",) in paths
    for path in paths:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage" in result.output


def test_tasks_dir_holds_the_group() -> None:
    result = runner.invoke(app, ["tasks-dir"])
    assert result.exit_code == 0
    folder = Path(result.output.strip().splitlines()[-1])
    assert (folder / "implicit_if.yaml").exists()


def test_models_list_names_both_embedded_models() -> None:
    result = runner.invoke(app, ["models", "list"])
    assert result.exit_code == 0
    assert "gemma-3-270m" in result.output and "smollm2-135m-instruct" in result.output


def test_models_prepare_passes_hub_ids_through() -> None:
    result = runner.invoke(app, ["models", "prepare", "HuggingFaceTB/SmolLM2-135M-Instruct"])
    assert result.exit_code == 0
    assert result.output.strip().splitlines()[-1] == "HuggingFaceTB/SmolLM2-135M-Instruct"


def test_models_prepare_rejects_unknown_names_clearly() -> None:
    result = runner.invoke(app, ["models", "prepare", "no-such-model"])
    assert result.exit_code == 2
    assert "unknown model" in result.output and "models list" in result.output


def test_models_prepare_last_line_is_a_loadable_dir(smollm2_dir: str) -> None:
    result = runner.invoke(app, ["models", "prepare", "smollm2-135m-instruct"])
    assert result.exit_code == 0
    last = Path(result.output.strip().splitlines()[-1])
    assert last == Path(smollm2_dir)
    assert (last / "config.json").exists() and list(last.glob("*.safetensors"))
