"""Judging parts without a model: prompt parsing, order, specs, the SQLite cache, the HTTP client."""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys

import pytest
from loopback_server import scripted_server

from implicit_if.judging import load_judge_spec
from implicit_if.judging.cache import Verdict, VerdictCache, comparison_key
from implicit_if.judging.client import ChatClient
from implicit_if.judging.judges import read_logprob_verdict, read_text_verdict
from implicit_if.judging.pairing import annotation, comparisons_for, match_outputs, model_shown_first, preference_from
from implicit_if.judging.prompt import judge_messages, label_probability, pair_probability, parse_verdict
from implicit_if.openai_endpoint import BadResponse, EndpointError, RequestFailed

# -- prompt -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("A", 0.0),
        ("B", 1.0),
        (" B.", 1.0),
        ("Answer B", 1.0),
        ("answer A is better", 0.0),
        ("**B**", 1.0),
        ("I prefer B", 1.0),
        ("A and B are both fine", None),
        ("Neither", None),
        ("", None),
    ],
)
def test_parse_verdict(text, expected):
    assert parse_verdict(text) == expected


def test_label_probability_pools_spellings_and_ignores_other_tokens():
    top = [
        {"token": "A", "logprob": math.log(0.2)},
        {"token": " B", "logprob": math.log(0.3)},
        {"token": "B", "logprob": math.log(0.1)},
        {"token": "The", "logprob": math.log(0.4)},
    ]
    assert label_probability(top) == pytest.approx(0.4 / 0.6)
    assert label_probability([{"token": "The", "logprob": -0.1}]) is None
    assert pair_probability(math.log(0.25), math.log(0.75)) == pytest.approx(0.75)
    assert pair_probability(-1000.0, -1001.0) == pytest.approx(1 / (1 + math.e))  # no underflow


def test_prompt_clips_long_answers_and_keeps_order():
    messages = judge_messages("Say hi", "first " * 10, "second", max_answer_chars=12)
    user = messages[-1]["content"]
    assert user.index("first") < user.index("second")
    assert "first first  [...]" in user and "Say hi" in user


# -- pairing ----------------------------------------------------------------------------------------


def _outputs(n, generator="model", suffix=""):
    return [{"instruction": f"task {i}", "output": f"answer {i}{suffix}", "generator": generator} for i in range(n)]


def test_order_is_seeded_per_instruction_and_independent_of_file_order():
    outputs, references = _outputs(200, suffix=" (model)"), _outputs(200, "reference")
    pairs = match_outputs(outputs, references, seed=3)
    reversed_pairs = match_outputs(outputs[::-1], references, seed=3)
    assert {p.instruction: p.model_first for p in pairs} == {p.instruction: p.model_first for p in reversed_pairs}
    share = sum(p.model_first[0] for p in pairs) / len(pairs)
    assert 0.35 < share < 0.65  # both orders occur
    other_seed = match_outputs(outputs, references, seed=4)
    assert [p.model_first for p in pairs] != [p.model_first for p in other_seed]
    assert all(p.model_first == (False, True) for p in match_outputs(outputs, references, both_orders=True))
    assert model_shown_first("task 1", 3) == pairs[1].model_first[0]


def test_identical_outputs_are_draws_without_a_judge_call():
    outputs = _outputs(3)
    outputs[1] = {**outputs[1], "output": "different"}
    pairs = match_outputs(outputs, _outputs(3, "reference"))
    assert [len(comparisons_for(p, "j")) for p in pairs] == [0, 1, 0]
    record = annotation(pairs[0], [], "judge", "j")
    assert record["preference"] == 1.5 and record["order"] == "identical"


