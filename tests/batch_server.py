"""A real HTTP server on loopback implementing the documented OpenAI Files and Batches endpoints (and
chat completions), for the `judge --batch` tests.

    with batch_server() as server:          # server.url: http://127.0.0.1:PORT/v1
        server.faults.append({"expire_after": 2})   # the first batch created expires after 2 answers
        ...

Endpoints: POST /v1/files (multipart, purpose batch), GET /v1/files/{id}, GET /v1/files/{id}/content,
POST /v1/batches, GET /v1/batches/{id}, GET /v1/batches (newest first, `limit`/`after`),
POST /v1/batches/{id}/cancel, POST /v1/chat/completions. A batch moves validating -> in_progress ->
finalizing -> completed, one step per retrieve after `steps - 1` retrieves (`steps=1`: the first
retrieve finds it finished). Each request line is answered by `answer(body)`: by default a
deterministic judge reply (label log-probabilities from a hash of the messages), or `forward_to(URL,
KEY)` a real upstream.

Faults, one dict per created batch in order (`server.faults[i]` applies to the i-th batch; missing or
empty: none), by the position of a line in the batch's input file:
- `expire_after: n`: the batch ends `expired`; lines past the first n are in the error file with
  code `batch_expired` (OpenAI's form);
- `status: "failed"`: validation fails, no output at all; `cancel_after: n`: ends `cancelled`, lines
  past n absent from both files;
- `http_error: {i: status}`: line i answered with that status in the error file (OpenAI's form);
  `vllm_error: [i]`: line i failed in vLLM's form (status 400, `error` object);
  `no_logprobs: [i]`: a 200 whose body has no log-probabilities;
- `malformed: {i: bytes or f(input line) -> bytes}`: line i's output line replaced;
  `extra_lines: [bytes] or f(input lines) -> [bytes]`: appended to the output file (duplicates,
  foreign ids, garbage).
`hold: "upload" | "create"`: the matching request does its work, sets `reached`, then waits for
`release` before answering (a test kills the client in between).

Counting: `creates` (batch ids in order), `uploads`, `carried` (custom_id -> batches that carried it),
`chat_requests`, `auth` (Authorization headers seen). `required_key`: requests without it get 401.
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import json
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

EXPIRED = {
    "code": "batch_expired",
    "message": "This request could not be executed before the completion window expired.",
}


def judge_reply(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """A deterministic chat completion: log-probabilities of A and B drawn from a hash of the messages."""
    digest = hashlib.sha256(json.dumps(body.get("messages"), sort_keys=True).encode()).digest()
    a, b = -(0.05 + digest[0] / 64), -(0.05 + digest[1] / 64)
    label = "A" if a >= b else "B"
    prompt_tokens = len(json.dumps(body.get("messages"))) // 4
    reply = {
        "id": f"chatcmpl-{digest.hex()[:12]}",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": body.get("model"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": label},
                "logprobs": {
                    "content": [
                        {
                            "token": label,
                            "logprob": max(a, b),
                            "top_logprobs": [{"token": "A", "logprob": a}, {"token": "B", "logprob": b}],
                        }
                    ]
                },
                "finish_reason": "length",
            }
        ],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 1, "total_tokens": prompt_tokens + 1},
    }
    return 200, reply


def forward_to(base_url: str, api_key: str | None) -> Callable[[dict[str, Any]], tuple[int, dict[str, Any]]]:
    """Answer each request line by asking a real OpenAI-compatible server (e.g. vLLM's)."""

    def answer(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(
            f"{base_url.rstrip('/')}/chat/completions",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", **({"Authorization": f"Bearer {api_key}"} if api_key else {})},
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())

    return answer


class BatchServer:
    def __init__(self, answer, steps: int, required_key: str | None) -> None:
        self.answer = answer
        self.steps = steps
        self.required_key = required_key
        self.faults: list[dict[str, Any]] = []
        self.files: dict[str, dict[str, Any]] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.order: list[str] = []  # batch ids, oldest first
        self.creates: list[str] = []
        self.uploads = 0
        self.chat_requests = 0
        self.carried: Counter[str] = Counter()
        self.auth: set[str | None] = set()
        self.hold: str | None = None
        self.reached = threading.Event()
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.url = ""
        self._clock = 0

    def tick(self) -> int:
        """Unix seconds, strictly increasing (so "newest first" is well defined)."""
        self._clock = max(int(time.time()), self._clock + 1)
        return self._clock

    def add_unrelated_batches(self, n: int) -> None:
        """Batches of someone else on the same account (not counted as creates): the list gets long."""
        with self.lock:
            for _ in range(n):
                file_id = self.add_file("other.jsonl", "batch", b"")["id"]
                batch_id = f"batch_other_{len(self.order) + 1:04d}"
                public = {
                    "id": batch_id,
                    "object": "batch",
                    "endpoint": "/v1/chat/completions",
                    "input_file_id": file_id,
                    "completion_window": "24h",
                    "status": "completed",
                    "created_at": self.tick(),
                }
                self.batches[batch_id] = {"public": public, "lines": [], "retrieves": 0, "fault": {}}
                self.order.append(batch_id)

    # -- files ---------------------------------------------------------------------------------
    def add_file(self, name: str, purpose: str, data: bytes) -> dict[str, Any]:
        file_id = f"file-{len(self.files) + 1:04d}"
        record = {
            "id": file_id,
            "object": "file",
            "bytes": len(data),
            "created_at": self.tick(),
            "filename": name,
            "purpose": purpose,
            "status": "processed",
        }
        self.files[file_id] = {**record, "data": data}
        return record

    # -- batches -------------------------------------------------------------------------------
    def create(self, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        input_id = request.get("input_file_id")
        if input_id not in self.files:
            return 400, {"error": {"message": f"no file {input_id}", "type": "invalid_request_error", "code": None}}
        batch_id = f"batch_{len(self.creates) + 1:04d}"
        lines = [json.loads(line) for line in self.files[input_id]["data"].splitlines() if line.strip()]
        for line in lines:
            self.carried[line["custom_id"]] += 1
        batch = {
            "id": batch_id,
            "object": "batch",
            "endpoint": request.get("endpoint"),
            "input_file_id": input_id,
            "completion_window": request.get("completion_window"),
            "status": "validating",
            "created_at": self.tick(),
            "metadata": request.get("metadata"),
            "output_file_id": None,
            "error_file_id": None,
            "errors": None,
            "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
        }
        self.batches[batch_id] = {"public": batch, "lines": lines, "retrieves": 0, "fault": self._fault()}
        self.order.append(batch_id)
        self.creates.append(batch_id)
        return 200, batch

    def _fault(self) -> dict[str, Any]:
        index = len(self.creates)
        return self.faults[index] if index < len(self.faults) and self.faults[index] else {}

    def retrieve(self, batch_id: str) -> tuple[int, dict[str, Any]]:
        if batch_id not in self.batches:
            return 404, {"error": {"message": f"no batch {batch_id}", "type": "invalid_request_error", "code": None}}
        state = self.batches[batch_id]
        batch = state["public"]
        if batch["status"] in ("completed", "expired", "failed", "cancelled"):
            return 200, batch
        state["retrieves"] += 1
        if state["retrieves"] >= self.steps:
            self._finish(state)
        else:
            batch["status"] = ("in_progress", "finalizing")[min(state["retrieves"], 2) - 1]
            batch["request_counts"]["completed"] = len(state["lines"]) * state["retrieves"] // (self.steps + 1)
        return 200, batch

    def _finish(self, state: dict[str, Any]) -> None:
        batch, fault, lines = state["public"], state["fault"], state["lines"]
        if fault.get("status") == "failed":
            batch.update(
                status="failed",
                failed_at=self.tick(),
                errors={
                    "object": "list",
                    "data": [{"code": "invalid_request", "message": "injected validation failure", "line": 1}],
                },
            )
            return
        limit = len(lines)
        status = "completed"
        if "expire_after" in fault:
            limit, status = fault["expire_after"], "expired"
        if "cancel_after" in fault:
            limit, status = fault["cancel_after"], "cancelled"
        output: list[bytes] = []
        errors: list[bytes] = []
        failed = 0
        for i, line in enumerate(lines):
            row: dict[str, Any] = {"id": f"batch_req_{batch['id']}_{i}", "custom_id": line["custom_id"]}
            if i >= limit:
                if status == "expired":
                    errors.append(json.dumps({**row, "response": None, "error": EXPIRED}).encode())
                    failed += 1
                continue
            if i in fault.get("http_error", {}):
                code = fault["http_error"][i]
                body = {"error": {"message": f"injected HTTP {code}", "type": "server_error", "code": None}}
                row["response"] = {"status_code": code, "request_id": f"req_{i}", "body": body}
                errors.append(json.dumps({**row, "error": None}).encode())
                failed += 1
                continue
            if i in fault.get("vllm_error", []):
                error = {"error": {"message": "injected engine error", "type": "BadRequestError", "code": 400}}
                row["response"] = {"status_code": 400, "request_id": f"req_{i}", "body": None}
                errors.append(json.dumps({**row, "error": error}).encode())
                failed += 1
                continue
            code, body = self.answer(line["body"])
            if i in fault.get("no_logprobs", []):
                body = json.loads(json.dumps(body))
                body["choices"][0].pop("logprobs", None)
            row.update(response={"status_code": code, "request_id": f"req_{i}", "body": body}, error=None)
            replacement = fault.get("malformed", {}).get(i)
            if callable(replacement):
                replacement = replacement(line)
            output.append(replacement or json.dumps(row).encode())
        extra = fault.get("extra_lines", [])
        output.extend(extra(lines) if callable(extra) else extra)
        if output:
            batch["output_file_id"] = self.add_file(
                f"{batch['id']}_output.jsonl", "batch_output", b"\n".join(output) + b"\n"
            )["id"]
        if errors:
            batch["error_file_id"] = self.add_file(
                f"{batch['id']}_error.jsonl", "batch_output", b"\n".join(errors) + b"\n"
            )["id"]
        batch["status"] = status
        batch[f"{status}_at"] = self.tick()
        completed = min(limit, len(lines)) - (failed - (len(lines) - limit if status == "expired" else 0))
        batch["request_counts"] = {"total": len(lines), "completed": completed, "failed": failed}

    def listing(self, query: dict[str, list[str]]) -> dict[str, Any]:
        limit = int(query.get("limit", ["20"])[0])
        newest = list(reversed(self.order))
        after = query.get("after", [None])[0]
        if after in newest:
            newest = newest[newest.index(after) + 1 :]
        page = [self.batches[b]["public"] for b in newest[:limit]]
        return {
            "object": "list",
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": len(newest) > limit,
        }


@contextmanager
def batch_server(answer=judge_reply, steps: int = 1, required_key: str | None = None) -> Iterator[BatchServer]:
    server = BatchServer(answer, steps, required_key)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _reply(self, status: int, payload: Any, raw: bool = False) -> None:
            data = payload if raw else json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/octet-stream" if raw else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):  # the client was killed while we held the answer
                pass

        def _authorised(self) -> bool:
            header = self.headers.get("Authorization")
            with server.lock:
                server.auth.add(header)
            if server.required_key and header != f"Bearer {server.required_key}":
                self._reply(401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}})
                return False
            return True

        def _held(self, kind: str) -> None:
            if server.hold == kind:
                server.reached.set()
                server.release.wait(timeout=120)

        def do_GET(self):
            if not self._authorised():
                return
            url = urlparse(self.path)
            parts = url.path.rstrip("/").split("/")
            with server.lock:
                if parts[-1] == "content" and parts[-3] == "files":
                    record = server.files.get(parts[-2])
                    if record is None:
                        return self._reply(404, {"error": {"message": "no such file", "type": "invalid_request_error"}})
                    return self._reply(200, record["data"], raw=True)
                if parts[-2] == "files":
                    record = server.files.get(parts[-1])
                    if record is None:
                        return self._reply(404, {"error": {"message": "no such file", "type": "invalid_request_error"}})
                    return self._reply(200, {k: v for k, v in record.items() if k != "data"})
                if parts[-1] == "batches":
                    return self._reply(200, server.listing(parse_qs(url.query)))
                if parts[-2] == "batches":
                    return self._reply(*server.retrieve(parts[-1]))
            self._reply(404, {"error": {"message": f"no route {url.path}", "type": "invalid_request_error"}})

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if not self._authorised():
                return
            path = urlparse(self.path).path.rstrip("/")
            if path.endswith("/chat/completions"):
                with server.lock:
                    server.chat_requests += 1
                return self._reply(*server.answer(json.loads(body)))
            if path.endswith("/files"):
                message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                    b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n" + body
                )
                fields = {part.get_param("name", header="content-disposition"): part for part in message.iter_parts()}
                upload = fields["file"]
                purpose = fields["purpose"].get_payload(decode=True).decode()
                with server.lock:
                    server.uploads += 1
                    record = server.add_file(
                        upload.get_filename() or "upload.jsonl", purpose, upload.get_payload(decode=True)
                    )
                self._held("upload")
                return self._reply(200, record)
            if path.endswith("/batches"):
                with server.lock:
                    status, payload = server.create(json.loads(body))
                self._held("create")
                return self._reply(status, payload)
            if path.endswith("/cancel"):
                batch_id = path.split("/")[-2]
                with server.lock:
                    state = server.batches.get(batch_id)
                    if state is None:
                        return self._reply(404, {"error": {"message": "no such batch"}})
                    state["public"]["status"] = "cancelling"
                    state["fault"] = {**state["fault"], "cancel_after": 0}
                    return self._reply(200, state["public"])
            self._reply(404, {"error": {"message": f"no route {path}", "type": "invalid_request_error"}})

    http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    http.daemon_threads = True
    threading.Thread(target=http.serve_forever, daemon=True).start()
    server.url = f"http://127.0.0.1:{http.server_address[1]}/v1"
    try:
        yield server
    finally:
        server.release.set()
        http.shutdown()
        http.server_close()
        time.sleep(0)
