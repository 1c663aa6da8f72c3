"""What a judging run will cost before it starts (`implicit-if judge --estimate`); sends nothing.

The comparisons come from the function `judge_outputs` uses (`plan_comparisons`) and "cached" is
the same lookup it makes
(`VerdictCache.get_many` on the comparison keys; for a pointwise judge also `get_scores` on the
answer keys), so the remaining count is what the run asks for when nothing fails:

- `openai_logprobs`, `openai_verdict`: one chat request per comparison not in the cache (a pair
  judged in both orders is two comparisons; identical outputs are draws and never sent);
- `local` (hf): one forward pass per comparison; (vllm backend, or labels that are not single
  tokens) two scored sequences per comparison;
- `local_pointwise`: one forward pass per distinct (instruction, answer) of those comparisons
  whose score is not cached (a reference is scored once for every model).

Input tokens are counted as the prompt is sent: the judge's tokenizer where one is known (the
spec's `tokenizer`, a local judge's model, an endpoint model that is an embedded model already
prepared or a local directory) over the chat template's rendering; tiktoken for OpenAI models
(with OpenAI's per-message overhead); otherwise estimated from characters, and labelled so.
Output tokens: `max_tokens` per request (1 for a logprobs judge; an upper bound for a verdict
judge, whose reply may stop sooner); local judges generate nothing. Cost uses the spec's prices
as `Usage.cost` does. Time: ceil(requests / concurrency) x seconds per request (the spec's
`latency_s`, else the validation table's measurement for a local judge, else an assumption).

Imports neither torch nor transformers until a tokenizer is loaded.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import default_cache_path
from .cache import VerdictCache, answer_key
from .client import Usage
from .prompt import LABELS, judge_messages, pointwise_messages
from .specs import JudgeSpec

CHARS_PER_TOKEN = 4
# OpenAI's chat format: each message costs 3 tokens besides its role and content, and every reply
# is primed with 3 more (OpenAI cookbook, "How to count tokens with tiktoken").
OPENAI_TOKENS_PER_MESSAGE = 3
OPENAI_REPLY_PRIMING = 3
ASSUMED_ENDPOINT_LATENCY_S = 1.0
ENDPOINT_KINDS = frozenset({"openai_logprobs", "openai_verdict"})
OPENAI_MODEL_PREFIXES = ("gpt-", "o1", "o3", "o4", "chatgpt-", "text-davinci", "davinci", "babbage")

Messages = list[dict[str, str]]


@dataclass(frozen=True)
class TokenCounter:
    """Counts a request's input tokens; `source` says how, `exact` whether it is the judge's own tokenizer."""

    source: str
    exact: bool
    count: Callable[[Messages], int]
    single_token_labels: bool = True  # the local pairwise judge's fast path needs single-token labels


@dataclass
class JudgeEstimate:
    judge: str
    kind: str
    model: str
    pairs: int
    identical: int
    comparisons: int
    cached: int
    remaining: int  # comparisons the run will judge
    requests: int
    request_unit: str
    cached_answer_scores: int | None
    prompt_tokens: int
    completion_tokens: int
    token_source: str
    tokens_estimated: bool
    completion_note: str
    cost_usd: float | None
    cost_note: str
    seconds: float | None
    time_note: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> str:
        from tabulate import tabulate

        counts = f"{self.comparisons:,} ({self.pairs:,} pairs, {self.identical:,} identical = draws, never sent)"
        cached = f"{self.cached:,} of {self.comparisons:,} comparisons"
        if self.cached_answer_scores is not None:
            cached += f"; {self.cached_answer_scores:,} answer scores of the rest"
        tokens_in = f"{self.prompt_tokens:,} ({self.token_source})"
        if self.tokens_estimated:
            tokens_in = f"~{tokens_in}"
        cost = "unknown" if self.cost_usd is None else f"${self.cost_usd:.4f}"
        when = "unknown" if self.seconds is None else _duration(self.seconds)
        rows = [
            ("judge", f"{self.judge} ({self.kind}, {self.model})"),
            ("comparisons", counts),
            ("cached", cached),
            ("remaining", f"{self.remaining:,} comparisons"),
            ("requests", f"{self.requests:,} ({self.request_unit})"),
            ("input tokens", tokens_in),
            ("output tokens", f"{self.completion_tokens:,} ({self.completion_note})"),
            ("cost", f"{cost} ({self.cost_note})"),
            ("time", f"{when} ({self.time_note})"),
        ]
        return tabulate(rows, tablefmt="plain")


def estimate_judging(
    outputs: Sequence[Mapping[str, Any]],
    references: Sequence[Mapping[str, Any]],
    spec: JudgeSpec,
    *,
    cache_path: str | Path | None = None,
    seed: int = 0,
    both_orders: bool | None = None,
    counter: TokenCounter | None = None,
) -> JudgeEstimate:
    """The estimate for `judge_outputs(outputs, references, spec, ...)` with the same arguments.

    `counter` None: the judge's tokenizer as `token_counter(spec)` finds it. Raises ValueError on
    the inputs `judge_outputs` refuses (an output without a reference, a repeated instruction).
    """
    from . import plan_comparisons

    pairs, _, unique = plan_comparisons(outputs, references, spec, seed=seed, both_orders=both_orders)
    judge_hash = spec.identity_hash()
    todo_answers: dict[str, tuple[str, str]] = {}
    cached_scores = 0
    cache_file = Path(cache_path) if cache_path is not None else default_cache_path()
    if cache_file.exists():  # an estimate creates no cache
        with VerdictCache(cache_file) as cache:
            verdicts = cache.get_many(unique)
            todo = [c for key, c in unique.items() if key not in verdicts]
            if spec.kind == "local_pointwise":
                todo_answers = _answers(todo, judge_hash)
                known = cache.get_scores(todo_answers)
                cached_scores = len(known)
                todo_answers = {k: v for k, v in todo_answers.items() if k not in known}
    else:
        verdicts, todo = {}, list(unique.values())
        if spec.kind == "local_pointwise":
            todo_answers = _answers(todo, judge_hash)

    counter = counter or token_counter(spec)
    clip = spec.max_answer_chars
    if spec.kind == "local_pointwise":
        prompts = [pointwise_messages(i, a, clip) for i, a in todo_answers.values()]
        per_prompt, unit = 1, "forward passes of the local model, one per answer to grade; no HTTP"
    else:
        prompts = [judge_messages(c.instruction, c.first, c.second, clip) for c in todo]
        per_prompt, unit = 1, "chat requests, one per comparison; retries not counted"
        if spec.kind == "local":
            if spec.backend == "hf" and counter.single_token_labels:
                unit = "forward passes of the local model, one per comparison; no HTTP"
            else:
                per_prompt = 2
                unit = "sequences scored by the local model, one per label and comparison; no HTTP"
    requests = per_prompt * len(prompts)
    prompt_tokens = per_prompt * sum(counter.count(m) for m in prompts)
    if spec.kind == "local" and per_prompt == 2:
        prompt_tokens += len(prompts) * len(LABELS)  # each label follows its context (one token each, about)

    if spec.kind in ENDPOINT_KINDS:
        completion_tokens = requests * spec.effective_max_tokens
        if spec.kind == "openai_logprobs":
            completion_note = f"max_tokens {spec.effective_max_tokens} per request: the label token"
        else:
            completion_note = f"at most: max_tokens {spec.effective_max_tokens} per request; replies may stop sooner"
    else:
        completion_tokens = 0
        completion_note = "a local judge reads log-probabilities; it generates nothing"

    cost = Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens).cost(
        spec.price_per_million_input, spec.price_per_million_output
    )
    if cost is not None:
        cost_note = (
            f"${spec.price_per_million_input:g} / ${spec.price_per_million_output:g} per million tokens in / out"
        )
        if not counter.exact:
            cost_note += "; tokens estimated"
    elif spec.price_per_million_input is None and spec.price_per_million_output is None:
        cost_note = "the spec names no prices"
    else:
        missing = "price_per_million_input" if spec.price_per_million_input is None else "price_per_million_output"
        cost_note = f"the spec names no {missing}"

    seconds, time_note = _time(spec, requests, judge_hash)
    return JudgeEstimate(
        judge=spec.name,
        kind=spec.kind,
        model=spec.model,
        pairs=len(pairs),
        identical=sum(p.identical for p in pairs),
        comparisons=len(unique),
        cached=len(verdicts),
        remaining=len(todo),
        requests=requests,
        request_unit=unit,
        cached_answer_scores=cached_scores if spec.kind == "local_pointwise" else None,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        token_source=counter.source,
        tokens_estimated=not counter.exact,
        completion_note=completion_note,
        cost_usd=cost,
        cost_note=cost_note,
        seconds=seconds,
        time_note=time_note,
    )


def _answers(todo: Sequence[Any], judge_hash: str) -> dict[str, tuple[str, str]]:
    """A pointwise judge's answers to grade for `todo`, keyed as `PointwiseJudge.run` keys them."""
    keys: dict[str, tuple[str, str]] = {}
    for c in todo:
        for answer in (c.first, c.second):
            keys.setdefault(answer_key(judge_hash, c.instruction, answer), (c.instruction, answer))
    return keys


