"""Full fine-tuning speed of Gemma 3 270M on this CPU: the trainer as it was (baseline) against today's.

The baseline is the trainer of commit 3cc4210 (unchanged until f0c6794), run from a git worktree
of that commit in the same session: logits of every target position over Gemma's 262k-token
vocabulary, then cross-entropy, 8,192-token micro-batches, and fresh memory for every large
tensor. Today's trainer: the fused chunked output-layer loss (train/loss.py), 1,024-token
micro-batches (attention cost grows with the packed row's length), reused buffers and glibc told
to keep freed memory (train/cpu_memory.py). Both train the same recipe on the same data (the
LIMA fixture, response tuning, 8 examples a step, 512 tokens, bf16), as separate processes, in
turn, `--repeats` times; tokens/s is the median over the timed steps (all but the first).

MFU is model FLOPs per second over the machine's bf16 matmul rate, measured in the same run on
the shapes the model runs: 6 x (parameters outside the embedding) per token, plus 6 x the
output layer (vocabulary x width) per *target* token (only those need logits), plus the causal
attention inside each example (block-diagonal packing attends within examples only).

    python benchmarks/train_speed.py --steps 4 --repeats 2
Writes benchmarks/results/train_speed.md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from matmul_rate import rate  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
BASELINE_COMMIT = "f0c6794"
COMMON = [
    "data.max_length=512",
    "training.batch_size=8",
    "training.precision=bf16",
    "training.checkpoint_every=null",
    "data.offline=true",
]
VARIANTS = {
    "baseline: trainer of 3cc4210 (full logits)": (BASELINE_COMMIT, "gemma-3-270m-lima-response", []),
    "today: fused loss, 1,024-token micro-batches": (
        None,
        "gemma-3-270m-lima-response",
        ["training.micro_batch_tokens=1024"],
    ),
    "today, frozen embeddings (not the study's setting)": (
        None,
        "gemma-3-270m-lima-response",
        ["training.micro_batch_tokens=1024", "training.freeze_embeddings=true"],
    ),
}


def baseline_tree(commit: str, into: Path) -> Path:
    """A package folder named implicit_if holding the old commit's source, to put first on sys.path."""
    subprocess.run(
        ["git", "-C", str(REPO), "worktree", "add", "--detach", str(into / "tree"), commit],
        check=True,
        capture_output=True,
    )
    (into / "path").mkdir()
    (into / "path" / "implicit_if").symlink_to(into / "tree" / "harness")
    return into / "path"


def run(variant: tuple[str | None, str, list[str]], steps: int, scratch: Path, old_path: Path | None) -> dict:
    commit, recipe, extra = variant
    out = Path(tempfile.mkdtemp(dir=scratch))
    env = dict(os.environ, IMPLICIT_IF_OFFLINE="1", HF_HUB_OFFLINE="1")
    if commit is not None:
        env["PYTHONPATH"] = str(old_path)
    command = [
        sys.executable,
        "-m",
        "implicit_if.train",
        "--recipe",
        recipe,
        "--output",
        str(out / "model"),
        "--quiet",
        f"training.max_steps={steps}",
        *COMMON,
        *extra,
    ]
    subprocess.run(command, check=True, env=env, capture_output=True)
    metrics = [json.loads(line) for line in (out / "model" / "metrics.jsonl").read_text().splitlines()]
    provenance = json.loads((out / "model" / "training_provenance.json").read_text())
    timed = metrics[1:]
    targets = [b["target_tokens"] - a["target_tokens"] for a, b in zip(metrics, metrics[1:])]
    seconds = [m["step_tokens"] / m["tokens_per_s"] for m in timed]
    return {
        "tokens_per_s": sum(m["step_tokens"] for m in timed) / sum(seconds),
        "tokens": sum(m["step_tokens"] for m in timed),
        "targets": sum(targets),
        "seconds": sum(seconds),
        "loss": [round(m["loss"], 4) for m in metrics],
        "loss_path": provenance["training"].get("loss", "full logits"),
        "code": commit or "working tree",
    }


