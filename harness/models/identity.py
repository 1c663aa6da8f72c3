"""What names a model's weights on a public board: the embedded model a folder was prepared from, or a
digest of a local folder's safetensors files (the 'sha256:...' revision of the submission schema)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .registry import EMBEDDED_MODELS

PROVENANCE_FILE = "implicit_if_provenance.json"  # written by `prepare_embedded` into each prepared folder


def embedded_identity(model: str) -> tuple[str, str] | None:
    """(embedded name, 'sha256:<digest of its GGUF file>') for an embedded model name or its prepared folder."""
    name = model
    provenance = Path(model) / PROVENANCE_FILE
    if provenance.is_file():
        try:
            name = json.loads(provenance.read_text(encoding="utf-8"))["name"]
        except (ValueError, KeyError, TypeError):
            return None
    spec = EMBEDDED_MODELS.get(name)
    return None if spec is None else (name, spec.revision)


def weights_digest(folder: Path) -> str | None:
    """'sha256:...' over a local model folder's safetensors files (names and bytes), or None."""
    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        return None
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return f"sha256:{digest.hexdigest()}"
