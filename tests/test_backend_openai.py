"""The OpenAI-compatible backend: retries, errors and secrecy against real loopback HTTP servers,
and generation/scoring against a real vLLM server compared with the hf backend."""

from __future__ import annotations

import json
import logging
import pickle
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from implicit_if.backends import GenerationConfig
from implicit_if.backends.openai_compat import EndpointError, OpenAIBackend, Secret
from implicit_if.formats import format_messages, format_prompt

KEY = "sk-test-DO-NOT-LEAK-7f3a91"


# -- a scripted OpenAI-style server on loopback -------------------------------------------------
class ScriptedServer:
    """Answers each POST with the next scripted (status, headers, body, delay); the last one repeats."""

    def __init__(self, script: list[tuple[int, dict[str, str], object, float]]) -> None:
        self.script = script
        self.requests: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output quiet
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    step = server.script[min(len(server.requests), len(server.script) - 1)]
                    server.requests.append(
                        {"body": body, "auth": self.headers.get("Authorization"), "time": time.monotonic()}
                    )
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                status, headers, payload, delay = step
                time.sleep(delay)
                with server.lock:
                    server.in_flight -= 1
                data = (json.dumps(payload(body)) if callable(payload) else json.dumps(payload)).encode()
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> ScriptedServer:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def completion(text: str, logprobs: object = None) -> dict:
    return {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": 0,
        "model": "m",
        "choices": [{"index": 0, "text": text, "finish_reason": "length", "logprobs": logprobs}],
    }


def echo_prompt(body: dict) -> dict:
    """A completion whose text names the prompt it answered (to check ordering)."""
    return completion(f"answer to {body['prompt']}")


OK = (200, {}, echo_prompt, 0.0)


def backend(url: str, **options) -> OpenAIBackend:
    options.setdefault("max_retries", 4)
    return OpenAIBackend("m", base_url=url, api_key=KEY, progress=False, **options)


@pytest.fixture()
def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- retries -----------------------------------------------------------------------------------
def test_retries_rate_limits_and_server_errors_honouring_retry_after() -> None:
    script = [
        (429, {"Retry-After": "1"}, {"error": {"message": "slow down"}}, 0.0),
        (503, {}, {"error": {"message": "busy"}}, 0.0),
        OK,
    ]
    with ScriptedServer(script) as server:
        start = time.monotonic()
        out = backend(server.base_url).generate(["hello"], GenerationConfig(max_new_tokens=3))
        elapsed = time.monotonic() - start
    assert out == ["answer to hello"]
    assert len(server.requests) == 3
    assert elapsed >= 1.0, "the Retry-After of 1 s was not honoured"


def test_a_client_error_is_not_retried_and_names_the_server_message() -> None:
    with ScriptedServer([(400, {}, {"error": {"message": "max_tokens is too large"}}, 0.0)]) as server:
        with pytest.raises(EndpointError, match="HTTP 400.*max_tokens is too large"):
            backend(server.base_url).generate(["x"], GenerationConfig(max_new_tokens=3))
    assert len(server.requests) == 1


def test_retries_are_bounded_back_off_and_the_error_says_how_many_attempts() -> None:
    with ScriptedServer([(500, {}, {"error": {"message": "boom"}}, 0.0)]) as server:
        with pytest.raises(EndpointError, match=r"kept failing with HTTP 500 after 3 attempts"):
            backend(server.base_url, max_retries=2).generate(["x"], GenerationConfig())
    assert len(server.requests) == 3
    # the retries wait, longer each time (the openai SDK's backoff: 0.5 s doubling, less up to 25% jitter)
    first, second = (b["time"] - a["time"] for a, b in zip(server.requests, server.requests[1:]))
    assert 0.3 <= first < second, (first, second)


def test_a_retry_after_beyond_the_limit_is_not_waited_for() -> None:
    with ScriptedServer([(429, {"Retry-After": "3600"}, {"error": {"message": "quota"}}, 0.0)]) as server:
        with pytest.raises(EndpointError, match="rate-limiting"):
            backend(server.base_url).generate(["x"], GenerationConfig())
    assert len(server.requests) == 1


# -- concurrency and order ---------------------------------------------------------------------
def test_requests_run_concurrently_up_to_the_limit_and_keep_their_order() -> None:
    with ScriptedServer([(200, {}, echo_prompt, 0.2)]) as server:
        prompts = [f"p{i}" for i in range(6)]
        out = backend(server.base_url, max_concurrency=2).generate(prompts, GenerationConfig())
    assert out == [f"answer to p{i}" for i in range(6)]
    assert server.max_in_flight == 2


