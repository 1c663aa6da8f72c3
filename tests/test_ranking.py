"""Response ranking's pure parts: the seeded plan, the jobs, and the metric over records."""

from __future__ import annotations

import pytest

from implicit_if.ranking import (
    ROLE_CONDITIONAL,
    ROLE_DISTRACTOR,
    ROLE_TRUE,
    build_records,
    plan_comparisons,
    scoring_jobs,
    summarize,
)


def test_plan_is_seeded_distinct_and_never_picks_itself() -> None:
    plan = plan_comparisons(50, 5, seed=0)
    assert plan == plan_comparisons(50, 5, seed=0)
    assert plan.distractors != plan_comparisons(50, 5, seed=1).distractors
    assert plan.k == 5 and len(plan.distractors) == 50
    for i, row in enumerate(plan.distractors):
        assert i not in row and len(set(row)) == 5 and all(0 <= j < 50 for j in row)


def test_plan_reaches_every_other_pair() -> None:
    # Uniform over the others: with many draws every j != i shows up for i = 0 at some seed.
    seen = set()
    for seed in range(200):
        seen.update(plan_comparisons(6, 1, seed=seed).distractors[0])
    assert seen == {1, 2, 3, 4, 5}


def test_plan_rejects_too_few_pairs() -> None:
    with pytest.raises(ValueError, match="at least 6 pairs"):
        plan_comparisons(5, 5)
    with pytest.raises(ValueError, match="at least 1 distractor"):
        plan_comparisons(10, 0)


def test_jobs_are_unique_and_carry_their_roles() -> None:
    plan = plan_comparisons(8, 3, seed=0)
    jobs = scoring_jobs(plan)
    keys = [(i, j) for i, j, _ in jobs]
    assert len(keys) == len(set(keys))
    roles = {(i, j): r for i, j, r in jobs}
    for i, row in enumerate(plan.distractors):
        assert roles[(i, i)] == (ROLE_TRUE,)
        for j in row:
            assert ROLE_DISTRACTOR in roles[(i, j)]
            assert ROLE_CONDITIONAL in roles[(j, i)]
    # Without the conditional view: exactly K + 1 per instruction, as the study scores.
    plain = scoring_jobs(plan, conditional=False)
    assert len(plain) == 8 * 4
    assert all(ROLE_CONDITIONAL not in r for _, _, r in plain)
    # Grouped by instruction, the true pair first (the scorer reuses each prompt's cache).
    assert [i for i, _, _ in jobs] == sorted(i for i, _, _ in jobs)


def _records(scores: dict[tuple[int, int], tuple[float, int]], plan) -> list[dict]:
    jobs = scoring_jobs(plan)
    return build_records(jobs, [scores[(i, j)] for i, j, _ in jobs])


def test_summary_counts_wins_by_mean_and_by_sum() -> None:
    plan = plan_comparisons(3, 2, seed=0)  # every pair is compared with both others
    # Instruction 0's own response is short and likely per token; the others are long.
    scores = {}
    for i in range(3):
        for j in range(3):
            scores[(i, j)] = (-10.0, 10) if i == j else (-30.0, 60)  # mean -1.0 vs -0.5; sum -10 vs -30
    scores[(1, 1)] = (-40.0, 10)  # mean -4: loses on mean, loses on sum to -30
    summary = summarize(_records(scores, plan))
    main = summary["response_ranking"]
    # Mean: true -1 loses to -0.5 for instructions 0 and 2; instruction 1 (-4) loses too.
    assert main["estimate"] == 0.0 and main["n_comparisons"] == 6 and main["n_instructions"] == 3
    raw = summary["response_ranking_sum"]
    # Sum: -10 beats -30 (instructions 0, 2: 4 wins), -40 loses (instruction 1).
    assert raw["estimate"] == pytest.approx(4 / 6)
    assert raw["ci_low"] <= raw["estimate"] <= raw["ci_high"]


def test_conditional_view_compares_one_response_under_two_instructions() -> None:
    plan = plan_comparisons(3, 2, seed=0)
    scores = {(i, j): (-20.0 if i == j else -25.0, 10) for i in range(3) for j in range(3)}
    scores[(0, 2)] = (-5.0, 10)  # response 2 is likelier under instruction 0 than under its own
    summary = summarize(_records(scores, plan))
    cond = summary["response_ranking_conditional"]
    assert cond["n_comparisons"] == 6
    assert cond["estimate"] == pytest.approx(5 / 6)


def test_ties_count_half_and_partial_records_are_skipped() -> None:
    plan = plan_comparisons(2, 1, seed=0)
    scores = {(0, 0): (-5.0, 5), (0, 1): (-5.0, 5), (1, 1): (-1.0, 5), (1, 0): (-9.0, 5)}
    records = _records(scores, plan)
    summary = summarize(records)
    assert summary["response_ranking"]["estimate"] == pytest.approx((0.5 + 1.0) / 2)
    # Drop instruction 1's true record: its comparison cannot be made and is left out.
    partial = [r for r in records if (r["instruction_id"], r["response_id"]) != (1, 1)]
    assert summarize(partial)["response_ranking"]["n_comparisons"] == 1


def test_records_have_the_contract_fields() -> None:
    plan = plan_comparisons(3, 1, seed=0)
    jobs = scoring_jobs(plan)
    records = build_records(jobs, [(-6.0, 3)] * len(jobs), ["a", "b", "c"])
    first = records[0]
    assert {"instruction_id", "response_id", "logprob", "n_tokens", "mean_logprob", "roles"} <= set(first)
    assert first["mean_logprob"] == pytest.approx(-2.0)
    assert first["instruction_key"] == "a"
    with pytest.raises(ValueError, match="jobs but"):
        build_records(jobs, [(-1.0, 1)])


def test_empty_summary_is_explicit() -> None:
    assert summarize([])["response_ranking"]["estimate"] is None
