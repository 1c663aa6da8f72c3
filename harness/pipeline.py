"""One evaluation run, whoever asks for it: a `RunSpec` in, the run's records out.

    RunSpec --generate--> outputs.json --judge (vs references)--> annotations.json
                          outputs.json --detectors--> leakage.jsonl
            --score true vs distractor responses--> ranking.jsonl

`implicit-if eval`, `implicit-if demo` and `implicit-if study` are thin callers. Each stage
writes its records under the run folder with a fingerprint of its inputs beside them, and a
rerun with the same inputs reads them back instead of recomputing (HELM's run -> summarize ->
present, with files between the steps).
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .io import atomic_write_text
from .judging.specs import DEFAULT_OFFLINE_JUDGE
from .records import Kind, read_records, write_records

OFFLINE_DATASET = "offline_instructions"
EVALUATION_SETS = ("alpaca_eval", OFFLINE_DATASET)
BACKENDS = ("hf", "vllm", "openai")
# Greedy decoding on a CPU is bound by per-step overhead, not arithmetic: 64 rows per step generate
# about 3x faster than 8 (measured on both embedded models), and the 85-instruction set in one batch
# of 128 a further 15% faster than in two.
GENERATE_BATCH_SIZE = 128


@dataclass(frozen=True)
class RunSpec:
    """Everything that decides a run's records."""

    name: str  # the generator name in the records (and the board entry's name)
    model: str  # embedded model name, local directory or hub id
    fmt: str = "tulu"  # the chat format the model was trained with
    adaptation: str = "base"  # what the board calls it: base | instruction | response | rules | single-task:<task>
    rules: str = "none"  # the rule-based adapter (hf backend)
    backend: str = "hf"  # hf | vllm | openai (a served model: `model` is its served name)
    dataset: str = OFFLINE_DATASET  # the evaluation set
    offline: bool | None = True  # None: the hub when reachable, the bundled fixture otherwise (warned)
    judge: str = DEFAULT_OFFLINE_JUDGE
    judged: bool = True  # False: no judge (e.g. the reference itself)
    ranked: bool = True  # False: no response ranking
    limit: int | None = None  # the first N instructions only
    max_new_tokens: int = 128
    batch_size: int = 8  # ranking: sequences per scoring batch
    generate_batch_size: int = GENERATE_BATCH_SIZE
    dtype: str = "auto"
    base_url: str | None = None  # openai: the endpoint (default: OPENAI_BASE_URL); the key comes from OPENAI_API_KEY
    tokenizer: str | None = None  # openai: the served model's tokenizer, for ranking (default: one named like `model`)
    conditional: bool = False  # ranking: also the instruction-conditional view
    tensor_parallel_size: int = 1  # vllm: devices per engine
    data_parallel_size: int = 1  # vllm: engines, each in its own process (backends/vllm_data_parallel.py)

    def check(self) -> None:
        """Refuse what cannot run, before any model loads (one line naming the fix)."""
        from .formats import check_format

        check_format(self.fmt)
        if self.backend not in BACKENDS:
            raise ValueError(f"backend {self.backend!r} cannot run an evaluation: use one of {', '.join(BACKENDS)}")
        if self.dataset not in EVALUATION_SETS:
            raise ValueError(
                f"dataset {self.dataset!r} is not an evaluation set: use one of {', '.join(EVALUATION_SETS)}"
            )
        if (self.tensor_parallel_size, self.data_parallel_size) != (1, 1) and self.backend != "vllm":
            raise ValueError("tensor and data parallelism are the vllm backend's: add --backend vllm")
        if self.backend == "openai" and not os.environ.get("OPENAI_API_KEY"):
            raise ValueError(
                "the openai backend needs the endpoint's key in OPENAI_API_KEY (a local server started without "
                "--api-key takes any placeholder, e.g. OPENAI_API_KEY=EMPTY)"
            )
        if self.rules != "none" and self.backend != "hf":
            raise ValueError(
                "the rule-based adapter runs here on the hf backend; for vllm use `implicit-if generate --rules`"
            )


@dataclass
class RunResult:
    spec: RunSpec
    folder: Path
    source: str  # "hub" or "fixture": where the evaluation set came from
    winrate: dict[str, Any] = field(default_factory=dict)
    ranking: dict[str, Any] = field(default_factory=dict)
    leakage: dict[str, Any] = field(default_factory=dict)
    dtype: str = "float32"  # the precision the model ran in


