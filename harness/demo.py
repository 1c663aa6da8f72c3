"""The main job, offline: evaluate the embedded models on our instruction set end to end.

For each model: greedy outputs -> pairwise judgement against the set's reference answers
(local Qwen2.5-Coder-1.5B pointwise judge: validated, its accuracy shown on the board) -> win rate and LC win
rate; response ranking; style leakage. Each stage writes its records under `out/<entry>/`
and is skipped on a rerun when its inputs are unchanged (a fingerprint sidecar), HELM-style:
run -> summarize -> present as separate steps with files between them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DATASET = "offline_instructions"
# Greedy decoding on a CPU is bound by per-step overhead, not arithmetic: 64 rows per step generate
# about 3x faster than 8 (measured on both embedded models), and the 85-instruction set in one batch
# of 128 a further 15% faster than in two.
GENERATE_BATCH_SIZE = 128


@dataclass(frozen=True)
class DemoEntry:
    name: str  # submission / board name
    model: str  # embedded model name
    fmt: str
    adaptation: str
    rules: str = "none"


DEFAULT_ENTRIES = (
    DemoEntry("gemma-3-270m-base", "gemma-3-270m", "tulu", "base"),
    DemoEntry("smollm2-135m-instruct", "smollm2-135m-instruct", "chat_template", "instruction"),
)

# The rule-based adapter on the base model: all rules, and each rule alone (ablations).
RULES_ENTRIES = tuple(
    DemoEntry(f"gemma-3-270m-rules-{label}", "gemma-3-270m", "tulu", "rules", spec)
    for label, spec in (("all", "eos,uniform,diversity"), ("eos", "eos"), ("uniform", "uniform"), ("diversity", "diversity"))
)


@dataclass
class EntryResult:
    entry: DemoEntry
    folder: Path
    winrate: dict[str, Any] = field(default_factory=dict)
    ranking: dict[str, Any] = field(default_factory=dict)
    leakage: dict[str, Any] = field(default_factory=dict)
    dtype: str = "float32"  # the precision the model ran in


def fingerprint(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def cached_stage(path: Path, inputs: Any, compute: Callable[[], Any], *, jsonl: bool = False) -> Any:
    """Return the stage's records from `path` when its inputs match, else compute and write them."""
    from .cli._common import atomic_write_json, atomic_write_jsonl, atomic_write_text

    stamp = path.with_name(path.name + ".inputs")
    digest = fingerprint(inputs)
    if path.exists() and stamp.exists() and stamp.read_text().strip() == digest:
        text = path.read_text()
        return [json.loads(line) for line in text.splitlines() if line.strip()] if jsonl else json.loads(text)
    records = compute()
    (atomic_write_jsonl if jsonl else atomic_write_json)(path, records)
    atomic_write_text(stamp, digest + "\n")
    return records


