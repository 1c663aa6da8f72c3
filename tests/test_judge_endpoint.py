"""The OpenAI-compatible judges against a real vLLM server (SmolLM2-135M-Instruct on CPU), directly
and through a fault-injecting proxy; the CLI runs in a subprocess, and is killed mid-run once.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fault_proxy import body_id, fault_proxy

from implicit_if.judging import judge_outputs, load_judge_spec
from implicit_if.judging.judges import endpoint_payload
from implicit_if.judging.pairing import comparisons_for, match_outputs

KEY_ENV = "IMPLICIT_IF_TEST_JUDGE_KEY"
SECRET = "sk-implicit-if-test-0c1d2e3f4a5b"
N_OUTPUTS = 12
CLI = [sys.executable, "-c", "from implicit_if.cli import main; main()"]


def openai_base(url: str) -> str:
    url = url.rstrip("/")
    return url if url.endswith("/v1") else url + "/v1"


@pytest.fixture(scope="module")
def served(vllm_server) -> tuple[str, str, str]:
    """(base URL, served model name, the server's API key) of the session's vLLM server."""
    base, key = openai_base(vllm_server), getattr(vllm_server, "api_key", "") or ""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    model = httpx.get(base + "/models", headers=headers, timeout=30).json()["data"][0]["id"]
    return base, model, key


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Iterator[Path]:
    """Model outputs (ours, written here) and the dataset's references for N_OUTPUTS instructions."""
    from implicit_if.data import load_pairs

    folder = tmp_path_factory.mktemp("judge_e2e")
    with pytest.MonkeyPatch.context() as patch:  # dataset caches go to the test's folder
        patch.setenv("IMPLICIT_IF_CACHE", str(folder / "cache"))
        pairs = load_pairs("offline_instructions", offline=True, limit=N_OUTPUTS)
        _write_outputs(folder, pairs)
        yield folder


def _write_outputs(folder: Path, pairs: list[dict]) -> None:
    outputs = []
    for i, pair in enumerate(pairs):  # shortened, unrelated, evasive, and (every fourth) identical answers
        text = pair["response"]
        variants = (text[: max(12, len(text) // 3)], pairs[(i + 1) % len(pairs)]["response"], "I am not sure.", text)
        outputs.append(
            {
                "instruction": pair["instruction"],
                "output": variants[i % 4],
                "generator": "test-model",
                "dataset": "offline_instructions",
            }
        )
    (folder / "outputs.json").write_text(json.dumps(outputs), encoding="utf-8")


def spec_file(folder: Path, name: str, kind: str, model: str, base_url: str, **extra) -> Path:
    fields = {
        "name": "smollm2-endpoint",
        "kind": kind,
        "model": model,
        "base_url": base_url,
        "api_key_env": KEY_ENV,
        "concurrency": 3,
        "timeout_s": 8.0,
        "max_retries": 8,
        "backoff_base_s": 0.05,
        "backoff_max_s": 0.5,
        "max_answer_chars": 600,
        "price_per_million_input": 0.15,
        "price_per_million_output": 0.6,
        **extra,
    }
    path = folder / f"{name}.yaml"
    path.write_text(json.dumps(fields), encoding="utf-8")  # JSON is YAML
    return path


def run_cli(
    folder: Path,
    spec: Path,
    output: Path,
    cache: Path,
    log_name: str,
    *extra: str,
    wait: bool = True,
    key: str = SECRET,
):
    env = {
        **os.environ,
        KEY_ENV: key,
        "IMPLICIT_IF_CACHE": str(folder / "cache"),
        "HF_HUB_OFFLINE": "1",
        "IMPLICIT_IF_OFFLINE": "1",
    }
    args = [
        *CLI,
        "judge",
        "--outputs",
        str(folder / "outputs.json"),
        "--reference",
        "dataset:offline_instructions",
        "--offline",
        "--judge",
        str(spec),
        "--output",
        str(output),
        "--cache",
        str(cache),
        *extra,
    ]
    log = open(folder / log_name, "w", encoding="utf-8")
    process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
    if not wait:
        return process, log
    code = process.wait(timeout=300)
    log.close()
    return code, (folder / log_name).read_text(encoding="utf-8")


def stored(cache: Path) -> dict[str, float | None]:
    if not cache.exists():
        return {}
    db = sqlite3.connect(cache)
    try:
        return dict(db.execute("SELECT key, p_second FROM verdicts"))
    except sqlite3.DatabaseError:  # polled between the file's creation and its schema
        return {}
    finally:
        db.close()


def request_ids(folder: Path, spec: Path) -> dict[str, str]:
    """Cache key -> identity of the HTTP request the judge sends for it (as the proxy counts them)."""
    judge = load_judge_spec(str(spec))
    outputs = json.loads((folder / "outputs.json").read_text(encoding="utf-8"))
    from implicit_if.judging.references import dataset_references

    references = dataset_references(
        "offline_instructions", offline=True, instructions=[o["instruction"] for o in outputs]
    )
    ids = {}
    for pair in match_outputs(outputs, references):
        for comparison in comparisons_for(pair, judge.identity_hash()):
            ids[comparison.key] = body_id(endpoint_payload(judge, comparison))
    return ids


@pytest.fixture(scope="module")
def fault_free(served, workdir) -> list[dict]:
    """The reference result: the logprob judge straight against vLLM, no faults."""
    base, model, server_key = served
    spec = spec_file(workdir, "direct", "openai_logprobs", model, base)
    code, log = run_cli(workdir, spec, workdir / "direct.json", workdir / "direct.sqlite", "direct.log", key=server_key)
    assert code == 0, log
    assert "cost $" in log and "tokens" in log
    return json.loads((workdir / "direct.json").read_text(encoding="utf-8"))


@pytest.mark.slow
@pytest.mark.vllm
def test_weighted_judge_gives_continuous_preferences(fault_free):
    assert len(fault_free) == N_OUTPUTS
    prefs = [r["preference"] for r in fault_free]
    assert all(1 <= p <= 2 for p in prefs)
    assert any(p not in (1.0, 1.5, 2.0) for p in prefs)  # weighted by label probabilities, not discrete
    identical = [r for r in fault_free if r["output_1"] == r["output_2"]]
    assert identical and all(r["preference"] == 1.5 and r["order"] == "identical" for r in identical)
    assert {r["order"] for r in fault_free} >= {"model_first", "reference_first"}


@pytest.mark.slow
@pytest.mark.vllm
def test_faults_and_a_kill_lose_nothing_and_repeat_nothing(served, workdir, fault_free):
    base, model, server_key = served
    with fault_proxy(
        base, seed=1, fault_rate=0.6, max_faults_per_request=2, hold_s=9.0, upstream_key=server_key
    ) as proxy:
        spec = spec_file(workdir, "proxied", "openai_logprobs", model, proxy.url)
        cache, output = workdir / "proxied.sqlite", workdir / "proxied.json"
        ids = request_ids(workdir, spec)
        # Run 1: killed (SIGKILL, no chance to clean up) once a few verdicts are in.
        process, log = run_cli(workdir, spec, output, cache, "killed.log", wait=False)
        deadline = time.monotonic() + 240
        while len(stored(cache)) < 4 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        log.close()
        before = stored(cache)
        assert process.returncode == -signal.SIGKILL, (workdir / "killed.log").read_text(encoding="utf-8")[-2000:]
        assert 4 <= len(before) < len(ids), "the kill should land mid-run"
        assert not output.exists()
        # Run 2: the same command resumes.
        proxy.phase = "second"
        code, text = run_cli(workdir, spec, output, cache, "resumed.log")
        assert code == 0, text
    after = stored(cache)
    # no verdict lost: every comparison has one, and the first run's verdicts are untouched
    assert set(after) == set(ids)
    assert all(after[key] == value for key, value in before.items())
    # nothing asked twice after the resume: no request for a verdict the first run stored
    asked_again = [key for key in before if proxy.log.upstream["second"][ids[key]]]
    assert asked_again == []
    assert all(proxy.log.upstream["second"][ids[key]] >= 1 for key in set(ids) - set(before))
    # the faults happened, Retry-After was honoured, and the result equals the fault-free run
    assert set(proxy.log.faults) == {"429", "500", "timeout", "malformed", "no_logprobs"}, proxy.log.faults
    # Every retry within one run waited for Retry-After. Whether a 429 and its retry fall in the
    # same run depends on where the kill lands, so this may see none; the deterministic check is
    # test_judge_parts.py::test_client_retries_transient_failures_and_honours_retry_after.
    assert all(gap >= 0.9 for gap in proxy.log.retry_gaps), proxy.log.retry_gaps
    assert json.loads(output.read_text(encoding="utf-8")) == fault_free
    # the key was sent to the endpoint, and written nowhere (nor the server's own key, used by the direct run)
    assert f"Bearer {SECRET}" in proxy.log.auth_headers
    secrets = [s.encode() for s in (SECRET, server_key) if s]
    leaks = [str(p) for p in workdir.rglob("*") if p.is_file() and any(s in p.read_bytes() for s in secrets)]
    assert leaks == []


@pytest.mark.slow
@pytest.mark.vllm
def test_verdict_judge_works_where_logprobs_are_dropped(served, workdir):
    base, model, server_key = served
    with fault_proxy(base, fault_rate=0.0, strip_all_logprobs=True, upstream_key=server_key) as proxy:
        verdict_spec = spec_file(workdir, "verdict", "openai_verdict", model, proxy.url, max_tokens=4)
        code, log = run_cli(workdir, verdict_spec, workdir / "verdict.json", workdir / "verdict.sqlite", "verdict.log")
        assert code == 0, log
        prefs = [r["preference"] for r in json.loads((workdir / "verdict.json").read_text(encoding="utf-8"))]
        assert all(p in (1.0, 1.5, 2.0, None) for p in prefs) and any(p in (1.0, 2.0) for p in prefs)
        # the weighted judge through the same proxy fails clearly and writes nothing
        weighted = spec_file(workdir, "stripped", "openai_logprobs", model, proxy.url, max_retries=1)
        code, log = run_cli(workdir, weighted, workdir / "stripped.json", workdir / "stripped.sqlite", "stripped.log")
    assert code == 1
    assert "log-probabilities" in log and "verdict" in log
    assert not (workdir / "stripped.json").exists() and stored(workdir / "stripped.sqlite") == {}


@pytest.mark.slow
@pytest.mark.vllm
def test_local_judge_agrees_with_the_endpoint_judge(workdir, fault_free, smollm2_dir):
    """Same model, prompt and labels: the hf backend's label probabilities match vLLM's top log-probabilities."""
    from implicit_if.judging.references import dataset_references

    spec = load_judge_spec(f"local:{smollm2_dir}", dtype="float32", max_answer_chars=600)
    outputs = json.loads((workdir / "outputs.json").read_text(encoding="utf-8"))[:4]
    references = dataset_references(
        "offline_instructions", offline=True, instructions=[o["instruction"] for o in outputs]
    )
    annotations, summary = judge_outputs(outputs, references, spec, cache_path=workdir / "local.sqlite", progress=False)
    assert summary.n_new == 3  # the fourth pair is identical
    direct = {r["instruction"]: r["preference"] for r in fault_free}
    for record in annotations:
        assert record["preference"] == pytest.approx(direct[record["instruction"]], abs=2e-3)
        assert record["order"] == next(r["order"] for r in fault_free if r["instruction"] == record["instruction"])


def test_bad_key_and_unreachable_endpoint_fail_clearly(tmp_path, workdir):
    with fault_proxy("http://127.0.0.1:9", fault_rate=0.0, required_key="sk-the-right-one") as proxy:
        spec = spec_file(tmp_path, "badkey", "openai_logprobs", "any", proxy.url)
        code, log = run_cli(workdir, spec, tmp_path / "out.json", tmp_path / "c.sqlite", "badkey.log")
    assert code == 2
    assert "unauthorised" in log and "api_key_env" in log
    assert SECRET not in log
    spec = spec_file(tmp_path, "nowhere", "openai_logprobs", "any", "http://127.0.0.1:9/v1", max_retries=1)
    code, log = run_cli(workdir, spec, tmp_path / "out.json", tmp_path / "c.sqlite", "nowhere.log")
    assert code == 2 and "cannot reach the judge endpoint http://127.0.0.1:9/v1" in log
