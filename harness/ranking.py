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


def win_counts(
    instruction: np.ndarray, response: np.ndarray, score: np.ndarray, compared: np.ndarray, n_ids: int
) -> tuple[np.ndarray, np.ndarray]:
    """The metric's one implementation (the CLI, the lm-eval task and the board all call it).

    Pairs are integer codes `instruction[k]`, `response[k]` < `n_ids` with a `score`; each pair with
    `compared[k]` set is compared with its instruction's true pair (code, code): won when the true
    pair scores higher, lost when lower, a tie (e.g. two identical responses) counts half.
    Returns per code (comparisons won, comparisons made); a compared pair whose instruction has no
    true pair is left out rather than guessed. Vectorised: a board reads thousands of pairs per entry.
    """
    is_true = instruction == response
    has_true = np.zeros(n_ids, dtype=bool)
    has_true[instruction[is_true]] = True
    true_score = np.zeros(n_ids)
    true_score[instruction[is_true]] = score[is_true]
    group = instruction[compared]
    known = has_true[group]
    group, target, other = group[known], true_score[group[known]], score[compared][known]
    with np.errstate(invalid="ignore"):
        outcome = np.where(target > other, 1.0, np.where(target < other, 0.0, 0.5))
    return np.bincount(group, weights=outcome, minlength=n_ids), np.bincount(group, minlength=n_ids)


def comparison_counts(records: Iterable[Mapping]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per variant: (comparisons won, comparisons made) of each instruction with a complete comparison, by id.

    Variants: `mean` (the study's: per-token mean), `sum` (raw log-prob sum) and `conditional`
    (p(r_i | i) > p(r_i | j), grouped by the response's own instruction). A comparison whose records
    are missing (e.g. lm-eval's --limit cut an instruction's records short) is left out; a pair
    recorded twice counts once (the last record).
    """
    by_pair = {(int(r["instruction_id"]), int(r["response_id"])): r for r in records}
    if not by_pair:
        return {variant: (np.zeros(0), np.zeros(0, dtype=int)) for variant in ("mean", "sum", "conditional")}
    ids, codes = np.unique(np.array(list(by_pair), dtype=np.int64), return_inverse=True)
    instruction, response = codes.reshape(-1, 2).T
    rows = list(by_pair.items())
    roles = [r.get("roles", [ROLE_TRUE if i == j else ROLE_DISTRACTOR]) for (i, j), r in rows]
    logprob = np.array([float(r["logprob"]) for _, r in rows])
    mean = logprob / np.maximum(np.array([int(r["n_tokens"]) for _, r in rows]), 1)  # as `build_records` writes it
    distractor = np.array([ROLE_DISTRACTOR in found for found in roles], dtype=bool)
    conditional = np.array([ROLE_CONDITIONAL in found for found in roles], dtype=bool)
    counted = {
        "mean": win_counts(instruction, response, mean, distractor, len(ids)),
        "sum": win_counts(instruction, response, logprob, distractor, len(ids)),
        # the response's own instruction against another: swap the roles of the two codes
        "conditional": win_counts(response, instruction, logprob, conditional, len(ids)),
    }
    return {variant: (wins[made > 0], made[made > 0]) for variant, (wins, made) in counted.items()}


def _variant_summary(wins: np.ndarray, counts: np.ndarray, seed: int) -> dict:
    if not counts.size:
        return {"estimate": None, "ci_low": None, "ci_high": None, "n_instructions": 0, "n_comparisons": 0}
    overall = float(wins.sum() / counts.sum())
    # Resample instructions: the k comparisons of one instruction move together. With equal k per
    # instruction the mean of per-instruction fractions is the overall fraction.
    interval: Interval = bootstrap_mean_ci((wins / counts).tolist(), seed=seed)
    equal_k = len(set(counts.tolist())) == 1
    return {
        "estimate": overall,
        "ci_low": interval.low if equal_k else None,
        "ci_high": interval.high if equal_k else None,
        "ci_method": f"{interval.method} bootstrap over instructions"
        if equal_k
        else "n/a (unequal comparisons per instruction)",
        "n_instructions": int(counts.size),
        "n_comparisons": int(counts.sum()),
        "n_won": float(wins.sum()),
    }


def summarize(records: Iterable[Mapping], seed: int = 0) -> dict:
    """The `--json` summary: `response_ranking` (the study's metric) and its two other views."""
    counts = comparison_counts(records)
    return {
        "response_ranking": _variant_summary(*counts["mean"], seed),
        "response_ranking_sum": _variant_summary(*counts["sum"], seed),
        "response_ranking_conditional": _variant_summary(*counts["conditional"], seed),
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
    from pathlib import Path

    from .io import parse_jsonl

    rows, lines = parse_jsonl(Path(path).read_text(encoding="utf-8"), path)
    pairs: list[dict] = []
    for number, row in zip(lines, rows):
        if not isinstance(row, dict) or not all(isinstance(row.get(key), str) for key in ("instruction", "response")):
            raise ValueError(f'{path}:{number}: each line needs string fields "instruction" and "response"')
        pairs.append(
            {"id": str(row.get("id", len(pairs))), "instruction": row["instruction"], "response": row["response"]}
        )
    return pairs
