"""Read an lm_eval `--output_path ... --log_samples` folder into submission records.

lm-eval 0.4 writes, under `<output_path>/<model name, sanitised>/`, one `results_<date>.json`
per run and, with --log_samples, `samples_<task>_<date>.jsonl` beside it (one line per document:
`doc`, `resps`, `filtered_resps`, and each metric's value). What each of our tasks leaves there:

- implicit_if_alpacaeval: the outputs (each metric's value is the item `process_results` built,
  with the stripped `output`); the judge verdicts are not in the samples, only in the file named
  by `--metadata '{"annotations_path": ...}'` (read when it exists);
- implicit_if_ranking: one ranking record per document (the metric values);
- implicit_if_leak: its own outputs and one boolean per detector.

Reported numbers (`results`) become the claims, in percent, so `check` verifies lm-eval's
aggregation against the records.
"""

from __future__ import annotations

import json
from operator import itemgetter
from pathlib import Path
from typing import Any

from ..io import read_jsonl
from ..ranking import DEFAULT_DISTRACTORS, DEFAULT_SEED
from ..tasks import alpacaeval_task, leak_task
from .problems import refuse
from .submit import Collected, read_json_file, read_record_file

ALPACAEVAL, RANKING, LEAK = "implicit_if_alpacaeval", "implicit_if_ranking", "implicit_if_leak"
DEFAULT_DATASETS = {ALPACAEVAL: alpacaeval_task.DEFAULT_DATASET, LEAK: leak_task.DEFAULT_DATASET}


