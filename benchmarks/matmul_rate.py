"""This machine's matrix-multiply rate in float32 and bfloat16: the ceiling every model stage is
measured against (a judge's achieved FLOP/s is reported as a fraction of it).

Square GEMMs and the shapes a 1.5B judge's body runs ([tokens, 1536] x [1536, 8960]); each shape
is timed `--repeats` times after a warm-up, median reported. Results go to
benchmarks/results/matmul_rate.md and .json.

    python benchmarks/matmul_rate.py --repeats 5
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"
SHAPES = [(2048, 2048, 2048), (512, 1536, 8960), (2048, 1536, 8960), (512, 8960, 1536)]


def rate(m: int, k: int, n: int, dtype: torch.dtype, repeats: int) -> float:
    """Median GFLOP/s of an [m, k] x [k, n] product."""
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(m, k, generator=generator).to(dtype)
    b = torch.randn(k, n, generator=generator).to(dtype)
    torch.mm(a, b)  # warm-up: kernels chosen, caches filled
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - start)
    return 2 * m * k * n / statistics.median(times) / 1e9


def measure(repeats: int) -> dict:
    rows = []
    for m, k, n in SHAPES:
        row = {"shape": f"[{m}, {k}] x [{k}, {n}]"}
        for name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
            row[f"{name}_gflops"] = round(rate(m, k, n, dtype, repeats), 1)
        rows.append(row)
    return {
        "machine": {
            "processor": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
        },
        "repeats": repeats,
        "shapes": rows,
        "peak_gflops": {name: max(r[f"{name}_gflops"] for r in rows) for name in ("float32", "bfloat16")},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    result = measure(args.repeats)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "matmul_rate.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Matrix-multiply rate of this machine",
        "",
        f"torch {result['machine']['torch']}, {result['machine']['threads']} threads, median of "
        f"{result['repeats']} runs after a warm-up (`python benchmarks/matmul_rate.py`).",
        "",
        "| shape | float32 GFLOP/s | bfloat16 GFLOP/s |",
        "| --- | ---: | ---: |",
    ]
    lines += [f"| {r['shape']} | {r['float32_gflops']:,.1f} | {r['bfloat16_gflops']:,.1f} |" for r in result["shapes"]]
    lines += [
        "",
        f"Peak: float32 {result['peak_gflops']['float32']:,.1f} GFLOP/s, "
        f"bfloat16 {result['peak_gflops']['bfloat16']:,.1f} GFLOP/s.",
        "",
    ]
    (RESULTS / "matmul_rate.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