def test_preference_mapping_and_both_orders_average():
    assert preference_from(0.8, model_first=False) == pytest.approx(1.8)  # model shown second, second better
    assert preference_from(0.8, model_first=True) == pytest.approx(1.2)
    assert math.isnan(preference_from(None, True))
    pair = match_outputs(_outputs(1, suffix="!"), _outputs(1, "reference"), both_orders=True)[0]
    first_key, second_key = (c.key for c in comparisons_for(pair, "j"))
    assert first_key != second_key
    record = annotation(pair, [Verdict(0.9), Verdict(0.3)], "judge", "j")  # 1.9 and 1.7
    assert record["preference"] == pytest.approx(1.8) and record["order"] == "both"
    assert record["output_1"] == "answer 0" and record["output_2"] == "answer 0!"
    only_one = annotation(pair, [Verdict(None), Verdict(0.3)], "judge", "j")
    assert only_one["preference"] == pytest.approx(1.7)


def test_matching_errors_name_the_fix():
    with pytest.raises(ValueError, match="no reference output"):
        match_outputs(_outputs(2), _outputs(1, "reference"))
    with pytest.raises(ValueError, match="appears twice"):
        match_outputs(_outputs(1) * 2, _outputs(1, "reference"))


# -- specs ------------------------------------------------------------------------------------------


def test_specs_builtin_shorthand_file_and_identity(tmp_path):
    local = load_judge_spec("smollm2-local")
    assert (local.kind, local.model, local.backend) == ("local", "smollm2-135m-instruct", "hf")
    short = load_judge_spec("logprobs:my-model", base_url="http://127.0.0.1:1/v1")
    assert short.kind == "openai_logprobs" and short.base_url == "http://127.0.0.1:1/v1"
    moved = load_judge_spec("logprobs:my-model", base_url="http://elsewhere/v1", concurrency=2, api_key_env="OTHER")
    assert moved.identity_hash() == short.identity_hash()  # address, key and throughput do not change verdicts
    assert load_judge_spec("verdict:my-model").identity_hash() != short.identity_hash()
    path = tmp_path / "judge.yaml"
    path.write_text("kind: openai_verdict\nmodel: m\nmax_tokens: 4\n", encoding="utf-8")
    assert load_judge_spec(str(path)).name == "judge"
    path.write_text("kind: openai_verdict\nmodel: m\napi_key: sk-secret\n", encoding="utf-8")
    with pytest.raises(ValueError, match="must not contain secrets"):
        load_judge_spec(str(path))
    with pytest.raises(ValueError, match="unknown judge"):
        load_judge_spec("nonsense")
    with pytest.raises(ValueError, match="concurrency"):
        load_judge_spec("smollm2-local", concurrency=0)


# -- cache ------------------------------------------------------------------------------------------


def test_cache_round_trip_and_key(tmp_path):
    path = tmp_path / "verdicts.sqlite"
    key = comparison_key("judge1", "instr", "one", "two")
    assert key != comparison_key("judge2", "instr", "one", "two") != comparison_key("judge1", "instr", "two", "one")
    with VerdictCache(path) as cache:
        cache.put(key, "judge1", Verdict(0.25, "raw", 10, 1))
        cache.put(comparison_key("judge1", "i", "a", "b"), "judge1", Verdict(None, "no label"))
    with VerdictCache(path) as cache:
        found = cache.get_many([key, "missing"])
        assert found == {key: Verdict(0.25, "raw", 10, 1)}
        assert cache.count("judge1") == 2