def run_entry(entry: DemoEntry, out: Path, *, limit: int | None, max_new_tokens: int, batch_size: int,
              judge: str, log: Callable[[str], None], folder: Path | None = None,
              generate_batch_size: int = GENERATE_BATCH_SIZE, conditional: bool = False,
              dtype: str = "auto", references: list[dict[str, Any]] | None = None, judged: bool = True,
              ranked: bool = True) -> EntryResult:
    """Generate, judge (against `references`, by default the set's own reference answers), leakage, ranking.

    `judged=False` skips the judge (the study's reference entry, which would be judged against itself).
    """
    from .backends import GenerationConfig
    from .backends.hf import HFBackend, pick_device, resolve_dtype_name
    from .cli._common import atomic_write_jsonl
    from .data import load_pairs
    from .generation import generate_outputs
    from .judging import judge_outputs
    from .judging.references import dataset_references
    from .judging.specs import load_judge_spec
    from .leakage import leakage_records, leakage_summary
    from .ranking import rank_with_model, summarize
    from .winrate import compute_metrics
    from .winrate.bias import bias_line

    folder = folder or out / entry.name
    pairs = load_pairs(DATASET, offline=True, limit=limit)
    config = GenerationConfig(max_new_tokens=max_new_tokens)
    dtype = resolve_dtype_name(dtype, pick_device(None))  # what ran is recorded, not "auto"
    base_inputs = {"model": entry.model, "format": entry.fmt, "rules": entry.rules,
                   "pairs": fingerprint(pairs), "dtype": dtype, "version": 1}
    backend: HFBackend | None = None

    def get_backend() -> HFBackend:
        nonlocal backend
        if backend is None:
            factory = None
            if entry.rules != "none":
                from .rules import build_rules

                factory = build_rules(entry.rules).hf_logits_processor_factory
            backend = HFBackend(entry.model, dtype=dtype, batch_size=generate_batch_size, logits_processor_factory=factory)
        return backend

    log(f"[{entry.name}] generating {len(pairs)} outputs (greedy, at most {max_new_tokens} new tokens)")
    outputs = cached_stage(
        folder / "outputs.json", {**base_inputs, "stage": "outputs", "config": config.as_record()},
        lambda: generate_outputs(get_backend(), pairs, fmt=entry.fmt, config=config, generator=entry.name, dataset=DATASET),
    )
    spec = load_judge_spec(judge)
    annotation_inputs = {"outputs": fingerprint(outputs), "judge": spec.identity_hash(), "stage": "annotations"}
    if references is None:
        references = dataset_references(DATASET, offline=True, instructions=[o["instruction"] for o in outputs])
        reference_name = "the reference answers"
    else:
        annotation_inputs["references"] = fingerprint(references)
        reference_name = f"{references[0]['generator']}'s outputs"

    def judge_all() -> list[dict[str, Any]]:
        annotations, summary = judge_outputs(outputs, references, spec, seed=0)
        if summary.failed:
            raise RuntimeError(f"{len(summary.failed)} judge requests failed; rerun to retry them")
        return annotations

    winrate: dict[str, Any] = {}
    if judged:
        log(f"[{entry.name}] judging against {reference_name} with {judge}")
        annotations = cached_stage(folder / "annotations.json", annotation_inputs, judge_all)
        winrate = compute_metrics(annotations, seed=0)
        log(f"[{entry.name}] {bias_line(winrate['judge_bias'])}")
    else:
        (folder / "annotations.json").unlink(missing_ok=True)

    leak_records = leakage_records([o["output"] for o in outputs])
    atomic_write_jsonl(folder / "leakage.jsonl", leak_records)
    leakage = leakage_summary(leak_records)
    if not ranked:
        (folder / "ranking.jsonl").unlink(missing_ok=True)
        log(f"[{entry.name}] response ranking: not asked for")
        return EntryResult(entry, folder, winrate, {}, leakage, dtype)
    if entry.rules != "none":
        # The fast scorer scores the base model; under base x rules use lm-eval's implicit_if_ranking
        # with `--model implicit_if_hf --model_args rules=...`. Not measured beats measured wrongly.
        (folder / "ranking.jsonl").unlink(missing_ok=True)
        log(f"[{entry.name}] response ranking: not measured for a rules entry (see docs/rules.md)")
        return EntryResult(entry, folder, winrate, {}, leakage, dtype)

    k = min(5, len(pairs) - 1)  # the study's 5 distractors; fewer only on a tiny --limit
    log(f"[{entry.name}] response ranking: {len(pairs)} instructions x (1 + {k} distractors)")

    def ranked() -> list[dict[str, Any]]:
        b = get_backend()
        return rank_with_model(b.model, b.tokenizer, pairs, k=k, seed=0, fmt=entry.fmt, batch_size=batch_size,
                               conditional=conditional)

    # The demo leaves out the instruction-conditional view (the boards do not use it; it nearly
    # doubles the scoring); `implicit-if eval` and `implicit-if rank` include it.
    stage = {**base_inputs, "stage": "ranking", "k": k, "seed": 0, "conditional": conditional}
    ranking_records = cached_stage(folder / "ranking.jsonl", stage, ranked, jsonl=True)
    ranking = summarize(ranking_records, seed=0)
    return EntryResult(entry, folder, winrate, ranking, leakage, dtype)


