"""Errors and warnings of the datasets layer, kept apart so every module can raise them."""

from __future__ import annotations


class DatasetUnavailable(RuntimeError):
    """A dataset cannot be produced from the requested source.

    ``reason`` is machine-readable so callers (and the automatic fixture
    fallback) can tell "no network" from "you must accept a licence":
    ``"offline"``, ``"unreachable"``, ``"gated"``, ``"not_found"``,
    ``"unknown_dataset"`` or ``"error"``.
    """

    def __init__(self, message: str, *, reason: str = "error") -> None:
        super().__init__(message)
        self.reason = reason


class FixtureFallbackWarning(UserWarning):
    """Hub data was wanted but the small bundled fixture is being used instead.

    Its own category so users can turn it into an error
    (``-W error::implicit_if.data.FixtureFallbackWarning``) in CI that must
    run on real data.
    """
