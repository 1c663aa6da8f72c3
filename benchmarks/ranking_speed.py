"""Response-ranking speed: our scorer against the study's loop and lm-eval's hf path.

One process, one model, the same (instruction, response) pairs for every contender:

  (a) study_loop   the study's way: one sequence per forward pass (batch 1), full logits,
                   log-softmax over every position (our plain reference with batch_size=1);
  (b) lm_eval_hf   lm-eval's own `HFLM.loglikelihood` on requests built as lm-eval builds them
                   (context = formatted prompt, continuation = response + EOS text);
  (c) ours_fp32    `score_token_ids_fast` in float32 (shared prompt KV cache, output layer only
                   where a token is scored);
  (d) ours_bf16    the same in bfloat16.

Contenders run round-robin, `--repeats` times each; the median wall time gives sequences per
second. The floor is the arithmetic that must be done (each prompt once through the model body,
each response token through the body and the output layer, attention included) divided by the
best float32 matmul rate measured in the same process. Results go to
benchmarks/results/ranking_speed-<model>.md and .json. On a machine shared with other jobs, use
`--threads 1` and read the CPU-time columns, which other programs do not dilute.

    python benchmarks/ranking_speed.py --model gemma-3-270m --instructions 6 --repeats 3 --threads 1
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

from implicit_if.backends.hf import load_model_and_tokenizer
from implicit_if.data import load_pairs
from implicit_if.formats import format_prompt
from implicit_if.models import resolve_model
from implicit_if.ranking import plan_comparisons, scoring_jobs, tokenize_jobs
from implicit_if.scoring import score_token_ids, score_token_ids_fast

RESULTS = Path(__file__).resolve().parent / "results"


# -- contenders ---------------------------------------------------------------------------------


def lm_eval_contender(model_dir: str, contexts: list[str], continuations: list[str], batch_size: int):
    """lm-eval's hf loglikelihood path, with requests built as its tasks build them."""
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=model_dir, dtype="float32", device="cpu", batch_size=batch_size)
    requests = [
        Instance(request_type="loglikelihood", doc={}, arguments=(c, r), idx=i)
        for i, (c, r) in enumerate(zip(contexts, continuations))
    ]
    return lambda: [ll for ll, _ in lm.loglikelihood(requests, disable_tqdm=True)]


# -- the floor ----------------------------------------------------------------------------------


def matmul_rate(shapes: list[tuple[int, int, int]], dtype: torch.dtype, repeats: int = 5, wall: bool = True) -> float:
    """Best FLOP/s over representative GEMM shapes (M, K, N): the machine's achievable rate.

    With `wall=False` it is FLOPs per second of this process's CPU time (per thread-second when
    torch uses one thread), which other processes on a shared machine do not dilute."""
    best = 0.0
    for m, k, n in shapes:
        a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
        a @ b  # warm-up
        times = []
        for _ in range(repeats):
            start = time.perf_counter() if wall else time.process_time()
            a @ b
            times.append((time.perf_counter() if wall else time.process_time()) - start)
        best = max(best, 2 * m * k * n / min(times))
    return best


def required_flops(model, token_pairs: list[tuple[list[int], list[int]]]) -> dict[str, float]:
    """Arithmetic that any exact scorer must do (multiply-adds counted as 2 FLOPs).

    Each distinct prompt runs through the body once; each response runs its tokens except the last
    (a target only) through the body; the output layer runs at every scored position. Attention
    score and value products are counted with each layer's visible span (sliding windows too).
    """
    config = model.config
    body = model.base_model
    embed = body.get_input_embeddings()
    body_params = sum(p.numel() for p in body.parameters()) - sum(p.numel() for p in embed.parameters())
    head = model.get_output_embeddings().weight
    head_flops_per_token = 2 * head.shape[0] * head.shape[1]
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    window = getattr(config, "sliding_window", None)
    layer_types = getattr(config, "layer_types", None) or ["full_attention"] * config.num_hidden_layers

    def attention_flops(position: int) -> float:  # one token at 0-based `position`
        total = 0
        for kind in layer_types:
            span = position + 1 if kind != "sliding_attention" or not window else min(position + 1, window)
            total += 2 * 2 * heads * head_dim * span
        return total

    # What the study's loop computes: every position of every whole sequence, body and output layer.
    study = sum(
        2 * body_params + attention_flops(p) + head_flops_per_token
        for ctx, cont in token_pairs
        for p in range(len(ctx) + len(cont))
    )
    prompts = {tuple(ctx) for ctx, _ in token_pairs}
    body_flops = 0.0
    for ctx in prompts:
        body_flops += sum(2 * body_params + attention_flops(p) for p in range(len(ctx)))
    head_flops = 0.0
    for ctx, cont in token_pairs:
        body_flops += sum(2 * body_params + attention_flops(len(ctx) + p) for p in range(len(cont) - 1))
        head_flops += head_flops_per_token * len(cont)
    return {"body": body_flops, "output_layer": head_flops, "total": body_flops + head_flops, "study_loop": study}


