"""`implicit-if judge --batch`, `--batch-input-only` and `--batch-output`.

The polling and collecting protocol runs against a real HTTP server on loopback implementing the
documented Files and Batches endpoints (`tests/batch_server.py`), with its faults: a batch that
expires, fails validation or is cancelled, per-line failures, malformed and hostile output lines,
and a run killed between submit and collect. The batch file format runs for real through vLLM's
`run_batch` (slow, vllm). In every case: every comparison ends with exactly one verdict, the
annotations equal the online run's, and no comparison that got a verdict is sent again.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from batch_server import batch_server, forward_to, judge_reply
from loopback_server import scripted_server
from typer.testing import CliRunner

from implicit_if.cli import app
from implicit_if.judging import load_judge_spec, plan_comparisons
from implicit_if.judging.batch import custom_id, key_of, parse_output, read_logprob_verdict
from implicit_if.judging.cache import Verdict, VerdictCache
from implicit_if.judging.judges import endpoint_payload

KEY_ENV = "IMPLICIT_IF_TEST_BATCH_KEY"
SECRET = "sk-implicit-if-batch-7f3e9a1c5d"
CLI = [sys.executable, "-c", "from implicit_if.cli import main; main()"]


# -- inputs and helpers -----------------------------------------------------------------------------


def write_inputs(folder: Path, n: int = 8, identical_every: int = 4) -> tuple[Path, Path]:
    references = [
        {"instruction": f"Question {i}: name a colour.", "output": f"Reference answer {i}: blue.", "generator": "ref"}
        for i in range(n)
    ]
    outputs = [
        {
            "instruction": r["instruction"],
            "output": r["output"] if i % identical_every == 0 else f"model says {i}: " + "red " * (i + 1),
            "generator": "m",
        }
        for i, r in enumerate(references)
    ]
    (folder / "outputs.json").write_text(json.dumps(outputs), encoding="utf-8")
    (folder / "reference.json").write_text(json.dumps(references), encoding="utf-8")
    return folder / "outputs.json", folder / "reference.json"


def write_spec(folder: Path, base_url: str, **fields) -> Path:
    spec = {
        "name": "batch-test",
        "kind": "openai_logprobs",
        "model": "loopback-judge",
        "base_url": base_url,
        "api_key_env": KEY_ENV,
        "max_retries": 2,
        "backoff_base_s": 0.01,
        "timeout_s": 30,
        "both_orders": True,
        "price_per_million_input": 0.15,
        "price_per_million_output": 0.6,
        **fields,
    }
    path = folder / "spec.yaml"
    path.write_text(json.dumps(spec), encoding="utf-8")
    return path


class Run:
    """One folder: inputs, spec, cache; runs the judge command in-process or in a subprocess."""

    def __init__(self, folder: Path, base_url: str, n: int = 8, **spec_fields) -> None:
        self.folder = folder
        self.outputs, self.reference = write_inputs(folder, n)
        self.spec = write_spec(folder, base_url, **spec_fields)
        self.cache = folder / "verdicts.sqlite"
        self.annotations = folder / "annotations.json"

    def args(self, *extra: str, cache: Path | None = None, output: Path | None = None) -> list[str]:
        return [
            *("judge", "--outputs", str(self.outputs), "--reference", str(self.reference)),
            *("--judge", str(self.spec), "--cache", str(cache or self.cache)),
            *("--output", str(output or self.annotations)),
            *extra,
        ]

    def judge(self, *extra: str, **kwargs):
        result = CliRunner().invoke(app, self.args(*extra, **kwargs))
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    def process(self, *extra: str) -> subprocess.Popen:
        env = {**os.environ, KEY_ENV: SECRET, "IMPLICIT_IF_CACHE": str(self.folder / "user-cache")}
        return subprocess.Popen(
            [*CLI, *self.args(*extra)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )

    def plan(self) -> dict:
        spec = load_judge_spec(str(self.spec))
        outputs = json.loads(self.outputs.read_text(encoding="utf-8"))
        references = json.loads(self.reference.read_text(encoding="utf-8"))
        return plan_comparisons(outputs, references, spec)[2]

    def stored(self) -> dict[str, float | None]:
        return stored(self.cache)

    def collect(self, limit: int = 6) -> list:
        """`--batch` until the annotations are written; the outputs of every run."""
        logs = []
        for _ in range(limit):
            result = self.judge("--batch")
            logs.append(result.output)
            assert result.exit_code == 0, result.output
            if "wrote" in result.stdout and "annotations" in result.stdout:
                return logs
        raise AssertionError("the batch never finished:\n" + "\n---\n".join(logs))


def stored(cache: Path) -> dict[str, float | None]:
    db = sqlite3.connect(cache)
    try:
        return dict(db.execute("SELECT key, p_second FROM verdicts"))
    finally:
        db.close()


def pending_holds(cache: Path) -> list[tuple[str, str]]:
    db = sqlite3.connect(cache)
    try:
        return list(db.execute("SELECT key, state FROM batch_holds WHERE state = 'pending'"))
    finally:
        db.close()


def batch_input_ids(server, batch_id: str) -> list[str]:
    data = server.files[server.batches[batch_id]["public"]["input_file_id"]]["data"]
    return [json.loads(line)["custom_id"] for line in data.splitlines() if line.strip()]


@pytest.fixture()
def key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    monkeypatch.setenv("IMPLICIT_IF_OFFLINE", "1")


@pytest.fixture()
def online(tmp_path, key):
    """The online run's annotations for a folder's inputs (a separate server and cache, same judge)."""

    def run(case: Run) -> list[dict]:
        with batch_server() as other:
            cache, output = case.folder / "online.sqlite", case.folder / "online.json"
            result = case.judge("--base-url", other.url, cache=cache, output=output)
            assert result.exit_code == 0, result.output
            assert other.chat_requests == len(case.plan())
        return json.loads(output.read_text(encoding="utf-8"))

    return run


def annotations(case: Run) -> list[dict]:
    return json.loads(case.annotations.read_text(encoding="utf-8"))


# -- the format --------------------------------------------------------------------------------------


def test_custom_ids_encode_the_cache_key_and_nothing_else():
    key = "0123456789abcdef" * 4
    assert custom_id(key) == "iif1-" + key and key_of(custom_id(key)) == key
    hostile = [
        None,
        12345,
        ["iif1-" + key],
        "iif1-" + key.upper(),
        "iif1-" + key[:-1],
        "iif1-" + key + "0",
        "iif1-" + key + "\n",
        "iif2-" + key,
        "IIF1-" + key,
        " iif1-" + key,
        "iif1-" + "../" * 21 + "a",
        "iif1-" + "٣" * 64,  # Arabic-Indic digits: \d would take them
        "iif1-" + key[:32] + "' OR 1=1 --" + key[43:],
    ]
    assert [key_of(h) for h in hostile] == [None] * len(hostile)


def test_the_input_file_holds_the_online_requests_of_the_uncached_comparisons_and_sends_nothing(tmp_path, key):
    with batch_server() as server:
        case = Run(tmp_path, server.url)  # the address is never used: --batch-input-only sends nothing
        plan = case.plan()
        spec = load_judge_spec(str(case.spec))
        target = tmp_path / "batch-input.jsonl"
        result = case.judge("--batch-input-only", str(target))
        assert result.exit_code == 0, result.output
        assert server.uploads == server.chat_requests == len(server.auth) == 0
    assert not case.cache.exists()  # read-only: no cache created
    lines = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == len(plan) == 12  # 8 pairs, 2 identical, both orders
    for line in lines:
        assert set(line) == {"custom_id", "method", "url", "body"}
        assert (line["method"], line["url"]) == ("POST", "/v1/chat/completions")
        assert line["body"] == endpoint_payload(spec, plan[key_of(line["custom_id"])])
    assert [key_of(line["custom_id"]) for line in lines] == list(plan)
    # with part of the comparisons cached, only the rest is written
    cached = list(plan)[:5]
    with VerdictCache(case.cache) as cache:
        for k in cached:
            cache.put(k, spec.identity_hash(), Verdict(0.25, "{}"))
    assert case.judge("--batch-input-only", str(target)).exit_code == 0
    rest = [key_of(json.loads(line)["custom_id"]) for line in target.read_text(encoding="utf-8").splitlines()]
    assert rest == list(plan)[5:]
    with VerdictCache(case.cache) as cache:
        for k in rest:
            cache.put(k, spec.identity_hash(), Verdict(0.25, "{}"))
    target.write_text("untouched", encoding="utf-8")
    result = case.judge("--batch-input-only", str(target))
    assert result.exit_code == 0 and "nothing to write" in result.output
    assert target.read_text(encoding="utf-8") == "untouched"


# -- the Batch API protocol on loopback ---------------------------------------------------------------


def test_a_batch_round_trip_equals_the_online_run_and_shares_its_cache(tmp_path, key, online):
    with batch_server(required_key=SECRET) as server:
        case = Run(tmp_path, server.url)
        plan = case.plan()
        first = case.judge("--batch")
        assert first.exit_code == 0, first.output
        assert "submitted batch batch_0001 (12 requests)" in first.output and "rerun the same command" in first.output
        assert not case.annotations.exists() and case.stored() == {}
        second = case.judge("--batch")
        assert second.exit_code == 0, second.output
        assert "collected 12 verdicts" in second.output and "at Batch API prices" in second.output
        assert set(case.stored()) == set(plan)
        third = case.judge("--batch")
        assert third.exit_code == 0 and "nothing to submit" in third.output
        assert server.creates == ["batch_0001"] and server.uploads == 1
        assert sorted(server.carried) == sorted(custom_id(k) for k in plan)
        assert set(server.carried.values()) == {1}
        # the online path reads the same cache rows: it asks nothing
        online_again = case.judge(output=tmp_path / "again.json")
        assert online_again.exit_code == 0 and server.chat_requests == 0
        assert server.auth == {f"Bearer {SECRET}"}
    assert annotations(case) == online(case) == json.loads((tmp_path / "again.json").read_text(encoding="utf-8"))
    leaks = [str(p) for p in tmp_path.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert leaks == []


def test_a_batch_in_progress_reports_its_status_and_online_runs_leave_it_alone(tmp_path, key, online):
    with batch_server(steps=4) as server:
        case = Run(tmp_path, server.url)
        assert case.judge("--batch").exit_code == 0
        status = case.judge("--batch")
        assert status.exit_code == 0, status.output
        assert "batch batch_0001: in_progress" in status.output and "(12 requests)" in status.output
        assert "12 of 12 comparisons are still out" in status.output and not case.annotations.exists()
        # nor does a batch input file for vLLM: it would be paid for twice
        held = case.judge("--batch-input-only", str(tmp_path / "in.jsonl"))
        assert held.exit_code == 0 and "12 comparisons are in a Batch API batch not collected yet" in held.output
        assert not (tmp_path / "in.jsonl").exists()
        # an online run on the same cache does not pay for what the batch carries
        plain = case.judge(output=tmp_path / "plain.json")
        assert plain.exit_code == 1 and "collect it with `implicit-if judge --batch`" in plain.output
        assert server.chat_requests == 0 and not (tmp_path / "plain.json").exists()
        waited = case.judge("--batch", "--batch-wait", "10", "--batch-poll", "0.05")
        assert waited.exit_code == 0, waited.output
        assert "collected 12 verdicts" in waited.output and case.annotations.exists()
        assert server.creates == ["batch_0001"]
    assert annotations(case) == online(case)


@pytest.mark.parametrize(
    ("fault", "answered"),
    [({"expire_after": 5}, 5), ({"status": "failed"}, 0), ({"cancel_after": 4}, 4)],
    ids=["expired", "failed", "cancelled"],
)
def test_an_ended_batch_keeps_what_it_answered_and_resends_only_the_rest(tmp_path, key, online, fault, answered):
    with batch_server() as server:
        server.faults.append(fault)
        case = Run(tmp_path, server.url)
        plan = case.plan()
        case.judge("--batch")
        second = case.judge("--batch")
        assert second.exit_code == 0, second.output
        assert f"collected {answered} verdicts, {12 - answered} requests came back without one" in second.output
        if fault.get("status") == "failed":
            assert "injected validation failure" in second.output
        assert len(case.stored()) == answered
        first_ids = batch_input_ids(server, "batch_0001")
        assert batch_input_ids(server, "batch_0002") == first_ids[answered:]  # only the rest, in a new batch
        case.collect()
        assert server.creates == ["batch_0001", "batch_0002"]
        assert set(case.stored()) == set(plan)
        assert {cid: n for cid, n in server.carried.items() if n > 1} == {cid: 2 for cid in first_ids[answered:]}
    assert annotations(case) == online(case)


def test_per_line_failures_are_resent_once_released_and_nothing_else_is(tmp_path, key, online):
    with batch_server() as server:
        server.faults.append({"http_error": {0: 500, 2: 429}, "vllm_error": [5], "no_logprobs": [7]})
        case = Run(tmp_path, server.url)
        case.judge("--batch")
        second = case.judge("--batch")
        assert "collected 8 verdicts, 4 requests came back without one (released, to be sent again)" in second.output
        first_ids = batch_input_ids(server, "batch_0001")
        failed = [first_ids[i] for i in (0, 2, 5, 7)]
        assert batch_input_ids(server, "batch_0002") == failed
        assert sorted(k for k, _ in pending_holds(case.cache)) == sorted(key_of(c) for c in failed)  # held anew
        case.collect()
        assert {cid for cid, n in server.carried.items() if n == 2} == set(failed)
        assert set(server.carried.values()) == {1, 2}
    assert annotations(case) == online(case)


def test_malformed_and_hostile_output_lines_are_reported_by_line_and_never_reach_the_cache(tmp_path, key, online):
    def duplicate(lines):  # a second answer for line 2 with the opposite verdict: the first one counts
        body = judge_reply(lines[2]["body"])[1]
        body["choices"][0]["logprobs"]["content"][0]["top_logprobs"] = [
            {"token": "A", "logprob": -9.0},
            {"token": "B", "logprob": -0.001},
        ]
        line = {"id": "x", "custom_id": lines[2]["custom_id"], "response": {"status_code": 200, "body": body}}
        foreign = {**line, "custom_id": custom_id("f" * 64)}  # well-formed, but not a request of this batch
        return [
            json.dumps(line).encode(),
            json.dumps(foreign).encode(),
            b'{"custom_id": "../../../etc/passwd", "response": {"status_code": 200}}',
            b'{"custom_id": 12345}',
            b"\xff\xfe not utf-8",
            b"null",
        ]

    with batch_server() as server:
        server.faults.append(
            {
                "malformed": {
                    0: b'{"id": "batch_req_1", "custom_id": "iif1-',  # truncated
                    1: b"[1, 2, 3]",
                    3: lambda line: json.dumps({"custom_id": line["custom_id"], "response": "oops"}).encode(),
                    4: lambda line: json.dumps(
                        {"custom_id": line["custom_id"], "response": {"status_code": 200, "body": "text"}}
                    ).encode(),
                },
                "extra_lines": duplicate,
            }
        )
        case = Run(tmp_path, server.url)
        plan = case.plan()
        case.judge("--batch")
        second = case.judge("--batch")
        assert second.exit_code == 0, second.output
        for number, reason in [
            (1, "not JSON"),
            (2, "not a JSON object"),
            (4, "response is not an object"),
            (5, "status 200 without a response body object"),
            (13, "a second line for custom_id"),
            (14, "custom_id iif1-ffffffffffff... names no comparison this batch asked for"),
            (15, "custom_id '../../../etc/passwd' is not one of ours"),
            (16, "custom_id '12345' is not one of ours"),
            (17, "not JSON"),
            (18, "not a JSON object"),
        ]:
            assert f"batch batch_0001 output file line {number}: {reason}" in second.output, (number, second.output)
        first_ids = batch_input_ids(server, "batch_0001")
        assert batch_input_ids(server, "batch_0002") == first_ids[:2] + first_ids[3:5]
        assert set(case.stored()) == {key_of(cid) for cid in first_ids[2:3] + first_ids[5:]}
        case.collect()
        assert set(case.stored()) == set(plan)  # no foreign key stored, nothing lost
    result = annotations(case)
    assert result == online(case)  # the hostile duplicate did not replace the first answer
    assert stored(tmp_path / "online.sqlite") == case.stored()


def test_a_comparison_failing_in_every_batch_is_given_up_after_the_retry_budget(tmp_path, key, online):
    with batch_server() as server:
        server.faults.extend([{"http_error": {0: 500}}, {"http_error": {0: 500}}])
        case = Run(tmp_path, server.url, max_retries=1)  # two batches at most per comparison
        plan = case.plan()
        case.judge("--batch")
        case.judge("--batch")  # collects batch 1, resends the failure
        final = case.judge("--batch")  # collects batch 2: the budget is spent
        assert final.exit_code == 1, final.output
        assert "1 comparisons have no verdict (e.g. batch batch_0002: HTTP 500" in final.output
        assert "Rerun the same command to send them again" in final.output and not case.annotations.exists()
        assert len(server.creates) == 2
        partial = case.judge("--batch", "--partial")  # a new run: sends it again, with a fresh budget
        assert partial.exit_code == 0 and "submitted batch batch_0003 (1 requests)" in partial.output
        case.collect()
        assert set(case.stored()) == set(plan) and len(server.creates) == 3
    assert annotations(case) == online(case)


@pytest.mark.slow
@pytest.mark.parametrize("kill_at", ["upload", "create", "recorded"])
def test_a_kill_between_submit_and_collect_submits_nothing_twice(tmp_path, key, online, kill_at):
    """SIGKILL while the upload or the batch creation is answered (the provider has the file, or the
    batch, but the run never learns its id), or a clean stop after the id is recorded; a fresh process
    then resumes from the cache database."""
    with batch_server() as server:
        case = Run(tmp_path, server.url)
        plan = case.plan()
        if kill_at == "recorded":
            process = case.process("--batch")
            out, _ = process.communicate(timeout=120)
            assert process.returncode == 0 and "submitted batch batch_0001" in out, out
        else:
            server.hold = kill_at
            process = case.process("--batch")
            assert server.reached.wait(timeout=120), process.communicate()[0]
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
            server.hold = None
            server.release.set()
            assert process.returncode == -signal.SIGKILL
            assert len(server.creates) == (1 if kill_at == "create" else 0)
            server.add_unrelated_batches(150)  # the lost batch is now on the second page of the provider's list
        resumed = case.process("--batch")
        out, _ = resumed.communicate(timeout=120)
        assert resumed.returncode == 0, out
        if kill_at == "create":
            assert "found batch batch_0001, created by an interrupted run: resumed it (not created again)" in out
        if kill_at == "upload":
            assert "an interrupted upload (nothing was sent)" in out
        logs = case.collect()
        assert server.creates == ["batch_0001"], logs
        assert server.uploads == (2 if kill_at == "upload" else 1)
        assert sorted(server.carried) == sorted(custom_id(k) for k in plan) and set(server.carried.values()) == {1}
        assert pending_holds(case.cache) == []
    assert annotations(case) == online(case)


@pytest.mark.slow
def test_two_runs_at_once_submit_each_comparison_once(tmp_path, key, online):
    with batch_server() as server:
        case = Run(tmp_path, server.url, n=24)
        plan = case.plan()
        runs = [case.process("--batch", "--batch-max-requests", "4") for _ in range(2)]
        for run in runs:
            out, _ = run.communicate(timeout=180)
            assert run.returncode == 0, out
        assert len(server.creates) == len(plan) // 4
        case.collect()
        assert sorted(server.carried) == sorted(custom_id(k) for k in plan) and set(server.carried.values()) == {1}
    assert annotations(case) == online(case)


# -- output files from elsewhere (vLLM's run_batch) ---------------------------------------------------


def run_batch_like(input_file: Path, output_file: Path, skip: int | None = None, error: int | None = None) -> None:
    """Answer an input file the way vLLM's run_batch writes its output (one line per request)."""
    lines = []
    for i, raw in enumerate(input_file.read_text(encoding="utf-8").splitlines()):
        request = json.loads(raw)
        if i == skip:
            continue
        row = {"id": f"vllm-{i}", "custom_id": request["custom_id"]}
        if i == error:
            row["response"] = {"status_code": 400, "request_id": f"vllm-batch-{i}", "body": None}
            row["error"] = {"error": {"message": "prompt too long", "type": "BadRequestError", "code": 400}}
        else:
            row["response"] = {
                "status_code": 200,
                "request_id": f"vllm-batch-{i}",
                "body": judge_reply(request["body"])[1],
            }
            row["error"] = None
        lines.append(json.dumps(row))
    output_file.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_output_files_are_checked_line_by_line_and_only_what_is_missing_is_written_again(tmp_path, key, online):
    case = Run(tmp_path, "http://127.0.0.1:9/v1")  # never contacted
    plan = case.plan()
    first_in, first_out = tmp_path / "in-1.jsonl", tmp_path / "out-1.jsonl"
    assert case.judge("--batch-input-only", str(first_in)).exit_code == 0
    run_batch_like(first_in, first_out, skip=3, error=6)
    with first_out.open("ab") as handle:  # a hostile tail: a foreign comparison, garbage, an injected id
        handle.write(json.dumps({"custom_id": custom_id("e" * 64), "response": {"status_code": 200}}).encode() + b"\n")
        handle.write(b"}{\n")
        handle.write(b'{"custom_id": "iif1-x\'; DROP TABLE verdicts; --"}\n')
    result = case.judge("--batch-output", str(first_out))
    assert result.exit_code == 1, result.output
    assert (
        f"{first_out} line 12: custom_id iif1-eeeeeeeeeeee... names no comparison this run asked for" in result.output
    )
    assert f"{first_out} line 13: not JSON" in result.output and f"{first_out} line 14: custom_id" in result.output
    assert "2 comparisons have no verdict (e.g. not in the output files)" in result.output
    assert "--batch-input-only" in result.output and not case.annotations.exists()
    ids = [json.loads(line)["custom_id"] for line in first_in.read_text(encoding="utf-8").splitlines()]
    assert set(case.stored()) == {key_of(cid) for i, cid in enumerate(ids) if i not in (3, 6)}
    second_in, second_out = tmp_path / "in-2.jsonl", tmp_path / "out-2.jsonl"
    assert case.judge("--batch-input-only", str(second_in)).exit_code == 0
    assert [json.loads(line)["custom_id"] for line in second_in.read_text(encoding="utf-8").splitlines()] == [
        ids[3],
        ids[6],
    ]
    run_batch_like(second_in, second_out)
    result = case.judge("--batch-output", str(second_out), "--batch-output", str(first_out))
    assert result.exit_code == 0, result.output
    assert set(case.stored()) == set(plan)
    assert annotations(case) == online(case)