def _time(spec: JudgeSpec, requests: int, judge_hash: str) -> tuple[float | None, str]:
    if spec.kind in ENDPOINT_KINDS:
        rounds = math.ceil(requests / spec.concurrency)
        if spec.latency_s is not None:
            latency, source = spec.latency_s, "the spec's latency_s"
        else:
            latency, source = ASSUMED_ENDPOINT_LATENCY_S, "an assumption, not a measurement: set latency_s in the spec"
        note = f"{requests:,} requests / concurrency {spec.concurrency} = {rounds:,} rounds x {latency:g} s, {source}"
        return rounds * latency, note
    if spec.latency_s is not None:
        return requests * spec.latency_s, f"{requests:,} x {spec.latency_s:g} s, the spec's latency_s"
    measured = _measured_seconds_per_verdict(judge_hash)
    if measured is None:
        return None, "no measured speed for this judge configuration: set latency_s in the spec"
    return requests * measured, (
        f"{requests:,} x {measured:.3f} s, measured for this judge configuration in the validation table "
        "on the machine that built it"
    )


def _measured_seconds_per_verdict(judge_hash: str) -> float | None:
    """Seconds per new verdict of a shipped local judge in the committed validation table (one forward
    pass per verdict, batched as the run batches them), for the judge configuration `judge_hash`."""
    from .validation_results import RESULTS_FILE

    if not RESULTS_FILE.is_file():
        return None
    table = json.loads(RESULTS_FILE.read_text(encoding="utf-8"))
    for row in table.get("judges", []):
        if row.get("judge_config") == judge_hash and row.get("seconds_per_1000_verdicts"):
            return float(row["seconds_per_1000_verdicts"]) / 1000.0
    return None


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"~{seconds:.0f} s"
    if seconds < 5400:
        return f"~{seconds / 60:.0f} min"
    return f"~{seconds / 3600:.1f} h"