# -- helpers ------------------------------------------------------------------------------------


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def cpu_description() -> dict[str, object]:
    flags = ""
    name = platform.processor()
    try:
        text = Path("/proc/cpuinfo").read_text()
        for line in text.splitlines():
            if line.startswith("model name") and not name:
                name = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = line
                break
        if not name or name == "x86_64":
            name = next(entry.split(":", 1)[1].strip() for entry in text.splitlines() if entry.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "cpu": name,
        "logical_cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "amx_bf16": "amx_bf16" in flags,
        "avx512f": "avx512f" in flags,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def compare(reference: list[list[float]], other: list[list[float]]) -> dict[str, float]:
    per_token = [abs(a - b) for p, q in zip(reference, other) for a, b in zip(p, q)]
    per_mean = [abs(sum(p) / len(p) - sum(q) / len(q)) for p, q in zip(reference, other)]
    return {
        "max_abs_per_token": max(per_token),
        "mean_abs_per_token": sum(per_token) / len(per_token),
        "max_abs_mean_logprob": max(per_mean),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="gemma-3-270m", help="embedded model name, hub id or local path")
    parser.add_argument("--dataset", default="alpaca", help="pairs (offline this falls back to the bundled fixture)")
    parser.add_argument("--instructions", type=int, default=6, help="instructions ranked (each with K+1 responses)")
    parser.add_argument("--distractors", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=8, help="batch size of lm-eval's path and ours")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per contender (median reported)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument(
        "--conditional",
        action="store_true",
        help="also score each response under its distractor instructions (2K+1 sequences per "
        "instruction), as `implicit-if rank` does by default; without it K+1, the study's own view",
    )
    parser.add_argument("--skip", default="", help="comma-separated contenders to leave out")
    parser.add_argument("--tag", default=None, help="suffix for the result files (default: the model's name)")
    parser.add_argument("--note", default="", help="free text recorded with the results (e.g. other load)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    warnings.simplefilter("ignore")  # fixture fallback and lm-eval chatter; recorded below instead

    started_load = load_average()
    pairs = load_pairs(args.dataset, limit=max(args.instructions, args.distractors + 1))
    origin = pairs[0].get("origin", "hub")
    jobs = scoring_jobs(plan_comparisons(len(pairs), args.distractors, seed=0), conditional=args.conditional)
    model_dir = resolve_model(args.model)
    model, tokenizer = load_model_and_tokenizer(model_dir, "cpu", "float32")
    token_pairs = tokenize_jobs(tokenizer, pairs, jobs, "tulu")
    contexts = [format_prompt(pairs[i]["instruction"], "tulu", tokenizer) for i, _, _ in jobs]
    continuations = [pairs[j]["response"] + tokenizer.eos_token for _, j, _ in jobs]
    model_bf16 = copy.deepcopy(model).to(torch.bfloat16)

    contenders = {
        "study_loop": lambda: score_token_ids(model, token_pairs, batch_size=1),
        "lm_eval_hf": lm_eval_contender(model_dir, contexts, continuations, args.batch_size),
        "ours_fp32": lambda: score_token_ids_fast(model, token_pairs, args.batch_size),
        "ours_bf16": lambda: score_token_ids_fast(model_bf16, token_pairs, args.batch_size),
    }
    for name in filter(None, args.skip.split(",")):
        contenders.pop(name.strip())

    # Warm-up on a few pairs (first-call allocations, kernel selection), untimed.
    score_token_ids(model, token_pairs[:2], batch_size=1)
    score_token_ids_fast(model, token_pairs[:2], args.batch_size)
    score_token_ids_fast(model_bf16, token_pairs[:2], args.batch_size)

    times: dict[str, list[float]] = {name: [] for name in contenders}
    cpu_times: dict[str, list[float]] = {name: [] for name in contenders}
    outputs: dict[str, object] = {}
    for repeat in range(args.repeats):
        for name, run in contenders.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            outputs[name] = run()
            times[name].append(time.perf_counter() - start)
            cpu_times[name].append(time.process_time() - start_cpu)
            print(
                f"run {repeat + 1}/{args.repeats} {name}: {times[name][-1]:.2f} s wall, "
                f"{cpu_times[name][-1]:.2f} s CPU",
                file=sys.stderr,
                flush=True,
            )

    n = len(token_pairs)
    summary = {
        name: {
            "median_s": statistics.median(t),
            "runs_s": [round(x, 3) for x in t],
            "sequences_per_s": n / statistics.median(t),
            "median_cpu_s": statistics.median(cpu_times[name]),
            "runs_cpu_s": [round(x, 3) for x in cpu_times[name]],
            "sequences_per_cpu_s": n / statistics.median(cpu_times[name]),
        }
        for name, t in times.items()
    }
    reference = outputs.get("study_loop") or score_token_ids(model, token_pairs, batch_size=1)
    exactness = {}
    if "ours_fp32" in outputs:
        exactness["ours_fp32_vs_plain_fp32"] = compare(reference, outputs["ours_fp32"])
    if "ours_bf16" in outputs:
        exactness["ours_bf16_vs_plain_fp32"] = compare(reference, outputs["ours_bf16"])
    # lm-eval's numbers are not compared: as lm-eval does, it moves the prompt's trailing newline
    # into the continuation and so also scores that token (the lm-eval task corrects for it).

    d = model.config.hidden_size
    inter = getattr(model.config, "intermediate_size", 4 * d)
    vocab = model.get_output_embeddings().weight.shape[0]
    shapes = [(512, d, inter), (512, inter, d), (256, d, vocab)]
    rate32 = matmul_rate(shapes, torch.float32)
    rate16 = matmul_rate(shapes, torch.bfloat16)
    cpu_rate32 = matmul_rate(shapes, torch.float32, wall=False)
    flops = required_flops(model, token_pairs)
    floor = {
        "required_gflop": flops["total"] / 1e9,
        "body_gflop": flops["body"] / 1e9,
        "study_loop_gflop": flops["study_loop"] / 1e9,
        "output_layer_gflop": flops["output_layer"] / 1e9,
        "fp32_matmul_gflops": rate32 / 1e9,
        "bf16_matmul_gflops": rate16 / 1e9,
        "fp32_floor_s": flops["total"] / rate32,
        "bf16_floor_s": flops["total"] / rate16,
    }
    floor["fp32_floor_sequences_per_s"] = n / floor["fp32_floor_s"]
    floor["fp32_matmul_gflops_per_cpu_s"] = cpu_rate32 / 1e9
    floor["fp32_floor_cpu_s"] = flops["total"] / cpu_rate32
    floor["study_loop_over_required_arithmetic"] = flops["study_loop"] / flops["total"]
    floor["bf16_floor_sequences_per_s"] = n / floor["bf16_floor_s"]

    def ratio(a: str, b: str, key: str) -> float | None:
        return summary[a][key] / summary[b][key] if a in summary and b in summary else None

    pairs_compared = [
        ("ours_fp32", "study_loop"),
        ("ours_fp32", "lm_eval_hf"),
        ("ours_bf16", "study_loop"),
        ("ours_bf16", "lm_eval_hf"),
        ("lm_eval_hf", "study_loop"),
    ]
    ratios = {f"{a}_over_{b}": ratio(a, b, "sequences_per_s") for a, b in pairs_compared}
    cpu_ratios = {f"{a}_over_{b}": ratio(a, b, "sequences_per_cpu_s") for a, b in pairs_compared}
    if "ours_fp32" in summary:
        floor["ours_fp32_share_of_fp32_floor"] = floor["fp32_floor_s"] / summary["ours_fp32"]["median_s"]
        floor["ours_fp32_share_of_fp32_floor_cpu"] = floor["fp32_floor_cpu_s"] / summary["ours_fp32"]["median_cpu_s"]
    if "ours_bf16" in summary:
        floor["ours_bf16_share_of_bf16_floor"] = floor["bf16_floor_s"] / summary["ours_bf16"]["median_s"]

    import lm_eval
    import transformers

    result = {
        "command": "python benchmarks/ranking_speed.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "model": args.model,
        "data": {
            "dataset": args.dataset,
            "origin": origin,
            "instructions": len(pairs),
            "distractors": args.distractors,
            "sequences": n,
            "conditional": args.conditional,
            "prompt_tokens_mean": statistics.mean(len(c) for c, _ in token_pairs),
            "response_tokens_mean": statistics.mean(len(r) for _, r in token_pairs),
        },
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "machine": {
            **cpu_description(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "lm_eval": lm_eval.__version__,
            "load_average_start": started_load,
            "load_average_end": load_average(),
        },
        "note": args.note,
        "contenders": summary,
        "ratios": ratios,
        "cpu_time_ratios": cpu_ratios,
        "exactness": exactness,
        "floor": floor,
        "targets": {"fp32_over_study_loop": 2.0, "fp32_over_lm_eval_hf": 1.2, "per_token_tolerance": 1e-3},
    }
    write_results(result, args.tag if args.tag is not None else Path(args.model).name)
    print(
        json.dumps(
            {"contenders": summary, "ratios": ratios, "cpu_time_ratios": cpu_ratios, "exactness": exactness}, indent=2
        )
    )
    return result


def write_results(result: dict, tag: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = "ranking_speed" + (f"-{tag}" if tag else "")
    (RESULTS / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    m, data, floor = result["machine"], result["data"], result["floor"]
    k = data["distractors"]
    per_instruction = (
        f"({k + 1} responses + each own response under {k} distractor instructions, the conditional view)"
        if data.get("conditional")
        else f"{k + 1} responses (the study's view)"
    )
    lines = [
        f"# Response-ranking speed: {result['model']}",
        "",
        f"Command: `{result['command']}`",
        "",
        f"Machine: {m['cpu']}, {m['logical_cpus']} logical CPUs, torch threads {m['torch_threads']}, "
        f"AMX bf16 {'yes' if m['amx_bf16'] else 'no'}; GPU: {m['gpu'] or 'none available in this run'}. "
        f"torch {m['torch']}, transformers {m['transformers']}, lm-eval {m['lm_eval']}. "
        f"Load average (1, 5, 15 min) at start {m['load_average_start']}, at end {m['load_average_end']}.",
        "",
        f"Data: {data['instructions']} instructions x {per_instruction} = {data['sequences']} "
        f"sequences from `{data['dataset']}` ({data['origin']}); mean prompt {data['prompt_tokens_mean']:.1f} tokens, "
        f"mean response {data['response_tokens_mean']:.1f} tokens (with EOS). Batch size {result['batch_size']}; "
        f"median of {result['repeats']} runs, contenders interleaved. Wall time is what a user waits; CPU time "
        f"(this process, all its threads) is not diluted by other programs on a shared machine.",
        "",
        "| contender | median wall s | sequences/s | median CPU s | sequences/CPU-s | wall runs (s) |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, row in result["contenders"].items():
        lines.append(
            f"| {name} | {row['median_s']:.2f} | {row['sequences_per_s']:.2f} | {row['median_cpu_s']:.2f} | "
            f"{row['sequences_per_cpu_s']:.2f} | {', '.join(map(str, row['runs_s']))} |"
        )
    lines += ["", "| speed-up | wall | CPU time | target |", "| --- | ---: | ---: | ---: |"]
    targets = {"ours_fp32_over_study_loop": ">= 2.0", "ours_fp32_over_lm_eval_hf": ">= 1.2"}
    for name, value in result["ratios"].items():
        if value is not None:
            lines.append(
                f"| {name} | {value:.2f}x | {result['cpu_time_ratios'][name]:.2f}x | {targets.get(name, '')} |"
            )
    lines += ["", "Exactness against the plain float32 computation (natural-log probabilities):", ""]
    for name, row in result["exactness"].items():
        lines.append(f"- {name}: " + ", ".join(f"{k} {v:.2e}" for k, v in row.items()))
    lines += [
        "",
        f"Floor: {floor['required_gflop']:.1f} GFLOP must be done ({floor['body_gflop']:.1f} in the body, "
        f"{floor['output_layer_gflop']:.1f} in the output layer); the study's loop does "
        f"{floor['study_loop_gflop']:.1f} GFLOP, "
        f"{floor['study_loop_over_required_arithmetic']:.2f}x that, which bounds "
        f"what any exact float32 scorer can gain over it at equal matmul efficiency. Best measured matmul rate "
        f"{floor['fp32_matmul_gflops']:.1f} GFLOP/s float32 "
        f"({floor['fp32_matmul_gflops_per_cpu_s']:.1f} per CPU-second), "
        f"{floor['bf16_matmul_gflops']:.1f} GFLOP/s bfloat16; floor {floor['fp32_floor_s']:.2f} s "
        f"({floor['fp32_floor_sequences_per_s']:.2f} sequences/s) in float32, "
        f"{floor['bf16_floor_s']:.2f} s in bfloat16.",
    ]
    if "ours_fp32_share_of_fp32_floor" in floor:
        lines.append(
            f"Ours float32 runs at {floor['ours_fp32_share_of_fp32_floor']:.0%} of the float32 floor "
            f"({floor['ours_fp32_share_of_fp32_floor_cpu']:.0%} in CPU time)"
            + (
                f", bfloat16 at {floor['ours_bf16_share_of_bf16_floor']:.0%} of the bfloat16 floor."
                if "ours_bf16_share_of_bf16_floor" in floor
                else "."
            )
        )
    if result["note"]:
        lines += ["", f"Note: {result['note']}"]
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