def fingerprint(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def cached_stage(path: Path, inputs: Any, compute: Callable[[], Any], kind: Kind) -> Any:
    """Return the stage's records from `path` when its inputs match, else compute and write them
    (typed records both ways: `records.py`; JSON or JSON Lines by the file's suffix)."""
    stamp = path.with_name(path.name + ".inputs")
    digest = fingerprint(inputs)
    if path.exists() and stamp.exists() and stamp.read_text().strip() == digest:
        return read_records(path, kind)
    records = compute()
    write_records(path, records, kind)
    atomic_write_text(stamp, digest + "\n")
    return records


def load_evaluation_set(
    dataset: str, offline: bool | None, limit: int | None, log: Callable[[str], None]
) -> tuple[list[dict[str, Any]], str]:
    """The set's pairs and where they came from; a fall-back to the fixture is said, not hidden."""
    from .data import FixtureFallbackWarning, get_spec, load_pairs

    if offline is True or get_spec(dataset).hub is None:
        return load_pairs(dataset, offline=True, limit=limit), "fixture"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FixtureFallbackWarning)
        pairs = load_pairs(dataset, offline=offline, limit=limit)
    fell_back = [w for w in caught if issubclass(w.category, FixtureFallbackWarning)]
    for warning in fell_back:
        log(f"warning: {warning.message}")
    return pairs, "fixture" if fell_back else "hub"


def run(
    spec: RunSpec, folder: Path, log: Callable[[str], None], *, references: list[dict[str, Any]] | None = None
) -> RunResult:
    """Generate, judge (against `references`, by default the set's own reference answers), leakage, ranking."""
    from .backends import GenerationConfig, get_backend
    from .backends.hf import pick_device, resolve_dtype_name
    from .generation import generate_outputs
    from .judging import judge_outputs
    from .judging.references import reference_record
    from .judging.specs import load_judge_spec
    from .leakage import leakage_records, leakage_summary
    from .ranking import rank, summarize
    from .winrate import compute_metrics
    from .winrate.bias import bias_line

    spec.check()
    pairs, source = load_evaluation_set(spec.dataset, spec.offline, spec.limit, log)
    config = GenerationConfig(max_new_tokens=spec.max_new_tokens)
    # recorded as run; a served model runs in whatever precision its server chose
    dtype = {"hf": lambda: resolve_dtype_name(spec.dtype, pick_device(None)), "openai": lambda: "served"}.get(
        spec.backend, lambda: spec.dtype
    )()
    base_inputs = {
        "model": spec.model,
        "format": spec.fmt,
        "rules": spec.rules,
        "pairs": fingerprint(pairs),
        "dtype": dtype,
        "version": 1,
        **({"backend": spec.backend} if spec.backend != "hf" else {}),
        **({"base_url": spec.base_url} if spec.backend == "openai" else {}),
        # parallelism changes how sums are split over devices, so it is part of what made the records
        **({"parallel": [spec.tensor_parallel_size, spec.data_parallel_size]} if spec.backend == "vllm" else {}),
    }
    backend: Any = None

    def get_model() -> Any:
        nonlocal backend
        if backend is None:
            options: dict[str, Any] = {"dtype": dtype}
            if spec.backend == "openai":
                options = {"base_url": spec.base_url, "tokenizer": spec.tokenizer}
            if spec.backend == "vllm":
                options.update(
                    tensor_parallel_size=spec.tensor_parallel_size, data_parallel_size=spec.data_parallel_size
                )
            if spec.backend == "hf":
                options["batch_size"] = spec.generate_batch_size
                if spec.rules != "none":
                    from .rules import build_rules

                    options["logits_processor_factory"] = build_rules(spec.rules).hf_logits_processor_factory
            backend = get_backend(spec.backend, spec.model, **options)
        return backend

    log(f"[{spec.name}] generating {len(pairs)} outputs (greedy, at most {spec.max_new_tokens} new tokens)")
    outputs = cached_stage(
        folder / "outputs.json",
        {**base_inputs, "stage": "outputs", "config": config.as_record()},
        lambda: generate_outputs(
            get_model(), pairs, fmt=spec.fmt, config=config, generator=spec.name, dataset=spec.dataset
        ),
        "outputs",
    )
    judge = load_judge_spec(spec.judge)
    annotation_inputs = {"outputs": fingerprint(outputs), "judge": judge.identity_hash(), "stage": "annotations"}
    if references is None:
        wanted = {o["instruction"] for o in outputs}
        references = [reference_record(p, spec.dataset) for p in pairs if p["instruction"] in wanted]
        reference_name = "the reference answers"
    else:
        annotation_inputs["references"] = fingerprint(references)
        reference_name = f"{references[0]['generator']}'s outputs"

    def judge_all() -> list[dict[str, Any]]:
        annotations, summary = judge_outputs(outputs, references, judge, seed=0)
        if summary.failed:
            raise RuntimeError(f"{len(summary.failed)} judge requests failed; rerun to retry them")
        return annotations

    winrate: dict[str, Any] = {}
    if spec.judged:
        log(f"[{spec.name}] judging against {reference_name} with {spec.judge}")
        annotations = cached_stage(folder / "annotations.json", annotation_inputs, judge_all, "annotations")
        winrate = compute_metrics(annotations, seed=0)
        log(f"[{spec.name}] {bias_line(winrate['judge_bias'])}")
    else:
        (folder / "annotations.json").unlink(missing_ok=True)

    leak_records = leakage_records([o["output"] for o in outputs])
    write_records(folder / "leakage.jsonl", leak_records, "leakage")
    result = RunResult(spec, folder, source, winrate, {}, leakage_summary(leak_records), dtype)
    if not spec.ranked:
        (folder / "ranking.jsonl").unlink(missing_ok=True)
        log(f"[{spec.name}] response ranking: not asked for")
        return result
    if spec.rules != "none":
        # The fast scorer scores the base model; under base x rules use lm-eval's implicit_if_ranking
        # with `--model implicit_if_hf --model_args rules=...`. Not measured beats measured wrongly.
        (folder / "ranking.jsonl").unlink(missing_ok=True)
        log(f"[{spec.name}] response ranking: not measured for a rules entry (see docs/rules.md)")
        return result

    k = min(5, len(pairs) - 1)  # the study's 5 distractors; fewer only on a tiny --limit
    log(f"[{spec.name}] response ranking: {len(pairs)} instructions x (1 + {k} distractors)")

    def ranked() -> list[dict[str, Any]]:
        return rank(
            get_model(), pairs, k=k, seed=0, fmt=spec.fmt, batch_size=spec.batch_size, conditional=spec.conditional
        )

    stage = {**base_inputs, "stage": "ranking", "k": k, "seed": 0, "conditional": spec.conditional}
    result.ranking = summarize(cached_stage(folder / "ranking.jsonl", stage, ranked, "ranking"), seed=0)
    return result


