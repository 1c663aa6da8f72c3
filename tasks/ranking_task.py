"""lm-eval glue for `implicit_if_ranking`: the same records and metrics as `implicit-if rank`.

One lm-eval document per scored (instruction, response) pair of the same seeded plan. The metric
code is `implicit_if.ranking.summarize`, shared with the CLI.

Tokenisation. The study scores response tokens + EOS given the prompt's tokens, each part
tokenised on its own. lm-eval instead moves the context's trailing whitespace (the prompt ends
with "\n") into the continuation and tokenises context + continuation jointly. Each document
therefore gives lm-eval the prompt without its trailing whitespace as the context and asks for
two continuations: that whitespace alone, and the whitespace + response + EOS text; their
difference is the log-probability of exactly the response tokens and EOS given exactly the prompt
tokens, whenever joint tokenisation of prompt + response + EOS equals the separate one.
`load_docs` checks that per document with the model's tokenizer (`joint_tokenization_matches`);
where it fails, lm-eval's number scores slightly different tokens and the metric
`tokenization_mismatch_rate` says how often.
"""

from __future__ import annotations

from typing import Any

from implicit_if.ranking import (
    DEFAULT_DISTRACTORS,
    DEFAULT_LIMIT,
    DEFAULT_SEED,
    plan_comparisons,
    scoring_jobs,
    summarize,
)


def _truthy(value: Any) -> bool:
    return str(value).strip().lower() not in ("0", "false", "no", "off", "")


def _pairs(metadata: dict[str, Any]) -> list[dict[str, Any]]:
    n_pairs = int(metadata.get("n_pairs", DEFAULT_LIMIT))
    if metadata.get("pairs"):
        from implicit_if.ranking import read_pairs_jsonl

        return read_pairs_jsonl(metadata["pairs"])[:n_pairs]
    from implicit_if.data import load_pairs

    offline = True if _truthy(metadata.get("offline", False)) else None
    return load_pairs(str(metadata.get("dataset", "alpaca")), offline=offline, limit=n_pairs)


def _tokenizer(metadata: dict[str, Any]):
    from transformers import AutoTokenizer

    from implicit_if.models import resolve_model

    name = metadata.get("tokenizer") or metadata.get("pretrained")
    if not name:
        raise ValueError(
            "implicit_if_ranking needs the model's tokenizer to count response tokens: run it with "
            '--model_args pretrained=MODEL (hf), or pass --metadata \'{"tokenizer": "MODEL"}\''
        )
    return AutoTokenizer.from_pretrained(resolve_model(str(name)))


def load_docs(**metadata: Any) -> dict[str, Any]:
    """The task's documents (split `test`). Metadata keys (all optional, via --metadata JSON):
    dataset (alpaca), pairs (a JSONL file instead), n_pairs (1000), distractors (5), seed (0),
    format (tulu), conditional (true), offline (false); `pretrained` comes from --model_args."""
    import datasets

    from implicit_if.formats import check_format, format_prompt, uses_special_tokens_in_text
    from implicit_if.tokenization import tokenize_context, tokenize_continuation

    fmt = check_format(str(metadata.get("format", "tulu")))
    k = int(metadata.get("distractors", DEFAULT_DISTRACTORS))
    seed = int(metadata.get("seed", DEFAULT_SEED))
    pairs = _pairs(metadata)
    jobs = scoring_jobs(plan_comparisons(len(pairs), k, seed), _truthy(metadata.get("conditional", True)))
    tokenizer = _tokenizer(metadata)
    specials = not uses_special_tokens_in_text(fmt)
    eos_text = tokenizer.eos_token or ""

    rows = []
    for i, j, roles in jobs:
        context = format_prompt(pairs[i]["instruction"], fmt, tokenizer)
        response = pairs[j]["response"]
        ctx_ids = tokenize_context(tokenizer, context, specials)
        cont_ids = tokenize_continuation(tokenizer, response)
        joint = tokenizer(context + response + eos_text, add_special_tokens=specials)["input_ids"]
        stem = context.rstrip()  # lm-eval would move the trailing whitespace into the continuation anyway
        tail = context[len(stem) :]
        rows.append(
            {
                "instruction_id": i,
                "response_id": j,
                "roles": list(roles),
                "instruction_key": str(pairs[i].get("id", i)),
                "response_key": str(pairs[j].get("id", j)),
                "context": stem,
                "choices": ([tail, tail + response + eos_text] if tail else [response + eos_text]),
                "n_tokens": len(cont_ids),
                "joint_tokenization_matches": list(joint) == ctx_ids + cont_ids,
            }
        )
    return {"test": datasets.Dataset.from_list(rows)}


def process_results(doc: dict[str, Any], results: list[tuple[float, bool]]) -> dict[str, Any]:
    """Both log-likelihoods of one document -> its ranking record (fed to every metric)."""
    values = [float(result[0]) for result in results]
    logprob = values[1] - values[0] if len(values) == 2 else values[0]
    record = {
        "instruction_id": doc["instruction_id"],
        "response_id": doc["response_id"],
        "roles": list(doc["roles"]),
        "logprob": logprob,
        "n_tokens": int(doc["n_tokens"]),
        "mean_logprob": logprob / max(int(doc["n_tokens"]), 1),
        "joint_tokenization_matches": bool(doc["joint_tokenization_matches"]),
    }
    return {name: record for name in METRICS}


def _summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    return summarize(records)


def _estimate(records: list[dict[str, Any]], variant: str) -> float:
    value = _summary(records)[variant]["estimate"]
    return float("nan") if value is None else float(value)


def response_ranking(records: list[dict[str, Any]]) -> float:
    """Fraction of comparisons won, per-token mean log-probability (the study's metric)."""
    return _estimate(records, "response_ranking")


def response_ranking_ci_low(records: list[dict[str, Any]]) -> float:
    value = _summary(records)["response_ranking"]["ci_low"]
    return float("nan") if value is None else float(value)


def response_ranking_ci_high(records: list[dict[str, Any]]) -> float:
    value = _summary(records)["response_ranking"]["ci_high"]
    return float("nan") if value is None else float(value)


def response_ranking_sum(records: list[dict[str, Any]]) -> float:
    """The same comparisons won on the raw log-probability sum."""
    return _estimate(records, "response_ranking_sum")


def response_ranking_conditional(records: list[dict[str, Any]]) -> float:
    """Fraction won of p(r_i | i) > p(r_i | j) (needs conditional=true)."""
    return _estimate(records, "response_ranking_conditional")


def n_comparisons(records: list[dict[str, Any]]) -> float:
    return float(_summary(records)["response_ranking"]["n_comparisons"])


def tokenization_mismatch_rate(records: list[dict[str, Any]]) -> float:
    """Share of documents where lm-eval's joint tokenisation differs from the study's split one."""
    return sum(not r["joint_tokenization_matches"] for r in records) / max(len(records), 1)


METRICS = (
    "response_ranking",
    "response_ranking_ci_low",
    "response_ranking_ci_high",
    "response_ranking_sum",
    "response_ranking_conditional",
    "n_comparisons",
    "tokenization_mismatch_rate",
)