def find_results_file(path: Path) -> Path:
    """The results JSON of one run: `path` itself, or the newest results_*.json under it."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        refuse(str(path), "does not exist", "pass the folder given to lm_eval --output_path")
    found = sorted(path.glob("results_*.json")) or sorted(path.glob("*/results_*.json"))
    if not found:
        fix = "pass the folder given to lm_eval --output_path (run with --log_samples)"
        refuse(str(path), "holds no results_*.json", fix)
    folders = sorted({p.parent for p in found})
    if len(folders) > 1:
        names = ", ".join(f.name for f in folders)
        refuse(str(path), f"holds results of {len(folders)} models ({names})", "pass one model's folder")
    return found[-1]  # names end in an ISO timestamp: the last is the newest run


def read_samples(results_file: Path, task: str) -> list[dict[str, Any]] | None:
    path = results_file.parent / f"samples_{task}_{results_file.stem.removeprefix('results_')}.jsonl"
    return sorted(read_jsonl(path), key=itemgetter("doc_id")) if path.is_file() else None


def _number(results: dict[str, Any], task: str, metric: str) -> float | None:
    value = results.get("results", {}).get(task, {}).get(f"{metric},none")
    return float(value) if isinstance(value, (int, float)) and value == value else None


def collect_lm_eval(path: Path) -> Collected:
    results_file = find_results_file(path)
    results = read_json_file(results_file, "lm_eval results")
    collected = Collected()
    hints = collected.hints
    configs = results.get("configs", {})
    model_args = results.get("config", {}).get("model_args") or {}
    args = (
        dict(model_args)
        if isinstance(model_args, dict)  # lm-eval >= 0.4.9 stores a dict
        else dict(part.split("=", 1) for part in str(model_args).split(",") if "=" in part)
    )
    if args.get("pretrained"):
        hints["model"] = args["pretrained"]

    def task_metadata(task: str) -> dict[str, Any]:
        return dict(configs.get(task, {}).get("metadata") or {})

    def run_hints(task: str) -> dict[str, Any]:
        """The evaluation set, chat format and decoding `task` ran with; its metadata."""
        meta = task_metadata(task)
        hints["dataset"] = str(meta.get("dataset") or DEFAULT_DATASETS[task])
        if alpacaeval_task.truthy(meta.get("offline")):  # as the tasks read it
            hints["source"] = "fixture"
        hints.update(chat_format=str(meta.get("format") or "tulu"), decoding=_decoding(configs.get(task, {})))
        return meta

    alpacaeval = read_samples(results_file, ALPACAEVAL)
    if alpacaeval:
        collected.outputs = [_output(sample) for sample in alpacaeval]
        meta = run_hints(ALPACAEVAL)
        annotations = meta.get("annotations_path") or _settings(alpacaeval[0]).get("annotations_path")
        if annotations and Path(annotations).is_file():
            collected.annotations = read_record_file(Path(annotations), "annotations")
        for metric in ("win_rate", "lc_win_rate"):
            value = _number(results, ALPACAEVAL, metric)
            if value is not None:
                collected.claimed[metric] = value
    leak = read_samples(results_file, LEAK)
    # With alpacaeval outputs present, leakage is measured on those (submit scans them).
    if leak and collected.outputs is None:  # the leak task's own answers (unstripped, as its detectors saw them)
        detectors = [k for k, v in leak[0].items() if isinstance(v, bool)]
        generator = hints.get("model", "model")
        collected.outputs = [
            {"instruction": s["doc"]["instruction"], "output": _response(s), "generator": generator} for s in leak
        ]
        collected.leakage = [{"index": n, **{d: bool(s[d]) for d in detectors}} for n, s in enumerate(leak)]
        run_hints(LEAK)
        leakage = {d: _number(results, LEAK, d) for d in detectors}
        collected.claimed["leakage"] = {d: v * 100 for d, v in leakage.items() if v is not None}
    ranking = read_samples(results_file, RANKING)
    if ranking:
        collected.ranking = [_ranking_record(sample) for sample in ranking]
        plan = task_metadata(RANKING)  # the task's own plan: its pairs, distractors and seed
        hints["ranking_plan"] = {
            "n_pairs": sum(1 for r in collected.ranking if r.get("instruction_id") == r.get("response_id")),
            "distractors": int(plan.get("distractors", DEFAULT_DISTRACTORS)),
            "seed": int(plan.get("seed", DEFAULT_SEED)),
        }
        value = _number(results, RANKING, "response_ranking")
        if value is not None:
            collected.claimed["ranking_accuracy"] = value * 100
    if collected.outputs is None and collected.ranking is None:
        fix = "run lm_eval with --tasks implicit_if ... --log_samples"
        refuse(str(results_file), "has no samples of the implicit_if tasks beside it", fix)
    return collected


def _settings(sample: dict[str, Any]) -> dict[str, Any]:
    try:
        return json.loads(sample["doc"].get("settings") or "{}")
    except (TypeError, ValueError):
        return {}


def _response(sample: dict[str, Any]) -> str:
    response = sample.get("filtered_resps") or sample.get("resps")
    while isinstance(response, list):
        response = response[0] if response else ""
    return str(response)


def _output(sample: dict[str, Any]) -> dict[str, Any]:
    item = sample.get("win_rate") if isinstance(sample.get("win_rate"), dict) else None
    doc = sample["doc"]
    return {
        "instruction": doc["instruction"],
        "output": item["output"] if item else _response(sample).strip(),
        "generator": _settings(sample).get("generator", "model"),
        "dataset": doc.get("dataset", ""),
    }


def _ranking_record(sample: dict[str, Any]) -> dict[str, Any]:
    record = dict(sample["response_ranking"]) if isinstance(sample.get("response_ranking"), dict) else {}
    doc = sample["doc"]
    record.update({key: doc[key] for key in ("instruction_key", "response_key") if key in doc})
    return record


def _decoding(task_config: dict[str, Any]) -> dict[str, Any]:
    kwargs = dict(task_config.get("generation_kwargs") or {})
    decoding: dict[str, Any] = {}
    if "max_gen_toks" in kwargs:
        decoding["max_new_tokens"] = int(kwargs["max_gen_toks"])
    if kwargs.get("do_sample"):
        decoding.update(strategy="sampling", temperature=float(kwargs.get("temperature", 1.0)))
    return decoding
