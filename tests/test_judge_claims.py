"""Two processes judging on one cache ask for each comparison once (claims in SQLite), and a
claim left by a killed process is taken over after it expires."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from loopback_server import scripted_server

from implicit_if.judging.cache import VerdictCache


def test_claims_are_exclusive_renewable_and_expire(tmp_path: Path) -> None:
    with VerdictCache(tmp_path / "c.sqlite") as first, VerdictCache(tmp_path / "c.sqlite") as second:
        assert first.claim(["a", "b"], "p1", 60) == {"a", "b"}
        assert second.claim(["a", "b", "c"], "p2", 60) == {"c"}
        assert first.claim(["a"], "p1", 60) == {"a"}  # renewal by the holder
        first.release("p1", ["a"])
        assert second.claim(["a"], "p2", 60) == {"a"}
        assert first.claim(["b"], "p3", 60) == set()  # p1 still holds b
        first.release("p1")
        second.claim(["d"], "p2", -1)  # already expired: anyone may take it over
        assert first.claim(["d"], "p1", 60) == {"d"}


@pytest.fixture()
def counting_server():
    """A real OpenAI-compatible chat endpoint on loopback that answers slowly and records each request."""
    reply = {"choices": [{"message": {"content": "B"}}], "usage": {"prompt_tokens": 10, "completion_tokens": 2}}
    with scripted_server([(200, {}, reply)], delay_s=0.05) as (url, requests):
        yield url, requests


def test_two_processes_on_one_cache_ask_for_each_comparison_once(tmp_path: Path, counting_server) -> None:
    url, requests = counting_server
    outputs = [
        {"instruction": f"Question {i}?", "output": f"answer {i}", "generator": "m", "dataset": "d"} for i in range(40)
    ]
    reference = [
        {"instruction": f"Question {i}?", "output": f"reference {i}", "generator": "ref", "dataset": "d"}
        for i in range(40)
    ]
    (tmp_path / "outputs.json").write_text(json.dumps(outputs))
    (tmp_path / "reference.json").write_text(json.dumps(reference))
    spec = {
        "name": "counting",
        "kind": "openai_verdict",
        "model": "m",
        "base_url": url,
        "api_key_env": "NO_KEY_HERE",
        "concurrency": 2,
        "both_orders": False,
        "max_retries": 2,
        "backoff_base_s": 0.01,
    }
    (tmp_path / "spec.yaml").write_text(json.dumps(spec))
    env = {**os.environ, "IMPLICIT_IF_CACHE": str(tmp_path / "cache")}
    command = [
        sys.executable,
        "-c",
        "from implicit_if.cli import app; app()",
        "judge",
        "--outputs",
        str(tmp_path / "outputs.json"),
        "--reference",
        str(tmp_path / "reference.json"),
        "--judge",
        str(tmp_path / "spec.yaml"),
        "--cache",
        str(tmp_path / "verdicts.sqlite"),
    ]
    runs = [
        subprocess.Popen(
            [*command, "--output", str(tmp_path / f"annotations-{n}.json")],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in (1, 2)
    ]
    for run in runs:
        _, err = run.communicate(timeout=240)
        assert run.returncode == 0, err[-2000:]
    seen = [json.dumps(json.loads(body)["messages"], sort_keys=True) for _, _, body in requests]
    assert len(seen) == 40 and len(set(seen)) == 40  # each comparison asked once, by one of the two
    for n in (1, 2):
        annotations = json.loads((tmp_path / f"annotations-{n}.json").read_text())
        assert len(annotations) == 40 and all(a["preference"] in (1.0, 2.0) for a in annotations), [
            a["preference"] for a in annotations
        ]


def test_claims_of_a_dead_process_on_this_machine_are_taken_over_at_once() -> None:
    import socket

    from implicit_if.judging import _dead_here

    host = socket.gethostname()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    assert _dead_here(f"{host}:{dead.stdout.strip()}:abc", host)
    assert not _dead_here(f"{host}:{os.getpid()}:abc", host)
    assert not _dead_here(f"elsewhere:{dead.stdout.strip()}:abc", host)
