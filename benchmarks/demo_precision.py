"""The demo's three stages in float32 (baseline) and bfloat16, on the same inputs, in one process.

`implicit-if demo` and `implicit-if eval` run with `--dtype auto`: bfloat16 where the CPU has
bfloat16 units (AMX or AVX-512 BF16), float32 elsewhere. This measures what that buys and costs:

  judge       SmolLM2-135M-Instruct scoring the two labels for reference-vs-other-answer pairs
              (both orders), length-sorted batches of the spec's batch size;
  generate    Gemma 3 270M, greedy, every prompt in one batch;
  rank        Gemma 3 270M, the study's response ranking (K=5 distractors), fast scorer.

Precisions alternate, `--repeats` times each; medians of wall time. Agreement is reported beside
the speed: the judge's largest preference difference, the share of identical generations, and
the ranking accuracy under each precision. Results go to benchmarks/results/demo_precision.md
and .json.

    python benchmarks/demo_precision.py --instructions 32 --max-new-tokens 64 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from implicit_if.backends import GenerationConfig
from implicit_if.backends.hf import HFBackend, cpu_computes_bfloat16
from implicit_if.data import load_pairs
from implicit_if.generation import build_prompts
from implicit_if.judging import load_judge_spec
from implicit_if.judging.judges import Comparison, LocalJudge
from implicit_if.judging.prompt import pair_probability
from implicit_if.ranking import rank, summarize

RESULTS = Path(__file__).resolve().parent / "results"
PRECISIONS = ("float32", "bfloat16")


def judge_stage(pairs: list[dict[str, Any]], dtype: str) -> Callable[[], list[float]]:
    judge = LocalJudge(load_judge_spec("smollm2-local", dtype=dtype))
    comparisons = []
    for pair, other in zip(pairs, pairs[1:] + pairs[:1]):  # another instruction's answer: a real, different text
        comparisons += [
            Comparison("", pair["instruction"], pair["response"], other["response"]),
            Comparison("", pair["instruction"], other["response"], pair["response"]),
        ]
    contexts = sorted((judge.context(c) for c in comparisons), key=len)
    step = judge.spec.batch_size

    def run() -> list[float]:
        scored = [
            s for start in range(0, len(contexts), step) for s in judge.label_logprobs(contexts[start : start + step])
        ]
        return [pair_probability(first, second) for first, second in scored]

    return run


def generate_stage(pairs: list[dict[str, Any]], dtype: str, max_new_tokens: int) -> Callable[[], list[str]]:
    backend = HFBackend("gemma-3-270m", device="cpu", dtype=dtype, batch_size=len(pairs), progress=False)
    prompts = build_prompts(pairs, "tulu", None)
    return lambda: backend.generate(prompts, GenerationConfig(max_new_tokens=max_new_tokens))


def rank_stage(pairs: list[dict[str, Any]], dtype: str) -> Callable[[], float]:
    backend = HFBackend("gemma-3-270m", device="cpu", dtype=dtype, progress=False)

    def run() -> float:
        records = rank(backend, pairs, k=5, seed=0, fmt="tulu", batch_size=8)
        return summarize(records, seed=0)["response_ranking"]["estimate"]

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instructions", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    pairs = load_pairs("offline_instructions", offline=True, limit=args.instructions)
    stages = {
        "judge": {p: judge_stage(pairs, p) for p in PRECISIONS},
        "generate": {p: generate_stage(pairs, p, args.max_new_tokens) for p in PRECISIONS},
        "rank": {p: rank_stage(pairs, p) for p in PRECISIONS},
    }
    times: dict[str, dict[str, list[float]]] = {s: {p: [] for p in PRECISIONS} for s in stages}
    answers: dict[str, dict[str, Any]] = {s: {} for s in stages}
    for _ in range(args.repeats):
        for stage, runs in stages.items():
            for precision in PRECISIONS:
                start = time.perf_counter()
                answers[stage][precision] = runs[precision]()
                times[stage][precision].append(time.perf_counter() - start)

    medians = {s: {p: statistics.median(t) for p, t in by.items()} for s, by in times.items()}
    judge32, judge16 = answers["judge"]["float32"], answers["judge"]["bfloat16"]
    gen32, gen16 = answers["generate"]["float32"], answers["generate"]["bfloat16"]
    agreement = {
        "judge": (
            f"largest preference difference {max(abs(a - b) for a, b in zip(judge32, judge16)):.3f} "
            f"over {len(judge32)} comparisons"
        ),
        "generate": f"{sum(a == b for a, b in zip(gen32, gen16))}/{len(gen32)} generations identical",
        "rank": (
            f"accuracy {100 * answers['rank']['float32']:.1f}% (float32) "
            f"vs {100 * answers['rank']['bfloat16']:.1f}% (bfloat16)"
        ),
    }
    record = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(),
            "bfloat16_units": cpu_computes_bfloat16(),
            "torch": torch.__version__,
        },
        "args": vars(args),
        "median_seconds": medians,
        "all_seconds": times,
        "agreement": agreement,
    }
    lines = [
        "# The demo's stages: float32 (baseline) vs bfloat16",
        "",
        f"`python benchmarks/demo_precision.py --instructions {args.instructions} "
        f"--max-new-tokens {args.max_new_tokens} "
        f"--repeats {args.repeats}`; {torch.get_num_threads()} threads, bfloat16 units: {cpu_computes_bfloat16()}, "
        f"torch {torch.__version__}. Median wall seconds of {args.repeats} alternating runs.",
        "",
        "| stage | float32 s | bfloat16 s | speed-up | agreement |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for stage in stages:
        f32, b16 = medians[stage]["float32"], medians[stage]["bfloat16"]
        lines.append(f"| {stage} | {f32:.1f} | {b16:.1f} | {f32 / b16:.2f}x | {agreement[stage]} |")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "demo_precision.md").write_text("\n".join(lines) + "\n")
    (RESULTS / "demo_precision.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
