"""Independent per-entry work (checking a folder, refitting an entry's LC GLM) spread over the CPU cores.

Forked workers inherit the function and the items, with whatever those have loaded (evaluation sets,
annotation tables), so only an index crosses the process boundary and a closure needs no pickling.
Each result must not depend on which process computes it: the board is the serial one, byte for byte.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

from tqdm import tqdm

Item = TypeVar("Item")
Result = TypeVar("Result")

# From this many items on, in parallel processes (a first check of an entry fits its LC GLM with
# cross-validation and re-runs the detectors: ~0.1 s of CPU each; forking costs more below).
PARALLEL_FROM = 16
_job: tuple[Callable[[Any], Any], Sequence[Any]] | None = None  # what forked workers inherit


def _run(position: int) -> Any:
    assert _job is not None
    function, items = _job
    return function(items[position])


def parallel_map(
    function: Callable[[Item], Result], items: Sequence[Item], desc: str | None = None
) -> Iterator[Result]:
    """`function(item)` for every item, in order (a progress bar when `desc` is given and stderr is a terminal)."""
    global _job
    workers = min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1, 8)
    bar = dict(desc=desc, unit="entry", disable=None if desc else True, leave=False, total=len(items))
    if len(items) < PARALLEL_FROM or workers < 2 or "fork" not in multiprocessing.get_all_start_methods():
        yield from tqdm(map(function, items), **bar)
        return
    _job = (function, items)
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            yield from tqdm(pool.map(_run, range(len(items)), chunksize=max(1, len(items) // (4 * workers))), **bar)
    finally:
        _job = None
