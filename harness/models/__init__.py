"""Models by name: embedded offline models, hub ids and local paths, resolved to a loadable directory."""

from .prepare import prepare_embedded, resolve_model
from .registry import EMBEDDED_MODELS, EmbeddedModel

__all__ = ["EMBEDDED_MODELS", "EmbeddedModel", "prepare_embedded", "resolve_model"]
