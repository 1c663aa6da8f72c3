"""`python -m implicit_if.train ...` is `implicit-if train ...`; `accelerate launch -m implicit_if.train` uses it."""

from __future__ import annotations

import sys

from ..cli import app

if __name__ == "__main__":
    sys.exit(app(["train", *sys.argv[1:]]))