def results_table(results: list[EntryResult]) -> str:
    from tabulate import tabulate

    def pct(value: Any) -> str:
        return "-" if value is None else f"{value:.1f}"

    rows = []
    for r in results:
        w, k = r.winrate, r.ranking.get("response_ranking", {"estimate": None})
        ranking = "-"
        if k["estimate"] is not None:
            ranking = f"{pct(100 * k['estimate'])} [{pct(100 * k['ci_low'])}, {pct(100 * k['ci_high'])}]"
        rows.append([
            r.entry.name,
            f"{pct(w.get('length_controlled_winrate'))} [{pct(w.get('length_controlled_winrate_ci_low'))}, "
            f"{pct(w.get('length_controlled_winrate_ci_high'))}]",
            f"{pct(w.get('win_rate'))} [{pct(w.get('win_rate_ci_low'))}, {pct(w.get('win_rate_ci_high'))}]",
            ranking,
            ", ".join(f"{name} {100 * v['rate']:.0f}%" for name, v in r.leakage.items() if v["count"]) or "none",
        ])
    headers = ["entry", "LC win rate % [95% CI]", "win rate % [95% CI]", "response ranking % [95% CI]", "style leakage"]
    return tabulate(rows, headers=headers)


def paired_win_difference(first: EntryResult, second: EntryResult, annotations: tuple[list, list]) -> str:
    """One line: second minus first in win rate, paired over the same instructions (95% BCa bootstrap)."""
    from .statistics import paired_bootstrap_means
    from .winrate.preferences import normalise_preference

    def wins(records: list[dict[str, Any]]) -> dict[str, float]:
        return {r["instruction"]: normalise_preference(r.get("preference"), r.get("output_1"), r.get("output_2")) - 1
                for r in records}

    a, b = wins(annotations[0]), wins(annotations[1])
    shared = sorted(set(a) & set(b))
    boot = paired_bootstrap_means([[a[i] for i in shared], [b[i] for i in shared]], seed=0)
    interval = boot.combine([[-1.0, 1.0]]).interval(0)
    verdict = "the interval excludes 0" if interval.low > 0 or interval.high < 0 else "the interval includes 0: not separated"
    return (f"win rate, {second.entry.name} minus {first.entry.name}: {100 * interval.estimate:+.1f} points "
            f"[{100 * interval.low:+.1f}, {100 * interval.high:+.1f}] (paired over {len(shared)} instructions; {verdict})")


def submit_entry(result: EntryResult, submissions: Path, judge: str, max_new_tokens: int,
                 model: dict[str, str] | None = None, extra: dict[str, Any] | None = None) -> Path:
    """Turn one entry's records into a checked leaderboard submission folder (replacing an older one)."""
    from .leaderboard.submit import build_submission, collect_files

    folder, entry = result.folder, result.entry
    collected = collect_files(outputs=folder / "outputs.json", annotations=folder / "annotations.json" if result.winrate else None,
                              ranking=folder / "ranking.jsonl" if result.ranking else None,
                              leakage=folder / "leakage.jsonl")
    metadata = {
        "name": entry.name,
        "model": model or {"id": entry.model, "base_model": entry.model},
        "adaptation": entry.adaptation,
        "chat_format": entry.fmt,
        "decoding": {"max_new_tokens": max_new_tokens, "dtype": result.dtype},
        "evaluation_set": {"dataset": DATASET, "source": "fixture"},
        "license": "the model's own licence (Gemma terms of use / Apache-2.0)",
        "contact": "implicit-if maintainers",
        "notes": f"Produced by `implicit-if demo` on CPU; judge {judge}, an offline judge with a validation table "
                 "(docs/judging.md): it separates blatant failures, not close calls.",
    }
    if entry.rules != "none":
        metadata["notes"] += (f" Rule-based adapter: {entry.rules}. Response ranking not measured here "
                              "(rules change decoding; see docs/rules.md for ranking under the rules).")
    metadata.update(extra or {})
    target, _ = build_submission(collected, metadata, submissions, force=True)
    return target