def test_reading_an_output_line_never_raises():
    expected = {"a" * 64}
    lines = [
        b"{}",
        b'{"custom_id": "iif1-' + b"a" * 64 + b'", "response": {"status_code": "200", "body": {}}}',
        b'{"custom_id": "iif1-' + b"a" * 64 + b'", "response": {"status_code": true, "body": {"choices": []}}}',
        b"[" * 100_000,
        b'{"custom_id": "iif1-' + b"a" * 64 + b'", "response": {"status_code": 200, "body": {"choices": [1]}}}',
        b"1e999999",
        b'"just a string"',
    ]
    parsed = parse_output(b"\n".join(lines), "f.jsonl", expected, read_logprob_verdict)
    assert parsed.verdicts == {}
    assert [int(p.split(" line ")[1].split(":")[0]) for p in parsed.problems] == [1, 2, 3, 4, 5, 6, 7]
    assert parsed.failures == {"a" * 64: "malformed output line (status_code is not an integer)"}


# -- errors --------------------------------------------------------------------------------------------


def test_batches_need_an_endpoint_judge_and_an_endpoint_with_a_batch_api(tmp_path, key):
    case = Run(tmp_path, "http://127.0.0.1:9/v1")
    local = tmp_path / "local.yaml"
    local.write_text(json.dumps({"name": "l", "kind": "local", "model": "smollm2-135m-instruct"}), encoding="utf-8")
    args = case.args("--batch")
    args[args.index("--judge") + 1] = str(local)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "batches are for endpoint judges" in result.output
    for extra, message in [
        (["--batch", "--estimate"], "--estimate and --batch are different ways"),
        (["--batch-wait", "5"], "use them with --batch"),
        (["--batch-output", str(tmp_path / "missing.jsonl")], "does not exist"),
    ]:
        result = case.judge(*extra)
        assert result.exit_code == 2 and message in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1
    result = case.judge("--batch")
    assert result.exit_code == 2 and "cannot reach the batch endpoint http://127.0.0.1:9/v1" in result.output
    assert pending_holds(case.cache) == []  # the upload never happened: nothing is held
    not_found = {"error": {"message": "Not Found"}}
    with scripted_server([(404, {}, not_found)]) as (url, seen):  # vLLM's server: no /v1/files, no /v1/batches
        result = case.judge("--batch", "--base-url", url)
    assert result.exit_code == 2 and "has no Batch API" in result.output and "--batch-input-only" in result.output
    assert SECRET not in result.output and pending_holds(case.cache) == [] and len(seen) == 1


