"""The three judge kinds. Each turns ordered pairs into verdicts and hands every verdict to a
callback the moment it exists (the caller commits it to the cache right then).

- `openai_logprobs`: one-token chat completion; p(second better) from the two label tokens'
  log-probabilities (continuous, like AlpacaEval 2's weighted judge);
- `openai_verdict`: the same endpoint without log-probabilities; the reply is parsed into a
  discrete verdict (many proxies drop log-probabilities);
- `local`: our hf or vllm backend scores the two labels as continuations of the judge prompt;
- `local_pointwise`: our hf backend grades each answer alone (yes/no logit margin, the two label
  rows of the output layer in float32) and compares the two grades; order-free, and each
  (instruction, answer) is scored once and cached, so a reference serves every model.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..openai_endpoint import BadResponse, EndpointError, RequestFailed, Usage, run_coroutine, usage_counts
from .cache import Verdict, VerdictCache, answer_key
from .client import ChatClient
from .prompt import (
    LABELS,
    POINTWISE_LABELS,
    checked_logprob,
    judge_messages,
    label_probability,
    pair_probability,
    parse_verdict,
    pointwise_messages,
    pointwise_probability,
)
from .specs import JudgeSpec


@dataclass(frozen=True)
class Comparison:
    """One ordered pair for the judge; `key` is its cache key."""

    key: str
    instruction: str
    first: str
    second: str


@dataclass
class JudgeRun:
    """What happened during one run of a judge (for the summary and the exit status)."""

    usage: Usage = field(default_factory=Usage)
    failed: dict[str, str] = field(default_factory=dict)  # comparison key -> reason


OnVerdict = Callable[[Comparison, Verdict], None]


def run_judge(
    spec: JudgeSpec,
    comparisons: Sequence[Comparison],
    on_verdict: OnVerdict,
    *,
    seed: int = 0,
    progress: bool = True,
    cache: VerdictCache | None = None,
) -> JudgeRun:
    """Judge every comparison with the judge `spec` describes (`cache` keeps a pointwise judge's
    per-answer scores)."""
    if spec.kind == "local_pointwise":
        return loaded_judge(spec).run(comparisons, on_verdict, cache=cache, progress=progress)
    if spec.kind == "local":
        return loaded_judge(spec).run(comparisons, on_verdict, progress=progress)
    # run_coroutine also works inside a running event loop (notebooks)
    return run_coroutine(_run_endpoint(spec, comparisons, on_verdict, seed=seed, progress=progress))


@functools.lru_cache(maxsize=1)
def loaded_judge(spec: JudgeSpec) -> LocalJudge | PointwiseJudge:
    """A local judge with its model loaded, kept for the next run of the same spec in this process
    (the demo judges several entries in a row; loading a 1.5B model each time costs tens of seconds).
    One at a time, so a second judge does not double the memory."""
    return PointwiseJudge(spec) if spec.kind == "local_pointwise" else LocalJudge(spec)


# -- OpenAI-compatible endpoints ------------------------------------------------------------------


def endpoint_payload(spec: JudgeSpec, comparison: Comparison) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "model": spec.model,
        "messages": judge_messages(comparison.instruction, comparison.first, comparison.second, spec.max_answer_chars),
        "max_tokens": spec.effective_max_tokens,
        "temperature": spec.temperature,
    }
    if spec.kind == "openai_logprobs":
        payload.update(logprobs=True, top_logprobs=spec.top_logprobs)
    return payload


def read_logprob_verdict(body: dict[str, Any]) -> Verdict:
    """Verdict from the first generated token's top log-probabilities; BadResponse if they are missing."""
    try:
        first_token = body["choices"][0]["logprobs"]["content"][0]
        candidates = first_token["top_logprobs"]
    except (KeyError, IndexError, TypeError):
        raise BadResponse("response carries no log-probabilities for the first token") from None
    if not isinstance(candidates, list) or not candidates:
        raise BadResponse("response carries no top log-probabilities")
    try:
        p_second = label_probability(candidates)
        labels = {
            str(c.get("token", "")).strip(): round(checked_logprob(c["logprob"]), 4)
            for c in candidates
            if str(c.get("token", "")).strip() in LABELS
        }
    except (AttributeError, KeyError, TypeError, ValueError, OverflowError):
        raise BadResponse("malformed top log-probabilities") from None
    return Verdict(p_second, json.dumps(labels, sort_keys=True), *usage_counts(body))


