"""The pointwise judge's speed against named baselines, in one process, and against the machine.

  shared-prefix bf16   what ships: bfloat16 body, the grading prompts' shared prefix (system
                       message and header) run once per batch, label rows in float32
  left-padded bf16     baseline: the same batches as one left-padded pass each (no prefix reuse)
  left-padded fp32     baseline: as above in float32 (the precision a CPU without bfloat16 runs)

Each variant grades the same validation answers (length-sorted batches of the spec's size),
alternating, `--repeats` times; medians reported. Agreement: the largest margin difference from
float32 and how many pair decisions change. Achieved GFLOP/s counts 2 x (non-embedding
parameters) per token actually run plus attention, and is given as a fraction of this machine's
measured matmul rate in the same precision (benchmarks/matmul_rate.py, measured in this run).

    python benchmarks/judge_speed.py --answers 64 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from matmul_rate import rate

import implicit_if.backends.next_token as next_token
import implicit_if.judging.judges as judges
from implicit_if.judging import load_judge_spec
from implicit_if.judging.validate import load_pairs

RESULTS = Path(__file__).resolve().parent / "results"


def body_flops(model, rows: list[list[int]], shared: int) -> float:
    """FLOPs of the body over the tokens run: weights (2 per parameter per token) plus attention scores."""
    config = model.config
    embedding = model.get_input_embeddings().weight.numel()
    params = sum(p.numel() for p in model.base_model.parameters()) - embedding
    head_dim = config.hidden_size // config.num_attention_heads
    attention_width = 2 * 2 * config.num_attention_heads * head_dim * config.num_hidden_layers  # QK^T and AV
    tokens = sum(len(r) - shared for r in rows) + (shared if shared else 0)
    context = sum(sum(range(len(r))) for r in rows)
    return 2.0 * params * tokens + attention_width * context


def run_variant(judge, contexts: list[str], batch: int, shared_prefix: bool) -> tuple[float, list[float], float]:
    next_token.MIN_SHARED_PREFIX = 16 if shared_prefix else 10**9
    order = sorted(range(len(contexts)), key=lambda k: len(contexts[k]))
    margins = [0.0] * len(contexts)
    flops = 0.0
    start = time.perf_counter()
    for begin in range(0, len(order), batch):
        chunk = order[begin : begin + batch]
        texts = [contexts[k] for k in chunk]
        rows = [judge.tokenizer(t)["input_ids"] for t in texts]
        shared = min(next_token._common_prefix_length(rows), min(len(r) for r in rows) - 1) if shared_prefix else 0
        flops += body_flops(judge.backend.model, rows, shared if shared >= next_token.MIN_SHARED_PREFIX else 0)
        for k, m in zip(chunk, judge.backend.label_margins(texts, judge.label_token_ids)):
            margins[k] = m
    return time.perf_counter() - start, margins, flops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--judge", default="qwen2.5-coder-1.5b-pointwise")
    parser.add_argument("--answers", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    pairs = load_pairs("dev")
    items = [(p.instruction, answer) for p in pairs for answer in (p.better, p.worse)][: args.answers]
    peaks = {
        name: rate(512, 1536, 8960, dtype, 5)
        for name, dtype in (("bfloat16", torch.bfloat16), ("float32", torch.float32))
    }
    variants = {
        "shared-prefix bf16": ("bfloat16", True),
        "left-padded bf16": ("bfloat16", False),
        "left-padded fp32": ("float32", False),
    }
    loaded = {
        dtype: judges.PointwiseJudge(load_judge_spec(args.judge, dtype=dtype)) for dtype in ("bfloat16", "float32")
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    margins: dict[str, list[float]] = {}
    flops: dict[str, float] = {}
    for _ in range(args.repeats):
        for name, (dtype, shared) in variants.items():
            judge = loaded[dtype]
            contexts = [judge.context(i, a) for i, a in items]
            seconds, margins[name], flops[name] = run_variant(judge, contexts, judge.spec.batch_size, shared)
            times[name].append(seconds)
    reference = margins["left-padded fp32"]
    rows = []
    for name, (dtype, _) in variants.items():
        median = statistics.median(times[name])
        achieved = flops[name] / median / 1e9
        diffs = [abs(a - b) for a, b in zip(margins[name], reference)]
        flips = sum(
            (margins[name][2 * i] > margins[name][2 * i + 1]) != (reference[2 * i] > reference[2 * i + 1])
            for i in range(len(items) // 2)
        )
        rows.append(
            {
                "variant": name,
                "seconds": round(median, 2),
                "s_per_answer": round(median / len(items), 3),
                "speedup_vs_fp32": round(statistics.median(times["left-padded fp32"]) / median, 2),
                "gflops": round(achieved, 1),
                "fraction_of_matmul_peak": round(achieved / peaks[dtype], 3),
                "max_margin_diff_vs_fp32": round(max(diffs), 4),
                "pair_decisions_changed": flips,
            }
        )
    result = {
        "judge": args.judge,
        "answers": len(items),
        "repeats": args.repeats,
        "matmul_gflops": {k: round(v, 1) for k, v in peaks.items()},
        "variants": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "judge_speed.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"# Pointwise judge speed: {args.judge}",
        "",
        f"{len(items)} validation answers (dev split), median of {args.repeats} alternating runs, 2 CPU threads; "
        f"matmul rate measured in the same run: bf16 {peaks['bfloat16']:.0f}, fp32 {peaks['float32']:.0f} GFLOP/s.",
        "`python benchmarks/judge_speed.py --answers N --repeats R`",
        "",
        "| variant | s / answer | speed-up vs fp32 | GFLOP/s | of matmul peak "
        "| max margin diff vs fp32 | pair decisions changed |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {r['variant']} | {r['s_per_answer']:.3f} | {r['speedup_vs_fp32']:.2f}x | {r['gflops']:.0f} | "
        f"{100 * r['fraction_of_matmul_peak']:.0f}% | {r['max_margin_diff_vs_fp32']:.3f} | "
        f"{r['pair_decisions_changed']} of {len(items) // 2} |"
        for r in rows
    ]
    (RESULTS / "judge_speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