# -- token counting ---------------------------------------------------------------------------------


def token_counter(spec: JudgeSpec) -> TokenCounter:
    """How to count the input tokens of one request of `spec`'s judge.

    1. the spec's `tokenizer` (an embedded model name, HF name or path): ValueError if it cannot be loaded;
    2. a local judge's model (the tokenizer the run itself will load);
    3. an endpoint model that is an embedded model already prepared here, or a local directory;
    4. tiktoken for OpenAI model names, when its encoding can be had (not offline);
    5. otherwise characters / 4, labelled as estimated.
    """
    if spec.tokenizer:
        try:
            return hf_counter(_load_tokenizer(spec.tokenizer), spec, spec.tokenizer)
        except Exception as error:  # any loader failure is the same bad input
            raise ValueError(
                f"judge tokenizer {spec.tokenizer!r} cannot be loaded ({type(error).__name__}): give an embedded "
                "model name, a HF tokenizer name or a local model directory (tokenizer in the spec, or --tokenizer)"
            ) from None
    if spec.is_local:
        return hf_counter(_load_tokenizer(spec.model), spec, spec.model)
    local = _local_tokenizer_source(spec.model)
    if local is not None:
        try:
            return hf_counter(_load_tokenizer(local), spec, spec.model)
        except Exception:  # fall through to the estimate from characters
            pass
    reason = "the spec names no tokenizer"
    if spec.model.lower().startswith(OPENAI_MODEL_PREFIXES):
        counter, reason = _tiktoken_counter(spec.model)
        if counter is not None:
            return counter
    return chars_counter(reason)


