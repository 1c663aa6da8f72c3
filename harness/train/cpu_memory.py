"""Keep freed memory in the process on Linux CPUs, so big tensors stop faulting in page by page.

glibc serves every allocation above 32 MB with a fresh `mmap` and returns it on `free`; the
next tensor of that size faults in again, one 4 KB page at a time, zeroed by the kernel. A
training step of Gemma 3 270M allocates gigabytes that way (the embedding gradient alone is
670 MB), and on 2 cores a third of the step went to the kernel. `mallopt(M_MMAP_MAX, 0)` makes
glibc serve large blocks from its heap and `M_TRIM_THRESHOLD` keeps freed heap memory, so the
same pages are reused. benchmarks/train_speed.py measures the effect in the same run.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
KEEP_BYTES = 2**31 - 1  # the largest trim threshold mallopt takes (an int): freed heap memory stays


def keep_freed_memory() -> bool:
    """Switch glibc to heap-only, never-trimmed allocation; False where that is not glibc on Linux."""
    if platform.system() != "Linux":
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, KEEP_BYTES))
