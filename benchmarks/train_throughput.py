"""Training throughput of the bundled trainer against the transformers Trainer with padding.

Same randomly initialised Llama-style model (same seed), same tokenized examples (our Tulu
masking), same examples per optimizer step, same sequence length, optimizer, schedule and
precision (bf16 on GPU). Only the batching differs: ours packs examples into padding-free rows
(attention isolated per example, logits only at target positions); the baseline pads each
micro-batch to its longest example, the usual `Trainer` + `DataCollatorForSeq2Seq` set-up.

Reported: tokens/s over real (non-padding) tokens and model FLOPs utilisation (MFU, when the
device's peak is known). Set-up costs cancel: each trainer runs W warm-up steps, and again
W + K steps; the K-step difference is timed. Runs alternate and repeat; medians are reported.

Usage (GPU, ~0.5B model):
    python benchmarks/train_throughput.py --size 0.5b --max-length 2048 --batch-size 64 --per-device 8
Usage (CPU smoke):
    python benchmarks/train_throughput.py --size tiny --max-length 512 --batch-size 8 --per-device 8
Writes benchmarks/results/train_throughput-<device>-<size>.{md,json} (and prints the table).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent

SIZES = {  # Llama-style shapes; vocabulary from the SmolLM2 tokenizer (49,152)
    "tiny": {
        "hidden_size": 64,
        "intermediate_size": 192,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
    },
    "0.5b": {
        "hidden_size": 1536,
        "intermediate_size": 4096,
        "num_hidden_layers": 16,
        "num_attention_heads": 12,
        "num_key_value_heads": 4,
    },
    "1b": {
        "hidden_size": 2048,
        "intermediate_size": 5632,
        "num_hidden_layers": 16,
        "num_attention_heads": 16,
        "num_key_value_heads": 8,
    },
}
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0}  # dense, per GPU


def recipe_for(args: argparse.Namespace, steps: int):
    from implicit_if.train import Recipe

    return Recipe.model_validate(
        {
            "name": f"throughput-{args.size}",
            "model": {
                "init": "random",
                "tokenizer": args.tokenizer,
                "attn_implementation": args.attn,
                "gradient_checkpointing": args.gradient_checkpointing,
                "config": {
                    "model_type": "llama",
                    "max_position_embeddings": max(args.max_length, 2048),
                    "tie_word_embeddings": False,
                    **SIZES[args.size],
                },
            },
            "data": {
                "dataset": args.dataset,
                "adaptation": "instruction",
                "max_length": args.max_length,
                "offline": args.offline,
            },
            "training": {
                "max_steps": steps,
                "batch_size": args.batch_size,
                "micro_batch_tokens": args.micro_batch_tokens or args.max_length * args.per_device,
                "learning_rate": 1e-5,
                "warmup_ratio": 0.0,
                "seed": 0,
                "precision": "auto",
            },
        }
    )


def run_ours(args: argparse.Namespace, steps: int) -> tuple[float, float, int]:
    """(wall s, process CPU s, real tokens) of a whole run of `steps` steps."""
    from implicit_if.train import train

    with tempfile.TemporaryDirectory() as out:
        wall, cpu = time.perf_counter(), time.process_time()
        result = train(recipe_for(args, steps), Path(out) / "model", progress=False)
        return time.perf_counter() - wall, time.process_time() - cpu, result.tokens_seen


def pad_collator(pad_id: int, log: list[int]):
    def collate(rows: list[dict]) -> dict[str, torch.Tensor]:
        width = max(len(r["input_ids"]) for r in rows)
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        labels = torch.full((len(rows), width), -100, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            n = len(r["input_ids"])
            ids[i, :n], labels[i, :n], mask[i, :n] = torch.tensor(r["input_ids"]), torch.tensor(r["labels"]), 1
        log.append(int(mask.sum()))
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}

    return collate


def run_trainer(args: argparse.Namespace, steps: int) -> tuple[float, float, int]:
    """The baseline: transformers Trainer, right-padded micro-batches of `per_device` examples."""
    from transformers import Trainer, TrainingArguments

    from implicit_if.train.examples import load_training_data
    from implicit_if.train.modeling import build_model, choose_attention, load_tokenizer

    recipe = recipe_for(args, steps)
    wall, cpu = time.perf_counter(), time.process_time()
    tokenizer = load_tokenizer(recipe.model)
    data = load_training_data(recipe.data, tokenizer)
    device_type = "cuda" if torch.cuda.is_available() else "cpu"
    model = build_model(recipe.model, tokenizer, choose_attention(args.attn, device_type), 0)
    rows = [{"input_ids": e.input_ids, "labels": e.labels} for e in data.examples]
    tokens: list[int] = []
    with tempfile.TemporaryDirectory() as out:
        settings = TrainingArguments(
            output_dir=out,
            max_steps=steps,
            per_device_train_batch_size=args.per_device,
            gradient_accumulation_steps=max(1, args.batch_size // args.per_device),
            learning_rate=1e-5,
            lr_scheduler_type="linear",
            warmup_steps=0,
            weight_decay=0.0,
            optim="adamw_torch",
            seed=0,
            bf16=device_type == "cuda",
            use_cpu=device_type == "cpu",
            report_to="none",
            save_strategy="no",
            logging_strategy="no",
            disable_tqdm=True,
            remove_unused_columns=False,
            dataloader_num_workers=0,
            gradient_checkpointing=args.gradient_checkpointing,
        )
        Trainer(
            model=model, args=settings, train_dataset=rows, data_collator=pad_collator(tokenizer.eos_token_id, tokens)
        ).train()
    return time.perf_counter() - wall, time.process_time() - cpu, sum(tokens)


def model_flops_per_token(args: argparse.Namespace) -> tuple[float, int]:
    """6 x parameters (without the input embedding) + causal attention, per real token; and the parameter count."""
    from implicit_if.train.examples import load_training_data
    from implicit_if.train.modeling import load_tokenizer

    shape = SIZES[args.size]
    recipe = recipe_for(args, 1)
    tokenizer = load_tokenizer(recipe.model)
    lengths = [len(e.input_ids) for e in load_training_data(recipe.data, tokenizer).examples]
    h, layers, inter = shape["hidden_size"], shape["num_hidden_layers"], shape["intermediate_size"]
    kv = h * shape["num_key_value_heads"] // shape["num_attention_heads"]
    per_layer = h * h * 2 + h * kv * 2 + 3 * h * inter
    params = layers * per_layer + len(tokenizer) * h  # + lm_head
    mean_context = sum(n * n for n in lengths) / (2 * sum(lengths))
    return 6 * params + 6 * layers * h * mean_context, params + len(tokenizer) * h


def mfu_text(mfu: float | None) -> str:
    return "n/a (no known peak)" if mfu is None else f"{100 * mfu:.1f}%"


def device_name() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return (
        f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch threads {torch.get_num_threads()})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="tiny")
    parser.add_argument("--dataset", default="lima")
    parser.add_argument("--tokenizer", default="smollm2-135m-instruct", help="embedded name, hub id or local path")
    parser.add_argument(
        "--offline", action=argparse.BooleanOptionalAction, default=True, help="fixture data (default) or the hub"
    )
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=8, help="examples per optimizer step (both trainers)")
    parser.add_argument(
        "--per-device",
        type=int,
        default=8,
        help="baseline micro-batch size (examples); ours packs max_length x this many tokens",
    )
    parser.add_argument("--micro-batch-tokens", type=int, default=None)
    parser.add_argument("--attn", default="sdpa")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument(
        "--warmup-steps", type=int, default=1, help="0 skips the subtraction (quick smoke runs; set-up then counts)"
    )
    parser.add_argument("--timed-steps", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--peak-tflops", type=float, default=None, help="device peak for MFU (default: known GPUs, bf16 dense)"
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1" if args.offline else "0")

    from tqdm.auto import tqdm

    trainers = {"implicit-if (packed)": run_ours, "transformers Trainer (padded)": run_trainer}
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in trainers}
    plan = [(name, repeat) for repeat in range(args.repeats) for name in trainers]
    for name, _ in tqdm(plan, desc="runs (warm-up + timed, alternating)"):
        run = trainers[name]
        short = run(args, args.warmup_steps) if args.warmup_steps else (0.0, 0.0, 0)  # 0: set-up is timed too
        long = run(args, args.warmup_steps + args.timed_steps)
        tokens = long[2] - short[2]
        samples[name].append(
            {
                "tokens": tokens,
                "wall_s": long[0] - short[0],
                "cpu_s": long[1] - short[1],
                "tokens_per_s": tokens / (long[0] - short[0]),
                "tokens_per_cpu_s": tokens / (long[1] - short[1]),
            }
        )

    flops_per_token, params = model_flops_per_token(args)
    name = device_name()
    peak = args.peak_tflops or next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)
    rows = []
    for trainer, runs in samples.items():
        tps = statistics.median(r["tokens_per_s"] for r in runs)
        rows.append(
            {
                "trainer": trainer,
                "tokens_per_s": tps,
                "tokens_per_cpu_s": statistics.median(r["tokens_per_cpu_s"] for r in runs),
                "achieved_tflops": tps * flops_per_token / 1e12,
                "mfu": tps * flops_per_token / (peak * 1e12) if peak else None,
                "runs": runs,
            }
        )
    ratio = rows[0]["tokens_per_s"] / rows[1]["tokens_per_s"]
    cpu_ratio = rows[0]["tokens_per_cpu_s"] / rows[1]["tokens_per_cpu_s"]
    command = "python " + " ".join([Path(sys.argv[0]).as_posix().split(str(REPO) + "/")[-1], *sys.argv[1:]])
    report = {
        "command": command,
        "device": name,
        "size": args.size,
        "parameters": params,
        "max_length": args.max_length,
        "batch_size": args.batch_size,
        "per_device": args.per_device,
        "attn": args.attn,
        "dataset": args.dataset,
        "flops_per_token": flops_per_token,
        "peak_tflops": peak,
        "ratio_tokens_per_s": ratio,
        "ratio_tokens_per_cpu_s": cpu_ratio,
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "rows": rows,
    }
    lines = [
        f"# Training throughput: {args.size} model ({params / 1e6:.1f}M parameters) on {name}",
        "",
        f"Command: `{command}`",
        "",
        f"Examples per step {args.batch_size}, max length {args.max_length}, baseline micro-batch {args.per_device}, "
        f"attention {args.attn}, data `{args.dataset}`; "
        f"{args.timed_steps} timed steps after {args.warmup_steps} warm-up, "
        f"median of {args.repeats} alternating runs.",
        "",
        "| trainer | tokens/s (wall) | tokens per CPU-second | achieved TFLOP/s | MFU |",
        "| --- | --- | --- | --- | --- |",
        *[
            f"| {r['trainer']} | {r['tokens_per_s']:,.0f} | {r['tokens_per_cpu_s']:,.0f} | "
            f"{r['achieved_tflops']:.4f} | {mfu_text(r['mfu'])} |"
            for r in rows
        ],
        "",
        f"Ratio (packed / padded): **{ratio:.2f}x** tokens/s (wall), {cpu_ratio:.2f}x tokens per CPU-second.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    device_tag = "gpu" if torch.cuda.is_available() else "cpu"
    out = args.out or REPO / "benchmarks" / "results" / f"train_throughput-{device_tag}-{args.size}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