def test_cache_keeps_every_committed_verdict_when_the_process_is_killed(tmp_path):
    path = tmp_path / "verdicts.sqlite"
    script = f"""
import os, signal, sys
sys.path[:0] = {sys.path!r}
from implicit_if.judging.cache import Verdict, VerdictCache
cache = VerdictCache({str(path)!r})
for i in range(50):
    cache.put(f"k{{i}}", "j", Verdict(i / 50))
os.kill(os.getpid(), signal.SIGKILL)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert result.returncode == -9
    with VerdictCache(path) as cache:
        assert cache.count() == 50
        assert cache.get_many(["k49"])["k49"].p_second == pytest.approx(0.98)


# -- response reading -------------------------------------------------------------------------------


def _logprob_body(p_b=0.75, usage=True):
    body = {
        "choices": [
            {
                "message": {"content": "B"},
                "logprobs": {
                    "content": [
                        {
                            "token": "B",
                            "logprob": math.log(p_b),
                            "top_logprobs": [
                                {"token": "B", "logprob": math.log(p_b)},
                                {"token": "A", "logprob": math.log(1 - p_b)},
                            ],
                        }
                    ]
                },
            }
        ]
    }
    if usage:
        body["usage"] = {"prompt_tokens": 100, "completion_tokens": 1}
    return body


def test_reading_verdicts_from_bodies():
    verdict = read_logprob_verdict(_logprob_body(0.75))
    assert verdict.p_second == pytest.approx(0.75) and verdict.prompt_tokens == 100
    stripped = _logprob_body()
    del stripped["choices"][0]["logprobs"]
    with pytest.raises(BadResponse, match="log-probabilities"):
        read_logprob_verdict(stripped)
    assert read_text_verdict(_logprob_body()).p_second == 1.0
    with pytest.raises(BadResponse):
        read_text_verdict({"choices": [{"message": {"content": None}}]})


# -- HTTP client against a scripted loopback server -----------------------------------------------


def _complete(url, key=None, **options):
    async def go():
        async with ChatClient(url, key, backoff_base_s=0.01, backoff_max_s=0.05, **options) as client:
            result = await client.complete({"model": "m", "messages": []}, read_logprob_verdict)
            return result, client.usage

    return asyncio.run(go())


def test_client_retries_transient_failures_and_honours_retry_after():
    script = [
        (429, {"Retry-After": "1"}, {"error": "slow down"}),
        (503, {}, {"error": "busy"}),
        (200, {}, b'{"choices": [tru'),
        (200, {}, {"choices": [{"message": {"content": "B"}}]}),  # no logprobs
        (200, {}, _logprob_body(0.6)),
    ]
    with scripted_server(script) as (url, seen):
        verdict, usage = _complete(url, "sk-test")
    assert verdict.p_second == pytest.approx(0.6)
    assert len(seen) == 5 and usage.retries == 4 and usage.prompt_tokens == 100
    assert seen[1][0] - seen[0][0] >= 0.95  # waited as Retry-After asked
    assert seen[0][1] == "Bearer sk-test"


def test_client_gives_up_after_retries_and_stops_on_endpoint_errors():
    with scripted_server([(500, {}, {"error": "down"})]) as (url, seen):
        with pytest.raises(RequestFailed, match="HTTP 500 after 3 attempts"):
            _complete(url, max_retries=2)
        assert len(seen) == 3
    with scripted_server([(400, {}, {"error": "context too long"})]) as (url, seen):
        with pytest.raises(RequestFailed, match="HTTP 400"):
            _complete(url)
        assert len(seen) == 1
    key = "sk-do-not-print-me"
    with scripted_server([(401, {}, {"error": f"Incorrect API key provided: {key}"})]) as (url, _):
        with pytest.raises(EndpointError, match="api_key_env") as error:
            _complete(url, key)
        assert key not in str(error.value)
    with scripted_server([(404, {}, {"error": f"model not found, key {key}"})]) as (url, _):
        with pytest.raises(EndpointError, match="/v1") as error:
            _complete(url, key)
        assert key not in str(error.value)


def test_a_bug_in_the_reader_is_raised_at_once_not_retried():
    def broken(body):
        raise ZeroDivisionError("a bug, not an unusable body")

    async def go(url):
        async with ChatClient(url, None, backoff_base_s=0.01) as client:
            await client.complete({"model": "m", "messages": []}, broken)

    with scripted_server([(200, {}, _logprob_body())]) as (url, seen):
        with pytest.raises(ZeroDivisionError):
            asyncio.run(go(url))
    assert len(seen) == 1


def test_client_reports_an_unreachable_endpoint():
    import socket

    with socket.socket() as probe:  # a port with nothing listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(EndpointError, match="cannot reach"):
        _complete(f"http://127.0.0.1:{port}/v1", max_retries=1)


def test_retry_after_forms_are_honoured_and_a_long_one_is_not_waited_for():
    import email.utils
    import time

    ok = (200, {}, _logprob_body(0.6))
    when = email.utils.formatdate(time.time() + 3, usegmt=True)  # an HTTP date, 2 to 3 s ahead
    script = [
        (429, {"Retry-After": when}, {"error": "slow down"}),
        (503, {"Retry-After": "soon"}, {"error": "busy"}),
        ok,
    ]
    with scripted_server(script) as (url, seen):
        verdict, usage = _complete(url)
    assert verdict.p_second == pytest.approx(0.6) and len(seen) == 3 and usage.retries == 2
    assert seen[1][0] - seen[0][0] >= 0.9  # waited until the date
    assert seen[2][0] - seen[1][0] >= 0.3  # an unreadable Retry-After: the client's own backoff, not no wait
    # a server asking for longer than the client waits (over two minutes): not retried, the run stops
    with scripted_server([(429, {"Retry-After": "100000"}, {"error": "quota exhausted"})]) as (url, seen):
        start = time.monotonic()
        with pytest.raises(EndpointError, match="still rate-limiting after 1 attempt .*Retry-After: 100000"):
            _complete(url)
    assert len(seen) == 1 and time.monotonic() - start < 30


# -- hostile replies: malformed numbers are unusable bodies, echoed keys never stored ------------------


@pytest.mark.parametrize("logprob", [1e308, float("nan"), float("inf"), 3.5, "lots", True, None, {"x": 1}])
def test_an_absurd_top_logprob_is_an_unusable_body_not_a_crash(logprob) -> None:
    from implicit_if.judging.judges import read_logprob_verdict

    body = {
        "choices": [
            {
                "logprobs": {
                    "content": [{"top_logprobs": [{"token": "A", "logprob": -0.5}, {"token": "B", "logprob": logprob}]}]
                }
            }
        ]
    }
    with pytest.raises(BadResponse):
        read_logprob_verdict(body)


@pytest.mark.parametrize(
    "usage",
    [{"prompt_tokens": "lots"}, {"completion_tokens": -3}, {"prompt_tokens": 1.5}, "many", {"prompt_tokens": True}],
)
def test_malformed_usage_counts_are_refused(usage) -> None:
    from implicit_if.openai_endpoint import usage_counts

    with pytest.raises(ValueError):
        usage_counts({"choices": [{}], "usage": usage})


def test_usage_counts_read_plain_integers_and_missing_as_zero() -> None:
    from implicit_if.openai_endpoint import usage_counts

    assert usage_counts({"usage": {"prompt_tokens": 12, "completion_tokens": 1}}) == (12, 1)
    assert usage_counts({}) == (0, 0)


def test_a_key_echoed_anywhere_in_a_reply_is_scrubbed() -> None:
    from implicit_if.openai_endpoint import scrub

    key = "sk-test-SECRET-1234"
    body = {"choices": [{"message": {"content": f"Output (b) is better. Your key {key} works."}}], key: [key, 3]}
    cleaned = scrub(body, key)
    assert key not in json.dumps(cleaned) and "***" in cleaned["choices"][0]["message"]["content"]
    assert scrub(body, None) is body


def test_a_real_server_s_malformed_numbers_are_retried_and_an_echoed_key_is_never_kept():
    key = "sk-echo-SECRET-42"
    absurd = _logprob_body(0.6)
    absurd["choices"][0]["logprobs"]["content"][0]["top_logprobs"][0]["logprob"] = 1e308
    lots = {**_logprob_body(0.6), "usage": {"prompt_tokens": "lots", "completion_tokens": 1}}
    script = [(200, {}, absurd), (200, {}, lots), (200, {}, _logprob_body(0.7))]
    with scripted_server(script) as (url, seen):
        verdict, usage = _complete(url, key)
    assert verdict.p_second == pytest.approx(0.7) and len(seen) == 3 and usage.retries == 2

    def echo_text(request_key):
        async def go():
            async with ChatClient(url, request_key, backoff_base_s=0.01) as client:
                return await client.complete({"model": "m", "messages": []}, read_text_verdict)

        return asyncio.run(go())

    with scripted_server([(200, {}, {"choices": [{"message": {"content": f"Output (b). Key: {key}"}}]})]) as (url, _):
        verdict = echo_text(key)
    assert key not in verdict.raw and "***" in verdict.raw
