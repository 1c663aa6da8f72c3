"""implicit-if: evaluation harness for implicit instruction following.

Kept import-light on purpose: the lm-eval discovery hook imports this package at every
interpreter start-up, so nothing heavy (torch, transformers) may be imported here.
"""

__version__ = "0.1.0"
