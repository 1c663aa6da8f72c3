"""Ranking records must hold exactly the comparisons the declared plan produces.

The plan (which K distractor responses each instruction is compared with) is a pure function
of the number of ranked pairs, K and the seed (`implicit_if.ranking.plan_comparisons`), so the
checker regenerates it: a submission that drops the instructions where the true response lost,
adds comparisons of its choosing, or scores with another seed is refused.
"""

from __future__ import annotations

import numpy as np

from ..ranking import plan_comparisons
from .records import RankingColumns

Issue = tuple[str, str]
FIX = "score exactly the pairs `implicit-if rank` plans (declare ranking_plan in metadata if not the defaults)"


def _examples(pairs: set[tuple[int, int]]) -> str:
    shown = ", ".join(f"{i}/{j}" for i, j in sorted(pairs)[:3])
    return f"{len(pairs)} (e.g. {shown})"


def plan_issues(columns: RankingColumns, n_pairs: int, distractors: int, seed: int) -> list[Issue]:
    """Problems with the set of scored comparisons, compared with the regenerated plan."""
    if columns.positions is None:
        message = "instruction_id and response_id are not the integer positions of the ranked pairs"
        return [(message, "write the records `implicit-if rank` writes (integer ids)")]
    try:
        plan = plan_comparisons(n_pairs, distractors, seed)
    except ValueError as error:
        return [(f"the ranking plan cannot be made: {error}", "fix ranking_plan in metadata.json")]
    instruction, response = columns.positions
    is_distractor = columns.is_distractor & (instruction != response)
    have = set(zip(instruction[is_distractor].tolist(), response[is_distractor].tolist()))
    want = {(i, j) for i, drawn in enumerate(plan.distractors) for j in drawn}
    trues, ranked = set(instruction[instruction == response].tolist()), set(range(n_pairs))
    messages = []
    if missing := want - have:
        messages.append(f"{_examples(missing)} planned comparisons are missing (instruction/response)")
    if extra := have - want:
        plan_text = f"{n_pairs} pairs, {distractors} distractors, seed {seed}"
        messages.append(f"{_examples(extra)} comparisons are not in the plan ({plan_text})")
    if missing_true := ranked - trues:
        messages.append(f"{len(missing_true)} instructions lack their true pair, e.g. {min(missing_true)}")
    if trues - ranked:
        messages.append(f"true pairs outside the {n_pairs} ranked instructions, e.g. {max(trues)}")
    if np.any((instruction < 0) | (response < 0)):
        messages.append("negative ids")
    return [(message, FIX) for message in messages]