def results_table(results: list[RunResult]) -> str:
    from tabulate import tabulate

    def pct(value: Any) -> str:
        return "-" if value is None else f"{value:.1f}"

    rows = []
    for r in results:
        w, k = r.winrate, r.ranking.get("response_ranking", {"estimate": None})
        ranking = "-"
        if k["estimate"] is not None:
            ranking = f"{pct(100 * k['estimate'])} [{pct(100 * k['ci_low'])}, {pct(100 * k['ci_high'])}]"
        rows.append(
            [
                r.spec.name,
                f"{pct(w.get('length_controlled_winrate'))} [{pct(w.get('length_controlled_winrate_ci_low'))}, "
                f"{pct(w.get('length_controlled_winrate_ci_high'))}]",
                f"{pct(w.get('win_rate'))} [{pct(w.get('win_rate_ci_low'))}, {pct(w.get('win_rate_ci_high'))}]",
                ranking,
                ", ".join(f"{name} {100 * v['rate']:.0f}%" for name, v in r.leakage.items() if v["count"]) or "none",
            ]
        )
    headers = ["entry", "LC win rate % [95% CI]", "win rate % [95% CI]", "response ranking % [95% CI]", "style leakage"]
    return tabulate(rows, headers=headers)


def submit_run(
    result: RunResult, submissions: Path, model: dict[str, str] | None = None, extra: dict[str, Any] | None = None
) -> Path:
    """Turn one run's records into a checked leaderboard submission folder (replacing an older one)."""
    from .leaderboard.submit import build_submission, collect_files

    folder, spec = result.folder, result.spec
    collected = collect_files(
        outputs=folder / "outputs.json",
        annotations=folder / "annotations.json" if result.winrate else None,
        ranking=folder / "ranking.jsonl" if result.ranking else None,
        leakage=folder / "leakage.jsonl",
    )
    metadata = {
        "name": spec.name,
        "model": model or {"id": spec.model, "base_model": spec.model},
        "adaptation": spec.adaptation,
        "chat_format": spec.fmt,
        "decoding": {"max_new_tokens": spec.max_new_tokens, "dtype": result.dtype},
        "evaluation_set": {"dataset": spec.dataset, "source": result.source},
        "license": "the model's own licence",
        "contact": "implicit-if maintainers",
        "notes": f"Produced by implicit-if ({spec.backend} backend); judge {spec.judge}.",
    }
    if spec.rules != "none":
        metadata["notes"] += (
            f" Rule-based adapter: {spec.rules}. Response ranking not measured here "
            "(rules change decoding; see docs/rules.md for ranking under the rules)."
        )
    metadata.update(extra or {})
    target, _ = build_submission(collected, metadata, submissions, force=True)
    return target