def test_generation_sends_greedy_settings_and_cuts_at_stop_strings() -> None:
    with ScriptedServer([(200, {}, completion("one\n\ntwo"), 0.0)]) as server:
        out = backend(server.base_url).generate(["x"], GenerationConfig(max_new_tokens=7, stop=("\n\n",), seed=3))
    assert out == ["one"]  # cut locally too: not every server honours stop
    sent = server.requests[0]["body"]
    assert (sent["max_tokens"], sent["temperature"], sent["stop"], sent["seed"]) == (7, 0.0, ["\n\n"], 3)


# -- errors ------------------------------------------------------------------------------------
def test_an_unreachable_endpoint_fails_fast_with_a_clear_error(unused_port: int) -> None:
    url = f"http://127.0.0.1:{unused_port}/v1"
    with pytest.raises(EndpointError, match=r"cannot reach .*127\.0\.0\.1.*\(3 attempts\).*OPENAI_BASE_URL") as info:
        backend(url, max_retries=2).generate(["x"], GenerationConfig())
    assert KEY not in str(info.value)


def test_a_timeout_names_the_limit() -> None:
    with ScriptedServer([(200, {}, echo_prompt, 2.0)]) as server:
        with pytest.raises(EndpointError, match=r"did not answer within 0\.3s \(2 attempts\)"):
            backend(server.base_url, timeout=0.3, max_retries=1).generate(["x"], GenerationConfig())


def test_a_server_without_prompt_logprobs_gets_a_clear_scoring_error(smollm2_dir: str) -> None:
    with ScriptedServer([(200, {}, completion("x", logprobs=None), 0.0)]) as server:
        with pytest.raises(EndpointError, match="no prompt log-probabilities.*echo=True"):
            backend(server.base_url, tokenizer=smollm2_dir).score(["Question?"], ["Answer."])
    sent = server.requests[0]["body"]
    assert sent["echo"] is True and sent["logprobs"] == 0 and all(isinstance(t, int) for t in sent["prompt"])


