"""A real HTTP server on loopback for the judge client tests: scripted replies, every request recorded."""

from __future__ import annotations

import json
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@contextmanager
def scripted_server(script, delay_s: float = 0.0):
    """A real HTTP server on 127.0.0.1 answering POSTs from `script`: (status, headers, body) in turn
    (the last one repeats). Yields (base URL, seen): one (time, Authorization header, request body)
    per request. `delay_s` holds each reply, so concurrent clients overlap."""
    seen = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            request = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with lock:
                seen.append((time.monotonic(), self.headers.get("Authorization"), request))
                status, headers, body = script[min(len(seen), len(script)) - 1]
            time.sleep(delay_s)
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", seen
    finally:
        server.shutdown()
        server.server_close()