def flops_per_token(config: dict, target_fraction: float, mean_context: float, frozen_output: bool = False) -> float:
    """Model FLOPs per token of a training step; a frozen (tied) output layer skips its weight gradient (4x, not 6x)."""
    width, vocab, layers = config["hidden_size"], config["vocab_size"], config["num_hidden_layers"]
    heads, head_dim, kv = config["num_attention_heads"], config["head_dim"], config["num_key_value_heads"]
    per_layer = width * heads * head_dim * 2 + width * kv * head_dim * 2 + 3 * width * config["intermediate_size"]
    attention = 2 * 2 * layers * heads * head_dim * mean_context / 2  # QK^T and AV, causal: half the context
    head = (4 if frozen_output else 6) * vocab * width * target_fraction
    return 6 * layers * per_layer + head + 3 * attention


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4, help="optimizer steps per run (the first is not timed)")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    from implicit_if.models import resolve_model

    config = json.loads((Path(resolve_model("gemma-3-270m")) / "config.json").read_text())
    peak = statistics.median(
        [
            rate(1024, 640, 2048, torch.bfloat16, 5),
            rate(512, 640, 262144, torch.bfloat16, 3),
            rate(2048, 2048, 2048, torch.bfloat16, 5),
        ]
    )
    samples: dict[str, list[dict]] = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        old_path = baseline_tree(BASELINE_COMMIT, scratch)
        try:
            for _repeat in range(args.repeats):
                for name, variant in VARIANTS.items():
                    samples[name].append(run(variant, args.steps, scratch, old_path))
                    print(f"{name}: {samples[name][-1]['tokens_per_s']:.1f} tokens/s", flush=True)
        finally:
            subprocess.run(
                ["git", "-C", str(REPO), "worktree", "remove", "--force", str(scratch / "tree")], check=False
            )
    rows = []
    for name, runs in samples.items():
        tps = statistics.median(r["tokens_per_s"] for r in runs)
        fraction = sum(r["targets"] for r in runs) / sum(r["tokens"] for r in runs)
        per_token = flops_per_token(config, fraction, mean_context=150.0, frozen_output="frozen" in name)
        rows.append(
            {
                "variant": name,
                "tokens_per_s": round(tps, 1),
                "gflops": round(tps * per_token / 1e9, 1),
                "mfu": round(tps * per_token / (peak * 1e9), 3),
                "runs": runs,
            }
        )
    base = rows[0]["tokens_per_s"]
    report = {
        "command": f"python benchmarks/train_speed.py --steps {args.steps} --repeats {args.repeats}",
        "threads": torch.get_num_threads(),
        "bf16_matmul_gflops": round(peak, 1),
        "rows": rows,
    }
    lines = [
        "# Full fine-tuning of Gemma 3 270M on this CPU: today's trainer against the trainer of 3cc4210",
        "",
        f"Command: `{report['command']}`. {torch.get_num_threads()} threads; bf16 matmul rate measured in the same run "
        f"on the model's own shapes (median of [1024, 640] x [640, 2048], [512, 640] x [640, 262144], 2048^3): "
        f"**{peak:.0f} GFLOP/s**. Same recipe and data for all (LIMA fixture, response tuning, 8 examples a step, "
        f"512 tokens, bf16); median of {args.repeats} runs, {args.steps - 1} timed steps each.",
        "",
        "| variant | tokens/s | vs baseline | model GFLOP/s | MFU (of measured bf16 rate) | loss path |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
        *[
            f"| {r['variant']} | {r['tokens_per_s']:.1f} | {r['tokens_per_s'] / base:.2f}x | {r['gflops']:.0f} | "
            f"{100 * r['mfu']:.0f}% | {r['runs'][0]['loss_path']} |"
            for r in rows
        ],
        "",
        "Losses per step agree between the baseline and today's full fine-tuning (same data order, same "
        "seed): " + "; ".join(f"{r['variant'].split(':')[0]} {r['runs'][0]['loss']}" for r in rows[:2]) + ".",
        "",
        "The frozen-embeddings row counts 4x (not 6x) the output layer per target token: "
        "its weight gradient is not computed.",
        "",
    ]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "train_speed.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / "train_speed.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
