"""Models by name: embedded offline models, hub ids and local paths, resolved to a loadable directory."""

from .registry import EMBEDDED_MODELS, EmbeddedModel, resolve_model
from .prepare import prepare_embedded

__all__ = ["EMBEDDED_MODELS", "EmbeddedModel", "prepare_embedded", "resolve_model"]
