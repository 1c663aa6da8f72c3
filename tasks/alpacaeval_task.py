"""lm-eval glue for `implicit_if_alpacaeval`: greedy answers, then one batched judge pass over all
of them in the aggregation step, then the same win-rate code as `implicit-if winrate`.

Options (`--metadata` JSON, else environment variable, else default):

| key               | environment                   | default                                       |
| ----------------- | ----------------------------- | --------------------------------------------- |
| dataset           | IMPLICIT_IF_DATASET           | alpaca_eval (bundled fixture if no hub)       |
| n_instructions    |                               | all                                           |
| format            |                               | tulu                                          |
| offline           | IMPLICIT_IF_OFFLINE           | false                                         |
| judge             | IMPLICIT_IF_JUDGE             | qwen2.5-coder-1.5b-pointwise (CPU, offline)   |
| judge_base_url    | IMPLICIT_IF_JUDGE_BASE_URL    | the spec's                                    |
| both_orders       |                               | the judge spec's (order-free for pointwise)   |
| reference         | IMPLICIT_IF_REFERENCE         | dataset (its reference outputs), or a model_outputs JSON file |
| judge_cache       | IMPLICIT_IF_JUDGE_CACHE       | the user cache's judge/verdicts.sqlite        |
| outputs_path      |                               | not written (else the model_outputs JSON)     |
| annotations_path  |                               | not written (else the annotations JSON)       |
| seed              |                               | 0                                             |

Every document carries the judge settings, so the aggregation (which lm-eval calls with the
per-document values only) knows them. All metric functions share one memoised judge pass.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from implicit_if.judging.specs import DEFAULT_OFFLINE_JUDGE as DEFAULT_JUDGE

DEFAULT_DATASET = "alpaca_eval"

SETTINGS = {  # metadata key -> (environment variable, default)
    "dataset": ("IMPLICIT_IF_DATASET", DEFAULT_DATASET),
    "offline": ("IMPLICIT_IF_OFFLINE", "false"),
    "judge": ("IMPLICIT_IF_JUDGE", DEFAULT_JUDGE),
    "judge_base_url": ("IMPLICIT_IF_JUDGE_BASE_URL", None),
    "reference": ("IMPLICIT_IF_REFERENCE", "dataset"),
    "judge_cache": ("IMPLICIT_IF_JUDGE_CACHE", None),
    "both_orders": (None, None),
    "outputs_path": (None, None),
    "annotations_path": (None, None),
    "seed": (None, 0),
}


def setting(metadata: dict[str, Any], key: str) -> Any:
    env, default = SETTINGS[key]
    if metadata.get(key) is not None:
        return metadata[key]
    if env and os.environ.get(env):
        return os.environ[env]
    return default


def truthy(value: Any) -> bool:
    return str(value).lower() in ("1", "true", "yes")


def load_docs(**metadata: Any) -> dict[str, Any]:
    """Documents (split `test`): prompt, instruction, reference output, and the judge settings."""
    import datasets

    from implicit_if.data import load_pairs
    from implicit_if.formats import check_format, format_prompt

    fmt = check_format(str(metadata.get("format", "tulu")))
    offline = truthy(setting(metadata, "offline"))
    limit = metadata.get("n_instructions")
    dataset = str(setting(metadata, "dataset"))
    rows = load_pairs(dataset, offline=True if offline else None, limit=None if limit is None else int(limit))
    references = _references(str(setting(metadata, "reference")), dataset, rows)
    tokenizer = _tokenizer(metadata) if fmt == "chat_template" else None
    model = metadata.get("pretrained") or metadata.get("model") or "model"
    settings = {
        "judge": str(setting(metadata, "judge")),
        "judge_base_url": setting(metadata, "judge_base_url"),
        "judge_cache": setting(metadata, "judge_cache"),
        "both_orders": None if setting(metadata, "both_orders") is None else truthy(setting(metadata, "both_orders")),
        "seed": int(setting(metadata, "seed")),
        "outputs_path": setting(metadata, "outputs_path"),
        "annotations_path": setting(metadata, "annotations_path"),
        "generator": Path(str(model)).name or str(model),
    }
    docs = []
    for n, row in enumerate(rows):
        reference = references[row["instruction"]]
        docs.append(
            {
                "index": n,
                "id": str(row.get("id", n)),
                "instruction": row["instruction"],
                "prompt": format_prompt(row["instruction"], fmt, tokenizer),
                "dataset": str(row.get("dataset") or dataset),
                "reference_output": reference["output"],
                "reference_generator": reference.get("generator", "reference"),
                "settings": json.dumps(settings, sort_keys=True),
            }
        )
    return {"test": datasets.Dataset.from_list(docs)}


def _references(reference: str, dataset: str, rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    from implicit_if.judging.references import reference_record

    if reference == "dataset":
        return {row["instruction"]: reference_record(row, dataset) for row in rows}
    path = Path(reference)
    if not path.is_file():
        raise ValueError(f"reference {reference!r}: give 'dataset' or an existing model_outputs JSON file")
    records = {r["instruction"]: r for r in json.loads(path.read_text(encoding="utf-8"))}
    missing = [row["instruction"] for row in rows if row["instruction"] not in records]
    if missing:
        raise ValueError(
            f"{path} has no output for {len(missing)} of the {len(rows)} instructions "
            f"(first: {missing[0][:60]!r}): generate the reference on the same dataset"
        )
    return records


def _tokenizer(metadata: dict[str, Any]):
    from transformers import AutoTokenizer

    from implicit_if.models import resolve_model

    name = metadata.get("tokenizer") or metadata.get("pretrained")
    if not name:
        raise ValueError("format chat_template needs the tokenizer: pass --model_args pretrained=MODEL")
    return AutoTokenizer.from_pretrained(resolve_model(str(name)))


def process_results(doc: dict[str, Any], results: list[str]) -> dict[str, dict[str, Any]]:
    """Keep the output with what the judge pass needs; every metric receives the same item."""
    item = {
        "instruction": doc["instruction"],
        "output": results[0].strip(),
        "dataset": doc["dataset"],
        "reference_output": doc["reference_output"],
        "reference_generator": doc["reference_generator"],
        "settings": doc["settings"],
    }
    return {name: item for name in METRICS}


_MEMO: dict[str, dict[str, Any]] = {}


def judged_metrics(items: list[dict[str, Any]]) -> dict[str, Any]:
    """One judge pass over all outputs (memoised across the metric functions), then the metrics."""
    digest = hashlib.sha256(json.dumps(items, sort_keys=True).encode("utf-8")).hexdigest()
    if digest in _MEMO:
        return _MEMO[digest]
    from implicit_if.cli._common import atomic_write_json
    from implicit_if.judging import judge_outputs, load_judge_spec
    from implicit_if.winrate import compute_metrics

    settings = json.loads(items[0]["settings"])
    outputs = [
        {
            "instruction": i["instruction"],
            "output": i["output"],
            "generator": settings["generator"],
            "dataset": i["dataset"],
        }
        for i in items
    ]
    references = [
        {
            "instruction": i["instruction"],
            "output": i["reference_output"],
            "generator": i["reference_generator"],
            "dataset": i["dataset"],
        }
        for i in items
    ]
    spec = load_judge_spec(settings["judge"], base_url=settings["judge_base_url"])
    annotations, summary = judge_outputs(
        outputs,
        references,
        spec,
        cache_path=settings["judge_cache"],
        seed=settings["seed"],
        both_orders=settings["both_orders"],
    )
    print(f"implicit_if_alpacaeval judge: {summary.line()}")
    if not summary.complete:
        raise RuntimeError(f"{len(summary.failed)} judge requests failed; rerun (verdicts so far are cached)")
    if settings["outputs_path"]:
        atomic_write_json(Path(settings["outputs_path"]), outputs)
    if settings["annotations_path"]:
        atomic_write_json(Path(settings["annotations_path"]), annotations)
    _MEMO[digest] = compute_metrics(annotations, seed=settings["seed"])
    return _MEMO[digest]


def lc_win_rate(items):
    return judged_metrics(items)["length_controlled_winrate"]


def lc_win_rate_ci_low(items):
    return judged_metrics(items)["length_controlled_winrate_ci_low"]


def lc_win_rate_ci_high(items):
    return judged_metrics(items)["length_controlled_winrate_ci_high"]


def win_rate(items):
    return judged_metrics(items)["win_rate"]


def win_rate_ci_low(items):
    return judged_metrics(items)["win_rate_ci_low"]


def win_rate_ci_high(items):
    return judged_metrics(items)["win_rate_ci_high"]


def discrete_win_rate(items):
    return judged_metrics(items)["discrete_win_rate"]


METRICS = (
    "lc_win_rate",
    "lc_win_rate_ci_low",
    "lc_win_rate_ci_high",
    "win_rate",
    "win_rate_ci_low",
    "win_rate_ci_high",
    "discrete_win_rate",
)
