"""Re-judge a submission's annotations with its own judge, where that judge runs here.

Preferences are self-reported: nothing in a file stops a submitter from writing the verdicts
they would like. The offline local judges (a built-in spec, a model embedded in a pinned wheel,
float32 on CPU) run in CI, so for them the pull-request job asks the judge again: every
comparison the annotations declare (the same instruction, the same two answers, in the same
order) goes through the verdict cache, and a preference that differs from the declared one by
more than `TOLERANCE` is refused. API judges cannot run in CI (no key, and they drift): their
entries are marked self-reported on every board (`judge_provenance`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, NamedTuple

from ..winrate.preferences import normalise_preference
from . import records, safety
from .problems import Problem

# Preference units (1 = reference better .. 2 = model better). The same float32 judge on another
# CPU differs by rounding (about 1e-6); a forged verdict moves a preference by far more than this.
TOLERANCE = 0.01
ORDERS = {"model_first": (True,), "reference_first": (False,), "both": (False, True), "identical": ()}
SELF_REPORTED = "self-reported"
REJUDGED = "re-judged in CI"


class JudgeCheck(NamedTuple):
    """Whether CI can re-judge these annotations, and with what."""

    spec: Any | None  # judging.specs.JudgeSpec when it can
    reason: str = ""  # why not, when it cannot

    @property
    def runnable(self) -> bool:
        return self.spec is not None


def runnable_judge(rows: list[dict[str, Any]]) -> JudgeCheck:
    """The judge the annotations name, when it is a built-in local judge with the same configuration here."""
    from ..judging.specs import builtin_spec_names, load_judge_spec

    names = {str(r.get("annotator")) for r in rows}
    configs = {str(r.get("judge_config")) for r in rows if r.get("order") != "identical"}
    if len(names) != 1 or len(configs) > 1:
        return JudgeCheck(None, "the annotations name more than one judge")
    name = names.pop()
    if name not in builtin_spec_names():
        return JudgeCheck(None, f"judge {name!r} is not a built-in judge")
    spec = load_judge_spec(name)
    if not (spec.is_local and spec.backend == "hf"):
        return JudgeCheck(None, f"judge {name} is served by an endpoint, which CI cannot call")
    if configs and configs != {spec.identity_hash()}:
        return JudgeCheck(
            None,
            f"judge configuration {configs.pop()} is not {name}'s configuration here "
            f"({spec.identity_hash()}: another precision, prompt or model revision)",
        )
    return JudgeCheck(spec)


def judge_provenance(rows: list[dict[str, Any]]) -> str:
    """What the board says of an entry's win rate: re-judged in CI, or self-reported."""
    return REJUDGED if runnable_judge(rows).runnable else SELF_REPORTED


def rejudge(
    rows: list[dict[str, Any]], where: str, *, cache_path: str | Path | None = None, progress: bool = True
) -> list[Problem]:
    """Ask the annotations' judge again for every declared comparison; one problem per kind of mismatch."""
    from ..judging import JudgeSummary, judge_comparisons
    from ..judging.pairing import Pair, annotation, comparisons_for

    spec, reason = runnable_judge(rows)
    if spec is None:
        fix = "nothing to fix; the board marks its win rate self-reported"
        return [Problem(where, f"cannot be re-judged here: {reason}", fix, "warning")]
    keep_order = "keep the order the judge wrote"
    bad_order = [i for i, r in enumerate(rows) if r.get("order") not in ORDERS]
    if bad_order:
        order = rows[bad_order[0]].get("order")
        return [Problem(where, f"row {bad_order[0] + 1}: order {order!r} is none of {', '.join(ORDERS)}", keep_order)]
    # the declared preferences, as the board reads them
    declared = [normalise_preference(r.get("preference"), r["output_1"], r["output_2"]) for r in rows]
    kept = [(i, r) for i, r in enumerate(rows) if math.isfinite(declared[i])]  # dropped ones count for nothing
    judge_hash = spec.identity_hash()
    pairs = [
        Pair(r["instruction"], {"output": r["output_1"]}, {"output": r["output_2"]}, ORDERS[r["order"]])
        for _, r in kept
    ]
    mislabelled = [i for (i, r), pair in zip(kept, pairs) if pair.identical != (r["order"] == "identical")]
    if mislabelled:
        return [
            Problem(where, f"row {mislabelled[0] + 1}: order 'identical' does not match the two outputs", keep_order)
        ]
    per_pair = [comparisons_for(pair, judge_hash) for pair in pairs]
    unique = {c.key: c for comparisons in per_pair for c in comparisons}
    summary = JudgeSummary(n_pairs=len(pairs), n_identical=sum(p.identical for p in pairs))
    verdicts = judge_comparisons(unique, spec, summary, cache_path=cache_path, progress=progress)
    if summary.failed:
        return [Problem(where, f"{len(summary.failed)} comparisons failed to re-judge", "rerun the check")]
    differ = []
    for (i, _row), pair, comparisons in zip(kept, pairs, per_pair):
        again = annotation(pair, [verdicts[c.key] for c in comparisons], spec.name, judge_hash)["preference"]
        if again is None or abs(declared[i] - again) > TOLERANCE:
            differ.append((i, declared[i], again))
    if not differ:
        return []
    i, first, again = differ[0]
    shown = "nothing" if again is None else f"{again:.4f}"
    message = (
        f"{len(differ)} of {len(kept)} preferences differ from a re-judgement by {spec.name} "
        f"(first: row {i + 1}, declared {first:.4f}, re-judged {shown})"
    )
    return [Problem(where, message, "submit the judge's own annotations (`implicit-if judge`), unedited")]


def rejudge_submissions(
    submissions: Path, names: list[str], *, cache_path: str | Path | None = None, progress: bool = True
) -> list[Problem]:
    """`rejudge` for each named folder (already checked) that holds annotations."""
    problems: list[Problem] = []
    for name in names:
        path = submissions / name / safety.ANNOTATIONS
        rows = records.read_annotations(path)[0] if path.is_file() else None
        if rows is not None:  # `check` has refused it otherwise
            problems += rejudge(rows, f"{name}/{safety.ANNOTATIONS}", cache_path=cache_path, progress=progress)
    return problems
