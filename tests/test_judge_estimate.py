"""`implicit-if judge --estimate` against the run that follows it: the same request count exactly
(loopback server: every request recorded; with part of the comparisons cached too), input and
output tokens within 10% of what a real vLLM server reports, pointwise judges counted per answer,
and the labels of what is not known (prices, tokenizer)."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest
from loopback_server import scripted_server
from typer.testing import CliRunner

from implicit_if.cli import app
from implicit_if.judging import judge_outputs, load_judge_spec
from implicit_if.judging.client import Usage
from implicit_if.judging.estimate import estimate_judging

KEY_ENV = "IMPLICIT_IF_TEST_ESTIMATE_KEY"
SUMMARY = re.compile(r"requests (\d+) \((\d+) retries\); tokens ([\d,]+) in / ([\d,]+) out")
LOGPROB_REPLY = {
    "choices": [
        {
            "message": {"content": "B"},
            "logprobs": {
                "content": [
                    {"token": "B", "top_logprobs": [{"token": "A", "logprob": -1.2}, {"token": "B", "logprob": -0.4}]}
                ]
            },
        }
    ],
    "usage": {"prompt_tokens": 100, "completion_tokens": 1},
}


def write_inputs(folder: Path, n: int = 10, identical_every: int = 4, model: str = "m") -> tuple[Path, Path]:
    """n instructions; every `identical_every`-th model output equals the reference (a draw, never sent)."""
    references = [
        {"instruction": f"Question {i}: name a colour.", "output": f"Reference answer {i}: blue.", "generator": "ref"}
        for i in range(n)
    ]
    outputs = [
        {
            "instruction": r["instruction"],
            "output": r["output"] if i % identical_every == 0 else f"{model} says {i}: " + "red " * (i + 1),
            "generator": model,
        }
        for i, r in enumerate(references)
    ]
    (folder / f"outputs-{model}.json").write_text(json.dumps(outputs), encoding="utf-8")
    (folder / "reference.json").write_text(json.dumps(references), encoding="utf-8")
    return folder / f"outputs-{model}.json", folder / "reference.json"


def write_spec(folder: Path, base_url: str, **fields) -> Path:
    spec = {
        "name": "estimate-test",
        "kind": "openai_logprobs",
        "model": "loopback-judge",
        "base_url": base_url,
        "api_key_env": KEY_ENV,
        "concurrency": 2,
        "max_retries": 1,
        "backoff_base_s": 0.01,
        **fields,
    }
    path = folder / f"spec-{len(list(folder.glob('spec-*.yaml')))}.yaml"
    path.write_text(json.dumps(spec), encoding="utf-8")
    return path


def judge_args(outputs: Path, reference: Path, spec: Path, cache: Path, *extra: str) -> list[str]:
    return [
        *("judge", "--outputs", str(outputs), "--reference", str(reference)),
        *("--judge", str(spec), "--cache", str(cache), *extra),
    ]


def estimate(args: list[str]) -> dict:
    result = CliRunner().invoke(app, [*args, "--estimate", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def run(args: list[str], output: Path) -> tuple[int, int, int]:
    """Judge for real; (requests, prompt tokens, completion tokens) from the command's summary line."""
    result = CliRunner().invoke(app, [*args, "--output", str(output)])
    assert result.exit_code == 0, result.output
    match = SUMMARY.search(result.stderr)
    assert match, result.stderr
    assert match.group(2) == "0", result.stderr  # no retries: the estimate counts requests when nothing fails
    return int(match.group(1)), int(match.group(3).replace(",", "")), int(match.group(4).replace(",", ""))


