"""Response ranking (the study's Eq. 3): does the model prefer an instruction's own response?

For independent pairs (i, r_i) and (j, r_j), a comparison is won when the model scores r_i above
r_j given i. The score is the per-token mean log-probability of the response followed by EOS
(the study's code); the raw sum is reported as a second view. A third view, which the study did
not report, conditions the other way: r_i is scored under i and under the distractor
instructions j, and a comparison is won when p(r_i | i) > p(r_i | j). For one response the
token count is the same under any instruction, so mean and sum agree there.

Everything here is pure: `plan_comparisons` draws the distractors, `scoring_jobs` lists the
(instruction, response) pairs to score, `build_records` joins scores to the plan, and
`summarize` turns records into the metrics. The CLI and the lm-eval task only add I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .statistics import Interval, bootstrap_mean_ci

DEFAULT_DISTRACTORS = 5
DEFAULT_SEED = 0
DEFAULT_LIMIT = 1000  # the study ranks the first 1,000 Alpaca training examples

ROLE_TRUE = "true"  # (i, r_i)
ROLE_DISTRACTOR = "distractor"  # (i, r_j): j is one of i's distractors
ROLE_CONDITIONAL = "conditional"  # (j, r_i): i's response under one of i's distractor instructions


@dataclass(frozen=True)
class Plan:
    """Which distractors each instruction is compared with (indices into the pairs)."""

    n_pairs: int
    distractors: tuple[tuple[int, ...], ...]
    seed: int

    @property
    def k(self) -> int:
        return len(self.distractors[0]) if self.distractors else 0


def plan_comparisons(n_pairs: int, k: int = DEFAULT_DISTRACTORS, seed: int = DEFAULT_SEED) -> Plan:
    """For each pair i, k distinct other pairs drawn uniformly without replacement (seeded)."""
    if k < 1:
        raise ValueError(f"need at least 1 distractor per instruction, got {k}")
    if n_pairs < k + 1:
        raise ValueError(
            f"{n_pairs} pairs cannot give {k} distractors each: use at least {k + 1} pairs or fewer distractors"
        )
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_pairs):
        drawn = rng.choice(n_pairs - 1, size=k, replace=False)
        rows.append(tuple(int(j + (j >= i)) for j in drawn))  # skip i itself
    return Plan(n_pairs, tuple(rows), seed)


def scoring_jobs(plan: Plan, conditional: bool = True) -> list[tuple[int, int, tuple[str, ...]]]:
    """Unique (instruction_id, response_id, roles) to score, grouped by instruction.

    A pair can serve two roles: (i, r_j) is a distractor for i and, when i is also one of j's
    distractors, the conditional comparison for j. It is scored once.
    """
    roles: dict[tuple[int, int], list[str]] = {}
    for i, distractors in enumerate(plan.distractors):
        roles.setdefault((i, i), []).append(ROLE_TRUE)
        for j in distractors:
            roles.setdefault((i, j), []).append(ROLE_DISTRACTOR)
            if conditional:
                roles.setdefault((j, i), []).append(ROLE_CONDITIONAL)
    ordered = sorted(roles, key=lambda key: (key[0], key[0] != key[1], key[1]))
    return [(i, j, tuple(roles[(i, j)])) for i, j in ordered]


def build_records(
    jobs: Sequence[tuple[int, int, tuple[str, ...]]],
    scores: Sequence[tuple[float, int]],
    pair_ids: Sequence[str] | None = None,
) -> list[dict]:
    """One ranking record per scored pair: ids, roles, the log-prob sum and its token count."""
    if len(jobs) != len(scores):
        raise ValueError(f"{len(jobs)} jobs but {len(scores)} scores")
    records = []
    for (i, j, roles), (logprob, n_tokens) in zip(jobs, scores):
        record = {
            "instruction_id": i,
            "response_id": j,
            "roles": list(roles),
            "logprob": float(logprob),
            "n_tokens": int(n_tokens),
            "mean_logprob": float(logprob) / max(int(n_tokens), 1),
        }
        if pair_ids is not None:
            record["instruction_key"] = pair_ids[i]
            record["response_key"] = pair_ids[j]
        records.append(record)
    return records


def _win(a: float, b: float) -> float:
    """1 if a beats b, 0 if it loses; a tie (e.g. two identical responses) counts half."""
    return 1.0 if a > b else 0.0 if a < b else 0.5


def comparison_outcomes(records: Iterable[Mapping]) -> dict[str, dict[int, list[float]]]:
    """Per variant, per instruction, the outcomes of its complete comparisons.

    Variants: `mean` (the study's: per-token mean), `sum` (raw log-prob sum) and `conditional`
    (p(r_i | i) > p(r_i | j)). A comparison whose records are missing (e.g. lm-eval's --limit
    cut an instruction's records short) is left out rather than guessed.
    """
    by_pair: dict[tuple[int, int], Mapping] = {}
    for record in records:
        by_pair[(int(record["instruction_id"]), int(record["response_id"]))] = record
    outcomes: dict[str, dict[int, list[float]]] = {"mean": {}, "sum": {}, "conditional": {}}
    for (i, j), record in by_pair.items():
        roles = record.get("roles", [ROLE_TRUE if i == j else ROLE_DISTRACTOR])
        if ROLE_DISTRACTOR in roles and (i, i) in by_pair:
            true = by_pair[(i, i)]
            outcomes["mean"].setdefault(i, []).append(_win(true["mean_logprob"], record["mean_logprob"]))
            outcomes["sum"].setdefault(i, []).append(_win(true["logprob"], record["logprob"]))
        if ROLE_CONDITIONAL in roles and (j, j) in by_pair:
            own = by_pair[(j, j)]
            outcomes["conditional"].setdefault(j, []).append(_win(own["logprob"], record["logprob"]))
    return outcomes


def _variant_summary(per_instruction: Mapping[int, list[float]], seed: int) -> dict:
    if not per_instruction:
        return {"estimate": None, "ci_low": None, "ci_high": None, "n_instructions": 0, "n_comparisons": 0}
    ids = sorted(per_instruction)
    wins = [sum(per_instruction[i]) for i in ids]
    counts = [len(per_instruction[i]) for i in ids]
    overall = sum(wins) / sum(counts)
    # Resample instructions: the k comparisons of one instruction move together. With equal k per
    # instruction the mean of per-instruction fractions is the overall fraction.
    interval: Interval = bootstrap_mean_ci([w / c for w, c in zip(wins, counts)], seed=seed)
    equal_k = len(set(counts)) == 1
    return {
        "estimate": overall,
        "ci_low": interval.low if equal_k else None,
        "ci_high": interval.high if equal_k else None,
        "ci_method": f"{interval.method} bootstrap over instructions"
        if equal_k
        else "n/a (unequal comparisons per instruction)",
        "n_instructions": len(ids),
        "n_comparisons": int(sum(counts)),
        "n_won": float(sum(wins)),
    }


def summarize(records: Iterable[Mapping], seed: int = 0) -> dict:
    """The `--json` summary: `response_ranking` (the study's metric) and its two other views."""
    outcomes = comparison_outcomes(list(records))
    return {
        "response_ranking": _variant_summary(outcomes["mean"], seed),
        "response_ranking_sum": _variant_summary(outcomes["sum"], seed),
        "response_ranking_conditional": _variant_summary(outcomes["conditional"], seed),
        "confidence": 0.95,
    }


# -- scoring the plan (model-facing; torch is imported only here) ----------------------------


def tokenize_jobs(
    tokenizer, pairs: Sequence[Mapping], jobs: Sequence[tuple[int, int, tuple[str, ...]]], fmt: str = "tulu"
):
    """The study's token pairs for each job: formatted instruction i, then response j and EOS."""
    from .formats import format_prompt, uses_special_tokens_in_text
    from .tokenization import tokenize_context, tokenize_continuation

    specials = not uses_special_tokens_in_text(fmt)  # a chat template already carries them
    prompts: dict[int, list[int]] = {}
    responses: dict[int, list[int]] = {}
    out = []
    for i, j, _ in jobs:
        if i not in prompts:
            prompts[i] = tokenize_context(tokenizer, format_prompt(pairs[i]["instruction"], fmt, tokenizer), specials)
        if j not in responses:
            responses[j] = tokenize_continuation(tokenizer, pairs[j]["response"])
        out.append((prompts[i], responses[j]))
    return out


def rank(
    backend,
    pairs: Sequence[Mapping],
    *,
    k: int = DEFAULT_DISTRACTORS,
    seed: int = DEFAULT_SEED,
    fmt: str = "tulu",
    conditional: bool = True,
    batch_size: int | None = None,
    progress: bool = False,
) -> list[dict]:
    """Score the whole plan through any backend (`score_tokens` on its own tokenizer's ids) and
    return the ranking records; the hf backend uses its exact blocked scorer."""
    jobs = scoring_jobs(plan_comparisons(len(pairs), k, seed), conditional)
    token_pairs = tokenize_jobs(backend.tokenizer, pairs, jobs, fmt)
    per_token = backend.score_tokens(token_pairs, batch_size=batch_size, progress=progress)
    scores = [(sum(values), len(values)) for values in per_token]
    return build_records(jobs, scores, [str(p.get("id", n)) for n, p in enumerate(pairs)])


# -- inputs (I/O at the edge) -----------------------------------------------------------------


def read_pairs_jsonl(path) -> list[dict]:
    """Pairs from a JSONL file; every line needs string `instruction` and `response` fields."""
    import json

    pairs: list[dict] = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(
                    f"{path}:{number}: not valid JSON ({error.msg}); each line must be one JSON object"
                ) from None
            if not isinstance(row, dict) or not all(
                isinstance(row.get(key), str) for key in ("instruction", "response")
            ):
                raise ValueError(f'{path}:{number}: each line needs string fields "instruction" and "response"')
            pairs.append(
                {"id": str(row.get("id", len(pairs))), "instruction": row["instruction"], "response": row["response"]}
            )
    return pairs
