"""A real HTTP proxy on 127.0.0.1 that forwards to an OpenAI-compatible server and injects faults.

Whether a request meets a fault is drawn from a hash of (seed, request body, attempt number for
that body), so the rate is seeded and independent of arrival order; the kind of fault cycles
through the list below, so every kind occurs once five faults have been injected:

- `429`: Too Many Requests with `Retry-After: 1`, not forwarded;
- `500`: a server error (500/502/503), not forwarded;
- `timeout`: forwarded, then the answer is held back past the client's timeout and dropped;
- `malformed`: forwarded, then a truncated, unparseable body is returned with status 200;
- `no_logprobs`: forwarded, then returned with every `logprobs` field removed.

After `max_faults_per_request` faults in a row a request goes through cleanly, so a client that
retries enough always gets its answer. The proxy counts, per request body, how many requests
reached the upstream server in each `phase` (set by the test), and records the Authorization
headers it receives. The client's key stops here: upstream requests carry `upstream_key` instead.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

FAULTS = ("429", "500", "timeout", "malformed", "no_logprobs")


def body_id(payload: dict) -> str:
    """Identity of a chat request: its messages (one cache key of the judge maps to one of these)."""
    return hashlib.sha256(json.dumps(payload.get("messages"), sort_keys=True).encode()).hexdigest()[:24]


@dataclass
class ProxyLog:
    faults: Counter = field(default_factory=Counter)
    upstream: dict = field(default_factory=lambda: defaultdict(Counter))  # phase -> Counter(body id)
    attempts: Counter = field(default_factory=Counter)  # body id -> requests seen (all phases)
    auth_headers: set = field(default_factory=set)
    retry_gaps: list = field(default_factory=list)  # seconds between a 429 and the next attempt of that body


class FaultProxy:
    def __init__(
        self,
        upstream: str,
        *,
        seed: int = 0,
        fault_rate: float = 0.6,
        faults: tuple[str, ...] = FAULTS,
        max_faults_per_request: int = 2,
        hold_s: float = 3.0,
        required_key: str | None = None,
        strip_all_logprobs: bool = False,
        upstream_key: str | None = None,
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.seed, self.fault_rate, self.faults = seed, fault_rate, faults
        self.max_faults_per_request, self.hold_s = max_faults_per_request, hold_s
        self.required_key = required_key
        self.strip_all_logprobs = strip_all_logprobs
        self.upstream_headers = {"Authorization": f"Bearer {upstream_key}"} if upstream_key else {}
        self.phase = "first"
        self.log = ProxyLog()
        self._lock = threading.Lock()
        self._streak: Counter = Counter()
        self._last_429: dict[str, float] = {}
        self._server: ThreadingHTTPServer | None = None

    # -- decisions ---------------------------------------------------------------------------
    def fault_for(self, ident: str, attempt: int) -> str | None:
        """Called under the lock."""
        if self._streak[ident] >= self.max_faults_per_request:
            return None
        if random.Random(f"{self.seed}:{ident}:{attempt}").random() >= self.fault_rate:
            return None
        return self.faults[sum(self.log.faults.values()) % len(self.faults)]

    # -- server ------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> FaultProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:
                response = httpx.get(
                    proxy.upstream + self.path.removeprefix("/v1"), headers=proxy.upstream_headers, timeout=30
                )
                self._send(response.status_code, response.content)

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                proxy._handle(self, raw)

            def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _handle(self, handler, raw: bytes) -> None:
        authorization = handler.headers.get("Authorization", "")
        payload = json.loads(raw)
        ident = body_id(payload)
        with self._lock:
            phase = self.phase  # at arrival: a request still in flight when the phase changes belongs to the old one
            self.log.auth_headers.add(authorization)
            attempt = self.log.attempts[ident]
            self.log.attempts[ident] += 1
            if ident in self._last_429:
                # A retry is the same run asking again; a killed run's successor asking anew is not.
                when, its_phase = self._last_429.pop(ident)
                if its_phase == phase:
                    self.log.retry_gaps.append(time.monotonic() - when)
            fault = self.fault_for(ident, attempt)
            self._streak[ident] = self._streak[ident] + 1 if fault else 0
            if fault:
                self.log.faults[fault] += 1
        if self.required_key is not None and authorization != f"Bearer {self.required_key}":
            handler._send(
                401, json.dumps({"error": {"message": f"Incorrect API key provided: {authorization[7:]}"}}).encode()
            )
            return
        if fault == "429":
            with self._lock:
                self._last_429[ident] = (time.monotonic(), phase)
            try:
                handler._send(429, b'{"error": {"message": "rate limited"}}', {"Retry-After": "1"})
            except OSError:  # the client is gone (killed): it never saw this 429
                with self._lock:
                    self._last_429.pop(ident, None)
                raise
            return
        if fault == "500":
            handler._send(random.Random(ident).choice((500, 502, 503)), b'{"error": {"message": "upstream trouble"}}')
            return
        upstream = httpx.post(
            self.upstream + handler.path.removeprefix("/v1"),
            content=raw,
            headers={"Content-Type": "application/json", **self.upstream_headers},
            timeout=120,
        )
        with self._lock:
            self.log.upstream[phase][ident] += 1
        body = upstream.content
        if fault == "timeout":
            time.sleep(self.hold_s)  # the client has given up by now; the answer is dropped
            handler.connection.close()
            return
        if fault == "malformed":
            body = body[: len(body) // 2]
        elif fault == "no_logprobs" or self.strip_all_logprobs:
            decoded = json.loads(body)
            for choice in decoded.get("choices", []):
                choice.pop("logprobs", None)
            body = json.dumps(decoded).encode()
        handler._send(upstream.status_code, body)


@contextmanager
def fault_proxy(upstream: str, **options: object) -> Iterator[FaultProxy]:
    proxy = FaultProxy(upstream, **options).start()
    try:
        yield proxy
    finally:
        proxy.stop()
