"""How long a leaderboard build takes: 100 synthetic entries x 805 instructions, 10,000 resamples.

Target (issue 4): at most 10 s on 2 cores for the whole build (check every folder, bootstrap,
render all five files). Baselines measured in the same run, on the same data:

- `scipy.stats.bootstrap, per entry`: one scipy call per board row, as a naive build would do
  (timed on a few rows and scaled to all rows, because the full run takes minutes);
- `scipy.stats.bootstrap, one vectorised call`: scipy on the whole (entries x instructions)
  matrix at once (`batch=1000` to bound memory).

Usage: python benchmarks/leaderboard_build.py [--entries 100] [--items 805] [--runs 3]
Writes benchmarks/results/leaderboard_build.md (and prints the same table).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # the synthetic submission writer shared with the tests

from leaderboard_fixtures import synthetic_instructions, write_submission  # noqa: E402

from implicit_if.leaderboard.board import BootstrapSettings  # noqa: E402
from implicit_if.leaderboard.build import build_boards  # noqa: E402
from implicit_if.leaderboard.evaluation_sets import EvaluationSets  # noqa: E402
from implicit_if.statistics import paired_bootstrap_means  # noqa: E402

RESAMPLES = 10_000


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the check's worker processes)."""
    import resource

    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def timed(function) -> tuple[float, object]:
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def timed_cpu(function) -> tuple[float, float, object]:
    """(wall seconds, CPU seconds of this process and its workers, result).

    CPU time shows the cost on a shared machine."""
    wall, cpu = time.perf_counter(), _cpu_seconds()
    result = function()
    return time.perf_counter() - wall, _cpu_seconds() - cpu, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100)
    parser.add_argument("--items", type=int, default=805)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "leaderboard_build.md")
    args = parser.parse_args()
    from scipy.stats import bootstrap

    instructions = synthetic_instructions(args.items)
    sets = EvaluationSets(lambda dataset, source: instructions)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "submissions"
        # 50 systems x 2 seeds by default: seed aggregation and neighbour comparisons are exercised.
        for k in range(args.entries):
            write_submission(
                root,
                f"system{k // 2:03d}-seed{k % 2}",
                instructions,
                system=f"system{k // 2:03d}",
                seed=k % 2,
                win_probability=float(rng.uniform(0.05, 0.9)),
                rng_seed=k,
                distractors=5,
            )
        # Cold: an empty recomputation cache, so every entry's LC GLM is fitted and its outputs are
        # re-scanned by the leakage detectors (the judging and leakage modules' code, not the board's).
        os.environ["IMPLICIT_IF_CACHE"] = str(Path(tmp) / "cache")
        (Path(tmp) / "empty").mkdir()
        build_boards(Path(tmp) / "empty", BootstrapSettings(n_resamples=200), sets)  # imports, not timed
        import pyarrow.json  # noqa: F401  (also imported lazily by the build)

        import implicit_if.leakage  # noqa: F401
        import implicit_if.winrate  # noqa: F401

        cold_wall, cold_cpu, _ = timed_cpu(lambda: build_boards(root, BootstrapSettings(n_resamples=RESAMPLES), sets))
        builds, build_cpu = [], []
        for _ in range(args.runs):
            seconds, cpu_seconds, result = timed_cpu(
                lambda: build_boards(
                    root, BootstrapSettings(n_resamples=RESAMPLES), EvaluationSets(lambda d, s: instructions)
                )
            )
            builds.append(seconds)
            build_cpu.append(cpu_seconds)
        n_files = len(result.files)  # type: ignore[attr-defined]

    matrix = np.random.default_rng(1).choice([0.0, 0.5, 1.0], size=(args.entries, args.items), p=[0.5, 0.1, 0.4])
    ours = [
        timed(lambda: paired_bootstrap_means(matrix, n_resamples=RESAMPLES).intervals())[0] for _ in range(args.runs)
    ]
    few = 5
    per_row = [
        timed(
            lambda: [
                bootstrap(
                    (row,),
                    np.mean,
                    n_resamples=RESAMPLES,
                    method="BCa",
                    vectorized=True,
                    random_state=np.random.default_rng(0),
                )
                for row in matrix[:few]
            ]
        )[0]
        for _ in range(args.runs)
    ]
    per_entry_scaled = statistics.median(per_row) * args.entries / few
    vectorised, _ = timed(
        lambda: bootstrap(
            (matrix,),
            np.mean,
            n_resamples=RESAMPLES,
            method="BCa",
            axis=-1,
            vectorized=True,
            batch=1000,
            random_state=np.random.default_rng(0),
        )
    )
    build_median, ours_median = statistics.median(builds), statistics.median(ours)
    rows = [
        ("full build: check + bootstrap + 5 files (ours)", build_median, f"median of {args.runs}"),
        (
            "full build, CPU time incl. worker processes (ours)",
            statistics.median(build_cpu),
            f"median of {args.runs}",
        ),
        ("first build, empty cache: + 100 LC GLM fits + detector re-scans", cold_wall, "1 run"),
        ("first build, empty cache, CPU time", cold_cpu, "1 run"),
        ("statistics only: paired_bootstrap_means (ours)", ours_median, f"median of {args.runs}"),
        ("baseline: scipy.stats.bootstrap, one vectorised call", vectorised, "1 run"),
        (
            "baseline: scipy.stats.bootstrap, per entry",
            per_entry_scaled,
            f"{few} rows timed, scaled x{args.entries / few:.0f}",
        ),
    ]
    cpu = os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        "# Leaderboard build benchmark",
        "",
        f"`python benchmarks/leaderboard_build.py --entries {args.entries} --items {args.items} --runs {args.runs}`",
        "",
        "The full build (warm) reuses the cached LC fits and leakage re-scans of unchanged files, as "
        "every rebuild after the first does; the first build on an empty cache also pays those.",
        "",
        f"{args.entries} synthetic entries ({args.entries // 2} systems x 2 seeds) x {args.items} instructions, "
        f"each with outputs, annotations, leakage and ranking records (5 distractors); {RESAMPLES:,} BCa "
        f"resamples; {n_files} board files. Machine: {cpu} CPU cores, Python {platform.python_version()}, "
        f"numpy {np.__version__}; 1-minute load average {load:.1f} when done (other work shares the "
        "machine: wall times above the CPU times mean waiting for a core). Target: full build <= 10 s on 2 cores.",
        "",
        "| what | seconds | runs |",
        "| --- | ---: | --- |",
        *[f"| {name} | {seconds:.2f} | {runs} |" for name, seconds, runs in rows],
        "",
        f"Statistics speed-up: {vectorised / ours_median:.1f}x over scipy's vectorised call, "
        f"{per_entry_scaled / ours_median:.0f}x over per-entry scipy calls (same intervals: see "
        "tests/test_leaderboard_statistics.py).",
        f"Full build: {build_median:.1f} s wall, {statistics.median(build_cpu):.1f} s CPU: "
        f"{'within' if build_median <= 10 else 'over'} the 10 s target in wall time on this run; "
        f"first build on an empty cache: {cold_wall:.1f} s wall, {cold_cpu:.1f} s CPU.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
