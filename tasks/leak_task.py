"""lm-eval glue for `implicit_if_leak`: greedy answers to general instructions, then the same
style detectors as `implicit-if leak` (implicit_if.leakage); one rate per detector."""

from __future__ import annotations

from typing import Any

from implicit_if.leakage import DETECTORS, detect

DEFAULT_DATASET = "offline_instructions"


def load_docs(**metadata: Any) -> dict[str, Any]:
    """Documents (split `test`): one formatted prompt per instruction. Metadata keys (optional,
    via --metadata JSON): dataset (offline_instructions; alpaca_eval for the study's set),
    n_instructions (all), format (tulu), offline (false)."""
    import datasets
    from transformers import AutoTokenizer

    from implicit_if.data import load_pairs
    from implicit_if.formats import check_format, format_prompt
    from implicit_if.models import resolve_model

    fmt = check_format(str(metadata.get("format", "tulu")))
    limit = metadata.get("n_instructions")
    offline = str(metadata.get("offline", "false")).lower() in ("1", "true", "yes")
    rows = load_pairs(
        str(metadata.get("dataset", DEFAULT_DATASET)),
        offline=True if offline else None,
        limit=None if limit is None else int(limit),
    )
    tokenizer = None
    if fmt == "chat_template":  # only this format needs the model's own tokenizer
        name = metadata.get("tokenizer") or metadata.get("pretrained")
        if not name:
            raise ValueError("format chat_template needs the tokenizer: pass --model_args pretrained=MODEL")
        tokenizer = AutoTokenizer.from_pretrained(resolve_model(str(name)))
    docs = [
        {
            "index": n,
            "id": str(row.get("id", n)),
            "instruction": row["instruction"],
            "prompt": format_prompt(row["instruction"], fmt, tokenizer),
        }
        for n, row in enumerate(rows)
    ]
    return {"test": datasets.Dataset.from_list(docs)}


def process_results(doc: dict[str, Any], results: list[str]) -> dict[str, bool]:
    """One output -> one boolean per detector (the leakage record, minus its index)."""
    return detect(results[0])


METRICS = tuple(DETECTORS)
