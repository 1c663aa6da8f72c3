"""Pairwise judging: model outputs against reference outputs, cached, AlpacaEval-compatible.

    annotations, summary = judge_outputs(outputs, references, load_judge_spec("smollm2-local"))

`outputs` and `references` are AlpacaEval model_outputs records (`instruction`, `output`,
`generator`, ...). Verdicts are cached in SQLite (see `cache`) and committed one by one, so an
interrupted run resumes where it stopped. See docs/judging.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .cache import Verdict, VerdictCache
from .client import EndpointError, Usage
from .judges import Comparison, run_judge
from .pairing import annotation, comparisons_for, match_outputs
from .specs import JudgeSpec, builtin_spec_names, load_judge_spec

__all__ = [
    "EndpointError",
    "JudgeSpec",
    "JudgeSummary",
    "builtin_spec_names",
    "default_cache_path",
    "judge_outputs",
    "load_judge_spec",
]


@dataclass
class JudgeSummary:
    """Counts for the end-of-run line; `failed` maps comparison keys to reasons (retried next run)."""

    n_pairs: int = 0
    n_identical: int = 0
    n_comparisons: int = 0
    n_cached: int = 0
    n_new: int = 0
    n_unusable: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    usage: Usage = field(default_factory=Usage)
    cost_usd: float | None = None

    @property
    def complete(self) -> bool:
        return not self.failed

    def line(self) -> str:
        parts = [
            f"{self.n_pairs} pairs ({self.n_identical} identical = draws), {self.n_comparisons} judge comparisons: "
            f"{self.n_cached} cached, {self.n_new} new, {len(self.failed)} failed, {self.n_unusable} without a usable label",
        ]
        if self.usage.requests:
            cost = "n/a (no prices in the judge spec)" if self.cost_usd is None else f"${self.cost_usd:.4f}"
            parts.append(f"requests {self.usage.requests} ({self.usage.retries} retries); tokens "
                         f"{self.usage.prompt_tokens:,} in / {self.usage.completion_tokens:,} out; cost {cost}")
        return "; ".join(parts)


def default_cache_path() -> Path:
    from ..paths import cache_dir

    return cache_dir("judge") / "verdicts.sqlite"


def judge_comparisons(unique: Mapping[str, Comparison], spec: JudgeSpec, summary: JudgeSummary, *,
                      cache_path: str | Path | None = None, seed: int = 0, progress: bool = True) -> dict[str, Verdict]:
    """Verdicts for comparisons keyed by their cache keys: cached ones read, the rest asked and
    committed one by one. Fills the counts, failures, usage and cost of `summary`."""
    judge_hash = spec.identity_hash()
    summary.n_comparisons = len(unique)
    with VerdictCache(cache_path or default_cache_path()) as cache:
        cache.register_judge(judge_hash, spec.identity())
        verdicts = cache.get_many(unique)
        summary.n_cached = len(verdicts)
        todo = [c for key, c in unique.items() if key not in verdicts]

        def store(comparison: Comparison, verdict: Verdict) -> None:
            cache.put(comparison.key, judge_hash, verdict)  # committed now: a kill after this loses nothing
            verdicts[comparison.key] = verdict
            summary.n_new += 1

        if todo:
            run = run_judge(spec, todo, store, seed=seed, progress=progress, cache=cache)
            summary.failed, summary.usage = run.failed, run.usage
            summary.cost_usd = run.usage.cost(spec.price_per_million_input, spec.price_per_million_output)
    return verdicts


def judge_outputs(
    outputs: Sequence[Mapping[str, Any]],
    references: Sequence[Mapping[str, Any]],
    spec: JudgeSpec,
    *,
    cache_path: str | Path | None = None,
    seed: int = 0,
    both_orders: bool | None = None,
    progress: bool = True,
) -> tuple[list[dict[str, Any]], JudgeSummary]:
    """Judge every model output against the reference output of the same instruction.

    Returns one annotation per output (preference None where a comparison failed; the summary
    lists those, and a rerun retries exactly them). Raises EndpointError when the endpoint cannot
    serve the run at all; verdicts received before that stay cached. `both_orders` None follows
    the spec.
    """
    both_orders = spec.both_orders if both_orders is None else both_orders
    pairs = match_outputs(outputs, references, seed=seed, both_orders=both_orders)
    judge_hash = spec.identity_hash()
    per_pair = [comparisons_for(pair, judge_hash) for pair in pairs]
    unique: dict[str, Comparison] = {c.key: c for comps in per_pair for c in comps}
    summary = JudgeSummary(n_pairs=len(pairs), n_identical=sum(p.identical for p in pairs))
    verdicts = judge_comparisons(unique, spec, summary, cache_path=cache_path, seed=seed, progress=progress)
    summary.n_unusable = sum(1 for v in verdicts.values() if v.p_second is None)
    annotations = []
    for pair, comps in zip(pairs, per_pair):
        found = [verdicts.get(c.key) for c in comps]
        if any(v is None for v in found):
            record = annotation(pair, [], spec.name, judge_hash)
            record.update(preference=None, error="judge request failed; rerun to retry")
        else:
            record = annotation(pair, found, spec.name, judge_hash)  # type: ignore[arg-type]
        annotations.append(record)
    return annotations, summary
