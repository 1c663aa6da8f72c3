"""What differs between transformers releases, asked of the model's own signatures.

One place for these probes so every fast path (scorer, judge, trainer) adapts the same way, and
none of them catches a TypeError that could hide a real error inside ``forward``. Imports nothing
of ours, so any module may use it without a cycle.
"""

from __future__ import annotations

import inspect
from typing import Any


def accepts_logits_to_keep(model: Any) -> bool:
    """Recent causal LMs can project only chosen positions onto the vocabulary (saves memory and
    time on big vocabularies)."""
    return "logits_to_keep" in inspect.signature(model.forward).parameters


def cache_keyword(model: Any) -> str:
    """The name under which this model's forward takes a KV cache: transformers 5.24 renamed
    ``past_key_values`` to ``cache`` (the old name warns there and goes in 5.40)."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def output_cache(output: Any) -> Any:
    """The KV cache a forward returned, by the field name its release uses (``cache`` from 5.24,
    ``past_key_values`` before); the old name is a warning property on new releases."""
    fields = getattr(output, "__dataclass_fields__", {})
    return output.cache if "cache" in fields else output.past_key_values
