"""The demo's entries: the embedded models on our instruction set, offline, end to end.

Gemma 3 270M (base) and SmolLM2-135M-Instruct, and the rule-based adapter on the base model, each
a `pipeline.RunSpec`: greedy outputs -> pairwise judgement against the set's reference answers
(the local Qwen2.5-Coder-1.5B pointwise judge: validated, its accuracy shown on the board) -> win
rate and LC win rate; response ranking; style leakage. `implicit-if demo` runs them and builds a board.
"""

from __future__ import annotations

from typing import Any

from .pipeline import RunResult, RunSpec

DEFAULT_ENTRIES = (
    RunSpec("gemma-3-270m-base", "gemma-3-270m", "tulu", "base"),
    RunSpec("smollm2-135m-instruct", "smollm2-135m-instruct", "chat_template", "instruction"),
)

# The rule-based adapter on the base model: all rules, and each rule alone (ablations).
RULES_ENTRIES = tuple(
    RunSpec(f"gemma-3-270m-rules-{label}", "gemma-3-270m", "tulu", "rules", spec)
    for label, spec in (
        ("all", "eos,uniform,diversity"),
        ("eos", "eos"),
        ("uniform", "uniform"),
        ("diversity", "diversity"),
    )
)
LICENSE = "the model's own licence (Gemma terms of use / Apache-2.0)"


def submission_metadata(judge: str) -> dict[str, str]:
    return {
        "license": LICENSE,
        "notes": f"Produced by `implicit-if demo` on CPU; judge {judge}, an offline judge with a validation table "
        "(docs/judging.md): it separates blatant failures, not close calls.",
    }


def paired_win_difference(first: RunResult, second: RunResult, annotations: tuple[list, list]) -> str:
    """One line: second minus first in win rate, paired over the same instructions (95% BCa bootstrap)."""
    from .statistics import paired_bootstrap_means
    from .winrate.preferences import normalise_preference

    def wins(records: list[dict[str, Any]]) -> dict[str, float]:
        return {
            r["instruction"]: normalise_preference(r.get("preference"), r.get("output_1"), r.get("output_2")) - 1
            for r in records
        }

    a, b = wins(annotations[0]), wins(annotations[1])
    shared = sorted(set(a) & set(b))
    boot = paired_bootstrap_means([[a[i] for i in shared], [b[i] for i in shared]], seed=0)
    interval = boot.combine([[-1.0, 1.0]]).interval(0)
    verdict = (
        "the interval excludes 0" if interval.low > 0 or interval.high < 0 else "the interval includes 0: not separated"
    )
    return (
        f"win rate, {second.spec.name} minus {first.spec.name}: {100 * interval.estimate:+.1f} points "
        f"[{100 * interval.low:+.1f}, {100 * interval.high:+.1f}] (paired over {len(shared)} instructions; {verdict})"
    )
