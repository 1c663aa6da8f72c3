"""Helpers shared by CLI commands: clear errors, JSON printing, output paths checked before work.

The atomic writers live in `implicit_if.io`; they are re-exported here for the commands."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import typer

from ..io import atomic_write_json, atomic_write_jsonl, atomic_write_text  # noqa: F401 (re-exported)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print one clear error line (problem and fix) to stderr and exit non-zero."""
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


def print_json(payload: Any) -> None:
    typer.echo(json.dumps(payload, indent=2, ensure_ascii=False, sort_keys=True))


def check_output_path(path: Path, option: str = "--output") -> None:
    """Refuse a path we could not write to, before any work is done (a bad path must not cost a run)."""
    if path.is_dir():
        fail(f"{option} {path} is a directory: give a file path")
    if not path.parent.is_dir():
        fail(f"{option} {path}: folder {path.parent} does not exist (create it, or choose another path)")
    try:  # the only reliable test (os.access says yes to root)
        handle, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=path.parent)
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        fail(f"{option} {path}: cannot write in {path.parent} ({error.strerror}); choose another path")