@pytest.fixture()
def loopback(monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sk-loopback")
    monkeypatch.setenv("IMPLICIT_IF_OFFLINE", "1")
    with scripted_server([(200, {}, LOGPROB_REPLY)]) as (url, seen):
        yield url, seen


@pytest.mark.parametrize("orders", [[], ["--both-orders"], ["--one-order"]])
def test_the_estimate_counts_exactly_the_requests_the_run_sends(tmp_path, loopback, orders):
    url, seen = loopback
    outputs, reference = write_inputs(tmp_path)
    args = judge_args(outputs, reference, write_spec(tmp_path, url, both_orders=True), tmp_path / "c.sqlite", *orders)
    before = estimate(args)
    assert not (tmp_path / "c.sqlite").exists()  # an estimate writes no cache
    assert before["pairs"] == 10 and before["identical"] == 3
    per_pair = 1 if orders == ["--one-order"] else 2  # the spec asks both orders; the flag overrides it
    assert before["comparisons"] == before["requests"] == 7 * per_pair and before["cached"] == 0
    assert seen == []  # nothing was sent
    requests, _, completion = run(args, tmp_path / "a.json")
    assert len(seen) == requests == before["requests"]
    assert completion == before["completion_tokens"]  # max_tokens 1, and the server says 1 per reply
    after = estimate(args)
    assert (after["cached"], after["requests"], after["prompt_tokens"]) == (before["requests"], 0, 0)


def test_with_part_cached_the_estimate_drops_by_exactly_that_and_the_run_sends_the_rest(tmp_path, loopback):
    url, seen = loopback
    outputs, reference = write_inputs(tmp_path, n=16)
    spec, cache = write_spec(tmp_path, url), tmp_path / "c.sqlite"
    first_half = tmp_path / "first.json"
    first_half.write_text(json.dumps(json.loads(outputs.read_text())[:7]), encoding="utf-8")
    full = estimate(judge_args(outputs, reference, spec, cache))
    part = estimate(judge_args(first_half, reference, spec, cache))
    requests, _, _ = run(judge_args(first_half, reference, spec, cache), tmp_path / "a.json")
    assert len(seen) == requests == part["requests"] > 0
    rest = estimate(judge_args(outputs, reference, spec, cache))
    assert rest["cached"] == part["requests"]
    assert rest["requests"] == full["requests"] - part["requests"] == rest["remaining"]
    del seen[:]
    requests, _, _ = run(judge_args(outputs, reference, spec, cache), tmp_path / "b.json")
    assert len(seen) == requests == rest["requests"]
    # the cached comparisons' prompts are exactly the tokens that dropped out of the estimate
    assert rest["prompt_tokens"] == full["prompt_tokens"] - part["prompt_tokens"]


def test_unknown_prices_and_an_unknown_tokenizer_are_labelled(tmp_path, loopback):
    url, seen = loopback
    outputs, reference = write_inputs(tmp_path)
    args = judge_args(outputs, reference, write_spec(tmp_path, url), tmp_path / "c.sqlite")
    result = CliRunner().invoke(app, [*args, "--estimate"])
    assert result.exit_code == 0, result.output
    lines = dict(re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in result.stdout.strip().splitlines())
    assert lines["cost"] == "unknown (the spec names no prices)"
    assert lines["input tokens"].startswith("~") and "estimated from characters" in lines["input tokens"]
    assert lines["requests"].startswith("7 ")
    assert "an assumption" in lines["time"] and "concurrency 2" in lines["time"]
    assert "nothing was sent" in result.stderr and seen == []
    data = estimate(args)
    assert data["tokens_estimated"] is True and data["cost_usd"] is None


def test_prices_give_the_cost_as_the_run_would_compute_it(tmp_path, loopback, smollm2_dir):
    url, _ = loopback
    outputs, reference = write_inputs(tmp_path)
    spec = write_spec(
        tmp_path,
        url,
        kind="openai_verdict",
        max_tokens=5,
        tokenizer=smollm2_dir,
        price_per_million_input=0.15,
        price_per_million_output=0.6,
        latency_s=0.5,
    )
    data = estimate(judge_args(outputs, reference, spec, tmp_path / "c.sqlite"))
    assert data["tokens_estimated"] is False and "chat template" in data["token_source"]
    assert data["completion_tokens"] == 5 * data["requests"] and data["completion_note"].startswith("at most")
    assert data["cost_usd"] == pytest.approx(
        Usage(prompt_tokens=data["prompt_tokens"], completion_tokens=data["completion_tokens"]).cost(0.15, 0.6)
    )
    assert data["seconds"] == pytest.approx(4 * 0.5)  # 7 requests at concurrency 2: 4 rounds of the spec's 0.5 s


def test_estimate_needs_no_output_path_and_the_run_still_does(tmp_path, loopback):
    url, _ = loopback
    outputs, reference = write_inputs(tmp_path)
    args = judge_args(outputs, reference, write_spec(tmp_path, url), tmp_path / "c.sqlite")
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and result.output.startswith("error: --output is required")
    result = CliRunner().invoke(app, [*args, "--output", str(tmp_path / "a.json"), "--json"])
    assert result.exit_code == 2 and result.output.startswith("error: --json")
    result = CliRunner().invoke(app, [*args, "--estimate", "--tokenizer", str(tmp_path / "no-such-tokenizer")])
    assert result.exit_code == 2 and result.output.startswith("error: judge tokenizer")
    assert len(result.output.strip().splitlines()) == 1


# -- real servers and models -------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.vllm
@pytest.mark.parametrize("kind", ["openai_logprobs", "openai_verdict"])
def test_the_estimate_matches_a_real_vllm_run(tmp_path, vllm_server, monkeypatch, kind):
    """SmolLM2 served by vLLM judges; its usage counts are the served tokenizer's. Half the comparisons
    are cached first, so the check covers the estimate after a partial run as well."""
    from implicit_if.data import load_pairs

    monkeypatch.setenv(KEY_ENV, vllm_server.api_key)
    monkeypatch.setenv("IMPLICIT_IF_OFFLINE", "1")
    monkeypatch.setenv("IMPLICIT_IF_CACHE", str(tmp_path / "cache"))
    pairs = load_pairs("offline_instructions", offline=True, limit=16)
    references = [{"instruction": p["instruction"], "output": p["response"], "generator": "ref"} for p in pairs]
    outputs = [
        {"instruction": p["instruction"], "output": p["response"] if i % 5 == 0 else pairs[i - 1]["response"]}
        for i, p in enumerate(pairs)
    ]
    (tmp_path / "reference.json").write_text(json.dumps(references), encoding="utf-8")
    (tmp_path / "outputs.json").write_text(json.dumps(outputs), encoding="utf-8")
    (tmp_path / "part.json").write_text(json.dumps(outputs[:6]), encoding="utf-8")
    spec = write_spec(
        tmp_path,
        vllm_server.base_url,
        kind=kind,
        model=vllm_server.model,
        tokenizer=vllm_server.model_dir,
        both_orders=True,
        concurrency=3,
        max_answer_chars=600,
        timeout_s=60,
        price_per_million_input=0.15,
        price_per_million_output=0.6,
    )
    cache = tmp_path / "c.sqlite"
    measured = {}
    for name in ("part", "outputs"):
        args = judge_args(tmp_path / f"{name}.json", tmp_path / "reference.json", spec, cache)
        predicted = estimate(args)
        actual = run(args, tmp_path / f"{name}-annotations.json")
        measured[name] = ((predicted["requests"], predicted["prompt_tokens"], predicted["completion_tokens"]), actual)
        assert predicted["cached"] == (0 if name == "part" else measured["part"][0][0])
        requests, prompt_tokens, completion_tokens = actual
        assert requests == predicted["requests"] > 0
        assert prompt_tokens == pytest.approx(predicted["prompt_tokens"], rel=0.10)
        if kind == "openai_logprobs":
            assert completion_tokens == pytest.approx(predicted["completion_tokens"], rel=0.10)
        else:  # max_tokens is what a reply may use at most
            assert 0 < completion_tokens <= predicted["completion_tokens"]
    print(f"\n{kind}: (requests, prompt tokens, completion tokens) estimated -> run: {measured}")


def answer_scores(cache: Path) -> int:
    db = sqlite3.connect(cache)
    try:
        return db.execute("SELECT COUNT(*) FROM answer_scores").fetchone()[0]
    finally:
        db.close()


@pytest.mark.slow
def test_a_pointwise_judge_grades_each_answer_once_as_estimated(tmp_path, smollm2_dir):
    """Pointwise: one forward pass per distinct answer not yet graded; a reference graded for one model is
    not graded again for the next, and the estimate knows it."""
    spec = load_judge_spec("pointwise:smollm2-135m-instruct", dtype="float32", batch_size=4)
    cache = tmp_path / "c.sqlite"
    outputs_a, reference = write_inputs(tmp_path, n=8, model="a")
    outputs_b, _ = write_inputs(tmp_path, n=8, model="b")
    refs = json.loads(reference.read_text())
    for outputs in (outputs_a, outputs_b):
        records = json.loads(outputs.read_text())
        predicted = estimate_judging(records, refs, spec, cache_path=cache, both_orders=True)
        before = answer_scores(cache) if cache.exists() else 0
        _, summary = judge_outputs(records, refs, spec, cache_path=cache, both_orders=True, progress=False)
        assert summary.complete and summary.n_new == predicted.remaining and summary.n_cached == predicted.cached
        assert answer_scores(cache) - before == predicted.requests  # one forward pass per graded answer
    # model b shares the references (6 distinct, the draws never reach the judge): only its own 6 answers are new
    assert predicted.requests == 6 and predicted.cached_answer_scores == 6
