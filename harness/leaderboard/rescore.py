"""Re-score a sample of a submission's ranking pairs with its own model, where CI holds that model.

Log-probabilities are self-reported. When the entry's model is one CI can load, pinned to the
exact weights (an embedded model: `model.id` is its name and `model.revision` the digest of its
weights file), `leaderboard check --rescore` scores a seeded sample of the submitted pairs again,
in the precision the entry declares, and refuses per-token log-probabilities that differ by more
than the scorer's own tolerance for that precision. A hub model pinned to a commit would be
re-scored the same way from the hub; CI cannot reach the hub, so such entries stay self-reported.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..ranking import tokenize_jobs
from . import records, safety
from .problems import Problem
from .schema import SubmissionMetadata

SAMPLE = 8


def rescorable(model_id: str, revision: str | None) -> str:
    """'' when CI can load exactly these weights, else why not."""
    from ..models.registry import EMBEDDED_MODELS

    embedded = EMBEDDED_MODELS.get(model_id)
    if embedded is None:
        return f"model {model_id!r} is not one CI holds (the hub is not reachable from it)"
    if revision != embedded.revision:
        return f"revision {revision!r} is not the weights CI holds for {model_id} ({embedded.revision})"
    return ""


def rescore_ranking(folder: Path, label: str, *, sample: int = SAMPLE, seed: int = 0) -> list[Problem]:
    """Score `sample` of the submitted pairs again; one problem when any differs beyond tolerance."""
    # Here, not at the top: these load torch, which `leaderboard check` starts without.
    from ..backends.hf import load_model_and_tokenizer
    from ..data import load_pairs
    from ..scoring import SELF_CHECK_TOLERANCE, SELF_CHECK_TOLERANCE_HALF, score_token_ids_fast

    where = f"{label}/{safety.RANKING}"
    metadata = SubmissionMetadata.model_validate(json.loads((folder / safety.METADATA).read_text(encoding="utf-8")))
    why_not = rescorable(metadata.model.id, metadata.model.revision)
    if why_not:
        fix = "nothing to fix; the board marks them self-reported"
        return [Problem(where, f"log-probabilities not re-scored: {why_not}", fix, "warning")]
    columns, _ = records.read_ranking(folder / safety.RANKING)
    if columns is None or columns.positions is None:
        return []  # `check` has refused the file, or its ids are not positions (then it refused the plan)
    evaluation_set = metadata.evaluation_set
    pairs = load_pairs(evaluation_set.dataset, offline=True if evaluation_set.source == "fixture" else None)
    n_rows = len(columns.logprob)
    rows = np.sort(np.random.default_rng(seed).choice(n_rows, size=min(sample, n_rows), replace=False))
    instruction_at, response_at = columns.positions
    jobs = [(int(instruction_at[r]), int(response_at[r]), ()) for r in rows]
    dtype = (metadata.decoding and metadata.decoding.dtype) or "float32"
    model, tokenizer = load_model_and_tokenizer(metadata.model.id, None, dtype)
    token_pairs = tokenize_jobs(tokenizer, pairs, jobs, metadata.chat_format)
    again = score_token_ids_fast(model, token_pairs, batch_size=8, self_check=False)
    tolerance = SELF_CHECK_TOLERANCE if dtype == "float32" else SELF_CHECK_TOLERANCE_HALF  # per token
    differ = []
    for row, values in zip(rows, again):
        n_tokens = int(columns.n_tokens[row])
        declared, measured = float(columns.logprob[row]) / n_tokens, sum(values) / max(len(values), 1)
        if len(values) != n_tokens or abs(measured - declared) > tolerance:
            differ.append((int(row), declared, measured, n_tokens, len(values)))
    if not differ:
        return []
    row, declared, measured, declared_tokens, measured_tokens = differ[0]
    message = (
        f"{len(differ)} of {len(rows)} re-scored pairs differ from the file (first: line {row + 1}, "
        f"mean log-probability {declared:.4f} over {declared_tokens} tokens, re-scored {measured:.4f} over "
        f"{measured_tokens})"
    )
    return [Problem(where, message, "submit the scores `implicit-if rank` wrote, unedited")]


def rescore_submissions(submissions: Path, names: list[str]) -> list[Problem]:
    """`rescore_ranking` for each named folder (already checked) that holds ranking scores."""
    return [
        problem
        for name in names
        if (submissions / name / safety.RANKING).is_file()
        for problem in rescore_ranking(submissions / name, name)
    ]
