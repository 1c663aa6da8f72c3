"""The `implicit-if` command line.

Each module in this package that defines `register(app)` adds its commands; the app discovers
them, so a new command is a new file, with no central list to edit.
"""

from __future__ import annotations

import importlib
import pkgutil

import typer

app = typer.Typer(
    name="implicit-if",
    help="Measure implicit instruction following: judged win rate, response ranking, style leakage.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def _register_all() -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if callable(register):
            register(app)


_register_all()


def main() -> None:
    app()
