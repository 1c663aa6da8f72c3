"""Pairwise judging: model outputs against reference outputs, cached, AlpacaEval-compatible.

    annotations, summary = judge_outputs(outputs, references, load_judge_spec("smollm2-local"))

`outputs` and `references` are AlpacaEval model_outputs records (`instruction`, `output`,
`generator`, ...). Verdicts are cached in SQLite (see `cache`) and committed one by one, so an
interrupted run resumes where it stopped. See docs/judging.md.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..openai_endpoint import EndpointError, Usage
from .cache import Verdict, VerdictCache
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
            f"{self.n_cached} cached, {self.n_new} new, {len(self.failed)} failed, "
            f"{self.n_unusable} without a usable label",
        ]
        if self.usage.requests:
            cost = "n/a (no prices in the judge spec)" if self.cost_usd is None else f"${self.cost_usd:.4f}"
            parts.append(
                f"requests {self.usage.requests} ({self.usage.retries} retries); tokens "
                f"{self.usage.prompt_tokens:,} in / {self.usage.completion_tokens:,} out; cost {cost}"
            )
        return "; ".join(parts)


def default_cache_path() -> Path:
    from ..paths import cache_dir

    return cache_dir("judge") / "verdicts.sqlite"


def judge_comparisons(
    unique: Mapping[str, Comparison],
    spec: JudgeSpec,
    summary: JudgeSummary,
    *,
    cache_path: str | Path | None = None,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Verdict]:
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

        todo = _outside_open_batches(todo, spec, cache, summary)  # Batch API hook, see below
        if todo and spec.kind in ENDPOINT_KINDS:
            _judge_claimed(todo, spec, summary, cache, store, verdicts, seed=seed, progress=progress)
        elif todo:
            run = run_judge(spec, todo, store, seed=seed, progress=progress, cache=cache)
            summary.failed, summary.usage = run.failed, run.usage
            summary.cost_usd = run.usage.cost(spec.price_per_million_input, spec.price_per_million_output)
    return verdicts


# Paid endpoints: processes sharing a cache claim comparisons before asking, so none is paid twice.
ENDPOINT_KINDS = frozenset({"openai_logprobs", "openai_verdict"})
CLAIM_TTL_S = 600.0  # a claim outlives a chunk's requests; a killed process's claims free up after this
CLAIM_POLL_S = 1.0


def _judge_claimed(
    todo: list[Comparison],
    spec: JudgeSpec,
    summary: JudgeSummary,
    cache: VerdictCache,
    store: Any,
    verdicts: dict[str, Verdict],
    *,
    seed: int,
    progress: bool,
) -> None:
    """Ask for `todo` in chunks this process has claimed; wait for what other processes hold."""
    import os
    import socket
    import uuid

    host = socket.gethostname()
    owner = f"{host}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    chunk_size = max(32, 4 * spec.concurrency)
    usage, pending = Usage(), list(todo)
    try:
        while pending:
            for dead in [o for o in cache.claim_owners() if _dead_here(o, host)]:
                cache.release(dead)  # a killed run on this machine: no need to wait for its claims to expire
            held = cache.claim([c.key for c in pending], owner, CLAIM_TTL_S)
            mine = [c for c in pending if c.key in held][:chunk_size]
            if mine:
                run = run_judge(spec, mine, store, seed=seed, progress=progress, cache=cache)
                summary.failed.update(run.failed)
                usage.add(run.usage)
                cache.release(owner, [c.key for c in mine])
            else:  # everything left is being asked by another process: wait for its verdicts
                time.sleep(CLAIM_POLL_S)
            verdicts.update(cache.get_many(c.key for c in pending if c.key not in verdicts))
            pending = [c for c in pending if c.key not in verdicts and c.key not in summary.failed]
    finally:
        cache.release(owner)
    summary.usage = usage
    summary.cost_usd = usage.cost(spec.price_per_million_input, spec.price_per_million_output)


def plan_comparisons(
    outputs: Sequence[Mapping[str, Any]],
    references: Sequence[Mapping[str, Any]],
    spec: JudgeSpec,
    *,
    seed: int = 0,
    both_orders: bool | None = None,
) -> tuple[list[Any], list[list[Comparison]], dict[str, Comparison]]:
    """(pairs, each pair's comparisons, the distinct comparisons by cache key): what a run asks,
    shared by `judge_outputs` and `estimate_judging` so the estimate counts exactly the run."""
    both_orders = spec.both_orders if both_orders is None else both_orders
    pairs = match_outputs(outputs, references, seed=seed, both_orders=both_orders)
    judge_hash = spec.identity_hash()
    per_pair = [comparisons_for(pair, judge_hash) for pair in pairs]
    return pairs, per_pair, {c.key: c for comps in per_pair for c in comps}


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
    pairs, per_pair, unique = plan_comparisons(outputs, references, spec, seed=seed, both_orders=both_orders)
    judge_hash = spec.identity_hash()
    summary = JudgeSummary(n_pairs=len(pairs), n_identical=sum(p.identical for p in pairs))
    verdicts = judge_comparisons(unique, spec, summary, cache_path=cache_path, seed=seed, progress=progress)
    summary.n_unusable = sum(1 for v in verdicts.values() if v.p_second is None)
    return annotations_from(pairs, per_pair, verdicts, spec.name, judge_hash), summary


def annotations_from(
    pairs: Sequence[Any],
    per_pair: Sequence[Sequence[Comparison]],
    verdicts: Mapping[str, Any],
    name: str,
    judge_hash: str,
) -> list[dict[str, Any]]:
    """One annotation per pair from its comparisons' verdicts (online or collected from a batch);
    a pair missing a verdict keeps preference None, to be retried."""
    annotations = []
    for pair, comps in zip(pairs, per_pair):
        found = [verdicts.get(c.key) for c in comps]
        if any(v is None for v in found):
            record = annotation(pair, [], name, judge_hash)
            record.update(preference=None, error="judge request failed; rerun to retry")
        else:
            record = annotation(pair, found, name, judge_hash)  # type: ignore[arg-type]
        annotations.append(record)
    return annotations


def _dead_here(owner: str, host: str) -> bool:
    """Whether a claim's owner ("host:pid:nonce") was a process on this machine that no longer runs."""
    import os

    owner_host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if owner_host != host or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


# -- Batch API hook (judging/batch.py, `judge --batch`) ---------------------------------------------
def _outside_open_batches(
    todo: list[Comparison], spec: JudgeSpec, cache: VerdictCache, summary: JudgeSummary
) -> list[Comparison]:
    """Comparisons an unfinished batch carries are not asked online (they would be paid twice):
    they count as failed, with the way to collect them."""
    if not todo or spec.kind not in ENDPOINT_KINDS:
        return todo
    held = cache.batch_held(c.key for c in todo)
    for key, batch_id in held.items():
        summary.failed[key] = (
            f"it is in batch {batch_id}, not collected yet: collect it with `implicit-if judge --batch`"
        )
    return [c for c in todo if c.key not in held]
