"""`implicit-if lm-eval-hook install|status|remove`: manage the lm-eval task discovery hook.

A wheel install ships the hook's .pth file; editable (development) installs do not, so this
command writes the same file into the running interpreter's site-packages.
"""

from __future__ import annotations

from pathlib import Path

import typer

hook_app = typer.Typer(
    help="The hook that lets `lm_eval --tasks implicit_if` work without --include_path.", no_args_is_help=True
)
PTH_NAME = "implicit_if_lm_eval.pth"


def _site_packages() -> Path:
    import sysconfig

    return Path(sysconfig.get_paths()["purelib"])


def _source_pth() -> Path:
    return Path(__file__).resolve().parent.parent / PTH_NAME


@hook_app.command("install")
def install() -> None:
    """Write the .pth hook into this environment's site-packages (idempotent)."""
    from ._common import atomic_write_text

    target = _site_packages() / PTH_NAME
    atomic_write_text(target, _source_pth().read_text())
    typer.echo(str(target))


@hook_app.command("status")
def status() -> None:
    """Say whether the hook is installed and whether lm-eval would see the implicit_if tasks."""
    target = _site_packages() / PTH_NAME
    from ..lm_eval_hook import _version_supported

    typer.echo(f"hook file: {target} ({'present' if target.exists() else 'absent'})")
    typer.echo(f"lm-eval version supported: {'yes' if _version_supported() else 'no'}")


@hook_app.command("remove")
def remove() -> None:
    """Delete the .pth hook from this environment."""
    (_site_packages() / PTH_NAME).unlink(missing_ok=True)


def register(app: typer.Typer) -> None:
    app.add_typer(hook_app, name="lm-eval-hook")
