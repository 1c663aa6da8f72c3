"""The `implicit-if` command line.

Each module in this package that defines `register(app)` adds its commands; the app discovers
them, so a new command is a new file, with no central list to edit.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
from pathlib import Path

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


ISSUES = "https://github.com/implicit-if/implicit-if/issues"


def crash_report(error: BaseException) -> Path:
    """The whole traceback in a file of the user cache (never on screen: it is long, and users paste screens)."""
    import time
    import traceback

    from ..io import atomic_write_text
    from ..paths import cache_dir

    path = cache_dir("reports") / f"crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.txt"
    atomic_write_text(path, f"implicit-if {' '.join(sys.argv[1:])}\n\n" + "".join(traceback.format_exception(error)))
    return path


def main() -> None:
    """Every user error is one line from its command; anything else is a bug, said so in one line."""
    try:
        app()
    except (SystemExit, KeyboardInterrupt):
        raise
    except Exception as error:
        try:
            where = f"the full report is in {crash_report(error)}"
        except OSError:
            where = "no report could be written"
        message = " ".join(str(error).split())[:300]
        typer.secho(
            f"error: unexpected {type(error).__name__}: {message} (a bug in implicit-if; {where}: "
            f"please attach it to an issue at {ISSUES})",
            err=True,
            fg=typer.colors.RED,
        )
        raise SystemExit(70) from None