# -- vLLM (slow) ---------------------------------------------------------------------------------------


def vllm_spec(folder: Path, base_url: str) -> Path:
    from vllm_server import SERVED_MODEL_NAME

    return write_spec(
        folder, base_url, name="smollm2-batch", model=SERVED_MODEL_NAME, max_answer_chars=600, timeout_s=120
    )


@pytest.mark.slow
@pytest.mark.vllm
def test_vllm_run_batch_reads_our_input_file_and_gives_the_online_verdicts(
    tmp_path, key, smollm2_dir, request, monkeypatch
):
    """The input file through vLLM's offline batch runner (its own engine, before the session server
    starts), its output through --batch-output; then the same comparisons online against vLLM's server."""
    from vllm_server import SERVED_MODEL_NAME, VLLM_PYTHON

    if not VLLM_PYTHON.exists():
        pytest.skip("the vLLM virtualenv is absent: run `make vllm-env`")
    case = Run(tmp_path, "http://127.0.0.1:9/v1", n=6)
    case.spec = vllm_spec(tmp_path, "http://127.0.0.1:9/v1")
    plan = case.plan()
    batch_in, batch_out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    assert case.judge("--batch-input-only", str(batch_in)).exit_code == 0
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "PYTHONUNBUFFERED": "1"}
    env.pop(KEY_ENV, None)
    command = [
        str(VLLM_PYTHON),
        *("-m", "vllm.entrypoints.openai.run_batch", "-i", str(batch_in), "-o", str(batch_out)),
        *("--model", smollm2_dir, "--served-model-name", SERVED_MODEL_NAME),
        *("--dtype", "float32", "--max-model-len", "2048", "--enforce-eager"),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = [json.loads(line) for line in batch_out.read_text(encoding="utf-8").splitlines()]
    assert sorted(key_of(r["custom_id"]) for r in rows) == sorted(plan)
    assert all(r["response"]["status_code"] == 200 and r["error"] is None for r in rows)
    result = case.judge("--batch-output", str(batch_out))
    assert result.exit_code == 0, result.output
    assert set(case.stored()) == set(plan)
    again = case.judge("--batch-input-only", str(batch_in))
    assert "nothing to write" in again.output  # a rerun sends nothing
    # The same comparisons online, against vLLM's server (started only now: one engine at a time).
    server = request.getfixturevalue("vllm_server")
    monkeypatch.setenv(KEY_ENV, server.api_key)
    online = case.judge("--base-url", server.base_url, cache=tmp_path / "online.sqlite", output=tmp_path / "o.json")
    assert online.exit_code == 0, online.output
    batch_p, online_p = case.stored(), stored(tmp_path / "online.sqlite")
    assert set(online_p) == set(batch_p)
    print(f"run_batch vs online: max |p difference| = {max(abs(batch_p[k] - online_p[k]) for k in plan):.2e}")
    assert all(abs(batch_p[k] - online_p[k]) <= 1e-4 for k in plan), [(batch_p[k], online_p[k]) for k in plan]
    ours = annotations(case)
    theirs = json.loads((tmp_path / "o.json").read_text(encoding="utf-8"))
    assert [a["order"] for a in ours] == [a["order"] for a in theirs]
    assert all(abs(a["preference"] - b["preference"]) <= 1e-4 for a, b in zip(ours, theirs))


@pytest.mark.slow
@pytest.mark.vllm
def test_the_batch_api_answered_by_vllm_gives_the_online_verdicts(tmp_path, key, vllm_server, monkeypatch):
    """The Batch API protocol (loopback Files/Batches server) with every request answered by vLLM's server."""
    monkeypatch.setenv(KEY_ENV, vllm_server.api_key)
    with batch_server(answer=forward_to(vllm_server.base_url, vllm_server.api_key)) as server:
        server.faults.append({"expire_after": 4})
        case = Run(tmp_path, server.url, n=6)
        case.spec = vllm_spec(tmp_path, server.url)
        plan = case.plan()
        case.judge("--batch")
        case.collect()
        assert len(server.creates) == 2 and set(case.stored()) == set(plan)
        assert set(server.carried.values()) == {1, 2}
    online = case.judge(
        "--base-url", vllm_server.base_url, cache=tmp_path / "online.sqlite", output=tmp_path / "o.json"
    )
    assert online.exit_code == 0, online.output
    batch_p, online_p = case.stored(), stored(tmp_path / "online.sqlite")
    assert all(abs(batch_p[k] - online_p[k]) <= 1e-4 for k in plan)