def test_scoring_sums_the_echoed_continuation_logprobs(smollm2_dir: str) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    ctx = tok("Question?")["input_ids"]
    cont = tok("Answer.", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    values = [None] + [-0.5] * (len(ctx) - 1) + [-(k + 1.0) for k in range(len(cont))] + [-9.0]  # + 1 generated

    with ScriptedServer([(200, {}, completion("x", logprobs={"token_logprobs": values, "tokens": []}), 0.0)]) as server:
        (result,) = backend(server.base_url, tokenizer=smollm2_dir).score(["Question?"], ["Answer."])
    assert server.requests[0]["body"]["prompt"] == ctx + cont
    assert result.n_tokens == len(cont)
    assert result.logprob == -sum(k + 1.0 for k in range(len(cont)))


def test_a_missing_key_is_refused_before_any_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        OpenAIBackend("m", base_url="http://127.0.0.1:9/v1")


def test_base_url_and_key_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1/")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    built = OpenAIBackend("m")
    assert built.base_url == "http://127.0.0.1:9/v1"
    assert built._api_key.reveal() == KEY


# -- secrecy -----------------------------------------------------------------------------------
def test_the_key_never_shows_in_repr_str_or_pickles() -> None:
    built = backend("http://127.0.0.1:9/v1")
    assert KEY not in repr(built) and KEY not in str(vars(built))
    assert KEY not in repr(Secret(KEY)) and KEY not in str(Secret(KEY))
    with pytest.raises(TypeError):
        pickle.dumps(built)


def test_the_key_never_reaches_errors_or_logs(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture) -> None:
    # A server that echoes the credential in its error message, as some providers do.
    echo_key = {"error": {"message": f"Incorrect API key provided: {KEY}"}}
    script = [(503, {}, echo_key, 0.0), (400, {}, echo_key, 0.0)]
    caplog.set_level(logging.DEBUG)
    with ScriptedServer(script) as server:
        with pytest.raises(EndpointError) as info:
            backend(server.base_url).generate(["x"], GenerationConfig())
    assert server.requests[0]["auth"] == f"Bearer {KEY}"  # it was really sent...
    captured = capsys.readouterr()
    for text in (str(info.value), repr(info.value), caplog.text, captured.out, captured.err):
        assert KEY not in text  # ...and never shown
    assert "***" in str(info.value)
    assert "retry 1/4" in caplog.text


# -- a real vLLM server ------------------------------------------------------------------------
INSTRUCTIONS = ["Name three primary colors.", "Write a haiku about rain.", "What is the capital of France?"]
CONTINUATIONS = ["Red, blue and yellow.", "Rain taps the window,\nsoft and slow.", "Paris."]
# Measured on all 9 prompt x continuation pairs (float32, CPU): summed log-probabilities from
# vLLM's server and the hf backend differ by at most 1.7e-4 (per token 7.6e-5); the bound
# leaves room for other CPUs' kernels.
SCORE_TOLERANCE = 2e-3


@pytest.fixture(scope="module")
def hf(smollm2_dir: str):
    from implicit_if.backends.hf import HFBackend

    return HFBackend(smollm2_dir, device="cpu", dtype="float32", progress=False)


@pytest.fixture(scope="module")
def served(vllm_server) -> OpenAIBackend:
    return OpenAIBackend(
        vllm_server.model,
        base_url=vllm_server,
        api_key=vllm_server.api_key,
        tokenizer=vllm_server.model_dir,
        progress=False,
    )


@pytest.mark.slow
@pytest.mark.vllm
def test_served_greedy_generation_matches_hf(served: OpenAIBackend, hf) -> None:
    prompts = [format_prompt(i) for i in INSTRUCTIONS]
    config = GenerationConfig(max_new_tokens=16)
    remote, local = served.generate(prompts, config), hf.generate(prompts, config)
    tok = hf.tokenizer
    for r, loc in zip(remote, local):
        assert r.strip()
        # Same weights, same tokens in, greedy: the first tokens agree exactly (observed: all 16).
        assert tok(r, add_special_tokens=False)["input_ids"][:8] == tok(loc, add_special_tokens=False)["input_ids"][:8]


@pytest.mark.slow
@pytest.mark.vllm
def test_served_chat_equals_completion_of_the_same_chat_template(served: OpenAIBackend, hf) -> None:
    messages = [{"role": "user", "content": INSTRUCTIONS[2]}]
    config = GenerationConfig(max_new_tokens=12)
    (chat,) = served.generate_chat([messages], config)
    (plain,) = served.generate([format_messages(messages, "chat_template", hf.tokenizer)], config)
    assert chat.strip() and chat == plain


@pytest.mark.slow
@pytest.mark.vllm
def test_served_scores_match_hf_scores(served: OpenAIBackend, hf) -> None:
    prompts = [format_prompt(i) for i in INSTRUCTIONS]
    remote, local = served.score(prompts, CONTINUATIONS), hf.score(prompts, CONTINUATIONS)
    for r, loc in zip(remote, local):
        assert r.n_tokens == loc.n_tokens
        assert abs(r.logprob - loc.logprob) <= SCORE_TOLERANCE
    # and the ranking signal agrees: a mismatched response scores lower under both
    swapped = served.score(prompts[:1], CONTINUATIONS[2:3])[0]
    assert swapped.mean_logprob != pytest.approx(remote[0].mean_logprob)


@pytest.mark.slow
@pytest.mark.vllm
def test_served_stop_strings_are_honoured(served: OpenAIBackend) -> None:
    prompt = format_prompt(INSTRUCTIONS[0])
    (free,) = served.generate([prompt], GenerationConfig(max_new_tokens=16))
    stop = free.split()[1]
    (cut,) = served.generate([prompt], GenerationConfig(max_new_tokens=16, stop=(stop,)))
    assert cut == free[: free.index(stop)]


@pytest.mark.slow
@pytest.mark.vllm
def test_a_wrong_key_or_model_gets_a_clear_error_without_the_key(vllm_server, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = OpenAIBackend(vllm_server.model, base_url=vllm_server, api_key=KEY, progress=False)
    with pytest.raises(EndpointError, match="rejected the API key .*HTTP 401.*OPENAI_API_KEY") as info:
        wrong.generate(["x"], GenerationConfig(max_new_tokens=1))
    assert KEY not in str(info.value) and vllm_server.api_key not in str(info.value)
    missing = OpenAIBackend("no-such-model", base_url=vllm_server, api_key=vllm_server.api_key, progress=False)
    with pytest.raises(EndpointError, match=f"404 for model 'no-such-model'.*{vllm_server.model}") as info:
        missing.generate(["x"], GenerationConfig(max_new_tokens=1))
    assert vllm_server.api_key not in str(info.value) + caplog.text + repr(missing)