def read_text_verdict(body: dict[str, Any]) -> Verdict:
    """Discrete verdict parsed from the reply text; BadResponse if there is no text at all."""
    try:
        text = body["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise BadResponse("response carries no message content") from None
    if not isinstance(text, str):
        raise BadResponse("response message content is not text")
    return Verdict(parse_verdict(text), text[:200], *usage_counts(body))


async def _run_endpoint(
    spec: JudgeSpec, comparisons: Sequence[Comparison], on_verdict: OnVerdict, *, seed: int, progress: bool
) -> JudgeRun:
    from tqdm.auto import tqdm

    validate = read_logprob_verdict if spec.kind == "openai_logprobs" else read_text_verdict
    run = JudgeRun()
    api_key = os.environ.get(spec.api_key_env) or None
    client = ChatClient(
        spec.base_url,
        api_key,
        concurrency=spec.concurrency,
        timeout_s=spec.timeout_s,
        max_retries=spec.max_retries,
        backoff_base_s=spec.backoff_base_s,
        backoff_max_s=spec.backoff_max_s,
        seed=seed,
    )
    run.usage = client.usage
    bar = tqdm(total=len(comparisons), desc=f"judge ({spec.name})", unit="pair", disable=not progress)

    async def judge_one(comparison: Comparison) -> None:
        try:
            verdict = await client.complete(endpoint_payload(spec, comparison), validate)
        except RequestFailed as error:
            run.failed[comparison.key] = str(error)
        else:
            on_verdict(comparison, verdict)
        bar.update()

    tasks = [asyncio.create_task(judge_one(c)) for c in comparisons]
    try:
        await asyncio.gather(*tasks)
    except EndpointError:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    finally:
        bar.close()
        await client.aclose()
    return run


# -- local judges (our backends) ------------------------------------------------------------------


class LocalJudge:
    """Reads the two labels' log-probabilities as the next token after the chat-formatted judge prompt.

    With the hf backend: one forward pass per prompt, logits at the last position only (both
    labels are single tokens of the same context, so one pass gives both). Otherwise, or when a
    label is not a single token, each label is scored as a continuation with `backend.score`.
    """

    def __init__(self, spec: JudgeSpec) -> None:
        from ..backends import get_backend

        options: dict[str, Any] = {"dtype": spec.effective_dtype, "progress": False}
        if spec.backend == "hf":
            options["batch_size"] = spec.batch_size
        self.spec = spec
        self.backend = get_backend(spec.backend, spec.model, **options)
        self.tokenizer = self.backend.tokenizer
        label_ids = [self.tokenizer(label, add_special_tokens=False)["input_ids"] for label in LABELS]
        single = all(len(ids) == 1 for ids in label_ids)
        self.label_token_ids = [ids[0] for ids in label_ids] if single else None

    def context(self, comparison: Comparison) -> str:
        from ..formats import format_messages

        messages = judge_messages(
            comparison.instruction, comparison.first, comparison.second, self.spec.max_answer_chars
        )
        fmt = "chat_template" if getattr(self.tokenizer, "chat_template", None) else "tulu"
        return format_messages(messages, fmt, self.tokenizer)

    def label_logprobs(self, contexts: Sequence[str]) -> list[tuple[float, float]]:
        """(log p(first label), log p(second label)) for each context."""
        if self.spec.backend == "hf" and self.label_token_ids is not None:  # one pass gives both labels
            return self.backend.next_token_logprobs(contexts, self.label_token_ids)
        scored = self.backend.score(
            [ctx for ctx in contexts for _ in LABELS], [label for _ in contexts for label in LABELS], add_eos=False
        )
        return [(scored[2 * i].logprob, scored[2 * i + 1].logprob) for i in range(len(contexts))]

    def run(self, comparisons: Sequence[Comparison], on_verdict: OnVerdict, *, progress: bool = True) -> JudgeRun:
        from tqdm.auto import tqdm

        run = JudgeRun()
        step = self.spec.batch_size
        contexts = [self.context(c) for c in comparisons]
        # Similar lengths share a batch, so little of it is padding.
        order = sorted(range(len(comparisons)), key=lambda i: len(contexts[i]))
        with tqdm(total=len(comparisons), desc=f"judge ({self.spec.name})", unit="pair", disable=not progress) as bar:
            for start in range(0, len(order), step):
                chunk = [comparisons[i] for i in order[start : start + step]]
                scored = self.label_logprobs([contexts[i] for i in order[start : start + step]])
                for comparison, (first, second) in zip(chunk, scored):
                    raw = json.dumps({LABELS[0]: round(first, 4), LABELS[1]: round(second, 4)}, sort_keys=True)
                    on_verdict(comparison, Verdict(pair_probability(first, second), raw))
                bar.update(len(chunk))
        return run


class PointwiseJudge:
    """Grades each answer alone: score = logit("Yes") - logit("No") after the grading prompt.

    The body runs in the spec's precision (bfloat16 where the CPU has it); only the two label rows
    of the output layer are applied, in float32, to the last hidden state: a bfloat16 output layer
    rounds logits to steps of 0.125 or coarser, as large as the differences being compared.
    """

    def __init__(self, spec: JudgeSpec) -> None:
        from ..backends import get_backend

        if spec.backend != "hf":
            raise ValueError(f"judge {spec.name!r}: pointwise judges run on the hf backend (backend: hf)")
        self.spec = spec
        self.judge_hash = spec.identity_hash()
        self.backend = get_backend(
            "hf", spec.model, dtype=spec.effective_dtype, batch_size=spec.batch_size, progress=False
        )
        self.tokenizer = self.backend.tokenizer
        ids = [self.tokenizer(label, add_special_tokens=False)["input_ids"] for label in POINTWISE_LABELS]
        if any(len(i) != 1 for i in ids):
            raise ValueError(
                f"judge {spec.name!r}: the labels {POINTWISE_LABELS} are not single tokens for {spec.model}"
            )
        self.label_token_ids = [i[0] for i in ids]

    def context(self, instruction: str, answer: str) -> str:
        from ..formats import format_messages

        messages = pointwise_messages(instruction, answer, self.spec.max_answer_chars)
        fmt = "chat_template" if getattr(self.tokenizer, "chat_template", None) else "tulu"
        return format_messages(messages, fmt, self.tokenizer)

    def scores(self, items: Sequence[tuple[str, str]], on_score: Callable[[int, float], None], progress: bool) -> None:
        """Grade (instruction, answer) items, shortest prompts first, calling on_score(index, score)."""
        from tqdm.auto import tqdm

        contexts = [self.context(i, a) for i, a in items]
        order = sorted(range(len(items)), key=lambda k: len(contexts[k]))
        step = self.spec.batch_size
        with tqdm(total=len(items), desc=f"judge ({self.spec.name})", unit="answer", disable=not progress) as bar:
            for start in range(0, len(order), step):
                chunk = order[start : start + step]
                margins = self.backend.label_margins([contexts[k] for k in chunk], self.label_token_ids)
                for k, margin in zip(chunk, margins):
                    on_score(k, margin)
                bar.update(len(chunk))

    def run(
        self,
        comparisons: Sequence[Comparison],
        on_verdict: OnVerdict,
        *,
        cache: VerdictCache | None = None,
        progress: bool = True,
    ) -> JudgeRun:
        keys = {}
        for c in comparisons:
            for answer in (c.first, c.second):
                keys.setdefault(answer_key(self.judge_hash, c.instruction, answer), (c.instruction, answer))
        known = cache.get_scores(keys) if cache is not None else {}
        todo = [key for key in keys if key not in known]

        def store(index: int, score: float) -> None:
            known[todo[index]] = score
            if cache is not None:
                cache.put_score(todo[index], self.judge_hash, score)  # committed now

        self.scores([keys[key] for key in todo], store, progress)
        for c in comparisons:
            first = known[answer_key(self.judge_hash, c.instruction, c.first)]
            second = known[answer_key(self.judge_hash, c.instruction, c.second)]
            raw = json.dumps({"first": round(first, 4), "second": round(second, 4)}, sort_keys=True)
            on_verdict(c, Verdict(pointwise_probability(first, second), raw))
        return JudgeRun()