def hf_counter(tokenizer: Any, spec: JudgeSpec, name: str) -> TokenCounter:
    """Tokens as the judge sends them: the messages rendered by the tokenizer's chat template (its
    per-message markup included; tulu where it has none), then tokenised. An endpoint (vLLM's chat
    completions) adds no special tokens to the rendered text; our local judges tokenise it with them."""
    from ..formats import format_messages

    fmt = "chat_template" if getattr(tokenizer, "chat_template", None) else "tulu"
    add_special = spec.is_local

    def count(messages: Messages) -> int:
        text = format_messages(messages, fmt, tokenizer)
        return len(tokenizer(text, add_special_tokens=add_special)["input_ids"])

    single = all(len(tokenizer(label, add_special_tokens=False)["input_ids"]) == 1 for label in LABELS)
    how = "its chat template" if fmt == "chat_template" else "the tulu format (no chat template)"
    return TokenCounter(f"tokenizer of {_short(name)}, {how}", True, count, single)


def chars_counter(reason: str) -> TokenCounter:
    """Characters / 4 plus OpenAI's per-message overhead: a rough figure, labelled as one."""

    def count(messages: Messages) -> int:
        chars = sum(len(m["content"]) for m in messages)
        return math.ceil(chars / CHARS_PER_TOKEN) + OPENAI_TOKENS_PER_MESSAGE * len(messages) + OPENAI_REPLY_PRIMING

    return TokenCounter(f"estimated from characters, {CHARS_PER_TOKEN} per token: {reason}", False, count)


def _tiktoken_counter(model: str) -> tuple[TokenCounter | None, str]:
    from importlib.util import find_spec

    from ..data.hub import offline_env

    if find_spec("tiktoken") is None:
        return None, "tiktoken is not installed"
    env = offline_env()
    if env:  # tiktoken downloads its encoding on first use
        return None, f"{env} is set and tiktoken may need to download its encoding"
    import tiktoken

    try:
        encoding = tiktoken.encoding_for_model(model)
    except KeyError:
        return None, f"tiktoken does not know {model!r}"
    except Exception as error:  # a failed download of the encoding
        return None, f"tiktoken's encoding is unavailable ({type(error).__name__})"

    def count(messages: Messages) -> int:
        total = OPENAI_REPLY_PRIMING
        for message in messages:
            total += OPENAI_TOKENS_PER_MESSAGE + sum(len(encoding.encode(v)) for v in message.values())
        return total

    source = f"tiktoken {encoding.name} with OpenAI's per-message overhead"
    return TokenCounter(source, True, count), ""


def _local_tokenizer_source(model: str) -> str | None:
    """An endpoint model whose tokenizer is here without a download: an embedded model already prepared, or a
    local directory."""
    from ..models import EMBEDDED_MODELS
    from ..models.prepare import is_prepared

    if model in EMBEDDED_MODELS:
        return model if is_prepared(model) else None
    return model if os.path.isdir(model) else None


def _load_tokenizer(name: str) -> Any:
    from transformers import AutoTokenizer

    from ..models import resolve_model

    return AutoTokenizer.from_pretrained(resolve_model(name))


def _short(name: str) -> str:
    return name if len(name) <= 60 else "..." + name[-57:]
