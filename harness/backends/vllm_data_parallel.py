"""Data parallelism for the vllm backend: one engine per device slice, each in its own process.

vLLM refuses `LLM(data_parallel_size=N)` in one process ("not supported ... and may hang"), and
lm-eval's own data parallelism runs its engines as Ray tasks, where the known hangs live (a Ray
placement group that never fills, or `ray.get` waiting on a worker that died; lm-eval issues
#1734, #2379, #2904). This path uses neither: it spawns N plain processes, gives each
`tensor_parallel_size` devices of its own (CUDA_VISIBLE_DEVICES), builds one ordinary engine in
each, splits every call's inputs into N contiguous shards and joins the answers in input order.
A worker that dies or raises fails the call at once with its error; nothing waits forever.
"""

from __future__ import annotations

import multiprocessing
import os
import traceback
from collections.abc import Sequence
from typing import Any

from .base import GenerationConfig, ScoredContinuation

# A worker that neither answers nor dies within this long is reported, not waited for.
CALL_TIMEOUT_S = float(os.environ.get("IMPLICIT_IF_VLLM_DP_TIMEOUT", "86400"))


def device_slices(data_parallel_size: int, tensor_parallel_size: int, visible: str | None) -> list[str | None]:
    """Each worker's CUDA_VISIBLE_DEVICES: consecutive groups of `tensor_parallel_size` devices.

    `visible` is the parent's CUDA_VISIBLE_DEVICES (None: devices 0..N-1). Without CUDA devices to
    split (a CPU engine), every worker gets None and keeps the parent's environment.
    """
    if visible is None:
        try:
            import torch

            count = torch.cuda.device_count()
        except ImportError:
            count = 0
        if count == 0:
            return [None] * data_parallel_size
        devices = [str(i) for i in range(count)]
    else:
        devices = [d for d in visible.split(",") if d.strip()]
    needed = data_parallel_size * tensor_parallel_size
    if len(devices) < needed:
        raise ValueError(
            f"data_parallel_size={data_parallel_size} x tensor_parallel_size={tensor_parallel_size} needs {needed} "
            f"devices, {len(devices)} visible: lower one of them or expose more devices"
        )
    return [
        ",".join(devices[i * tensor_parallel_size : (i + 1) * tensor_parallel_size]) for i in range(data_parallel_size)
    ]


def shards(n_items: int, n_shards: int) -> list[tuple[int, int]]:
    """Contiguous [start, end) ranges, as even as possible, in order (some may be empty)."""
    base, extra = divmod(n_items, n_shards)
    bounds, start = [], 0
    for index in range(n_shards):
        end = start + base + (1 if index < extra else 0)
        bounds.append((start, end))
        start = end
    return bounds


def _worker(devices: str | None, model: str, options: dict[str, Any], jobs: Any, results: Any) -> None:
    """One engine; answers (method, args) jobs until it receives None."""
    if devices is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = devices
    try:
        from .vllm import VLLMBackend

        backend = VLLMBackend(model, **options)
        results.put(("ready", None))
    except BaseException:  # noqa: BLE001 - reported to the parent, which raises it
        results.put(("error", traceback.format_exc()))
        return
    while (job := jobs.get()) is not None:
        method, args = job
        try:
            results.put(("ok", getattr(backend, method)(*args)))
        except BaseException:  # noqa: BLE001 - reported to the parent, which raises it
            results.put(("error", traceback.format_exc()))


class DataParallelVLLM:
    """The vllm backend's interface over N engines (see the module docstring)."""

    name = "vllm"

    def __init__(self, model: str, data_parallel_size: int, tensor_parallel_size: int = 1, **options: Any) -> None:
        from transformers import AutoTokenizer

        from ..models import resolve_model

        if data_parallel_size < 2:
            raise ValueError("DataParallelVLLM is for data_parallel_size >= 2; use VLLMBackend for one engine")
        self.model_id = model
        self.path = resolve_model(model)
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        self.data_parallel_size = data_parallel_size
        self.tensor_parallel_size = tensor_parallel_size
        slices = device_slices(data_parallel_size, tensor_parallel_size, os.environ.get("CUDA_VISIBLE_DEVICES"))
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: no inherited CUDA or engine state
        self._workers = []
        for devices in slices:
            jobs, results = context.Queue(), context.Queue()
            process = context.Process(
                target=_worker,
                args=(devices, self.path, {**options, "tensor_parallel_size": tensor_parallel_size}, jobs, results),
                daemon=True,
            )
            process.start()
            self._workers.append((process, jobs, results))
        try:
            for index in range(len(self._workers)):
                self._receive(index, "start")
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return (
            f"DataParallelVLLM(model={self.model_id!r}, data_parallel_size={self.data_parallel_size}, "
            f"tensor_parallel_size={self.tensor_parallel_size})"
        )

    def _receive(self, index: int, what: str) -> Any:
        import queue

        process, _, results = self._workers[index]
        waited = 0.0
        while True:
            try:
                status, payload = results.get(timeout=5.0)
                break
            except queue.Empty:
                waited += 5.0
                if not process.is_alive():
                    raise RuntimeError(
                        f"vLLM data-parallel worker {index} died (exit code {process.exitcode}) during {what}"
                    ) from None
                if waited >= CALL_TIMEOUT_S:
                    raise RuntimeError(
                        f"vLLM data-parallel worker {index} gave no answer to {what} within {CALL_TIMEOUT_S:g}s "
                        "(IMPLICIT_IF_VLLM_DP_TIMEOUT)"
                    ) from None
        if status == "error":
            raise RuntimeError(f"vLLM data-parallel worker {index} failed during {what}:\n{payload}")
        return payload

    def _map(self, method: str, columns: Sequence[Sequence[Any]], *extra: Any) -> list[Any]:
        """Run `method` on contiguous shards of the parallel `columns`, joined in input order."""
        ranges = shards(len(columns[0]), len(self._workers))
        busy = []
        for index, (start, end) in enumerate(ranges):
            if end > start:
                self._workers[index][1].put((method, (*[list(c[start:end]) for c in columns], *extra)))
                busy.append(index)
        joined: list[Any] = []
        for index in busy:
            joined.extend(self._receive(index, method))
        return joined

    def generate(self, prompts: Sequence[str], config: GenerationConfig = GenerationConfig()) -> list[str]:
        return self._map("generate", [prompts], config)

    def score(
        self, contexts: Sequence[str], continuations: Sequence[str], add_eos: bool = True
    ) -> list[ScoredContinuation]:
        if len(contexts) != len(continuations):
            raise ValueError("score() needs as many contexts as continuations")
        return self._map("score", [contexts, continuations], add_eos)

    def score_tokens(
        self, pairs: Sequence[tuple[list[int], list[int]]], *, batch_size: int | None = None, progress: bool = False
    ) -> list[list[float]]:
        return self._map("score_tokens", [pairs])

    def close(self) -> None:
        for process, jobs, _ in self._workers:
            if process.is_alive():
                jobs.put(None)
        for process, _, _ in self._workers:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
        self._workers = []

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass
