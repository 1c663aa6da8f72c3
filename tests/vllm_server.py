"""A real vLLM OpenAI-compatible server on loopback, for tests (one per test session).

`vllm_openai_server(model_dir)` starts vLLM's API server from the repository's `.venv-vllm`,
waits until `/v1/models` answers, yields the base URL (`http://127.0.0.1:PORT/v1`) and always
stops the whole process group afterwards.

The session fixture `vllm_server` serves the embedded SmolLM2-135M-Instruct under the name
`smollm2-135m-instruct` and requires an API key (a fresh random one per session, handed to the
server through its environment, never on a command line): pass `vllm_server.api_key` with every
request. The fixture's value is the base URL itself (a `str`), with extra attributes:
`api_key`, `model` (served name), `model_dir` and `log_path` (the server's log file).
Tests that use it are skipped when `.venv-vllm` is absent (`make vllm-env` creates it).

While developing, set IMPLICIT_IF_TEST_VLLM_URL and IMPLICIT_IF_TEST_VLLM_KEY to reuse a server
already started with `vllm_openai_server` (or by hand, same model, served name and an API key).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
VLLM_PYTHON = REPO / ".venv-vllm" / "bin" / "python"
SERVED_MODEL_NAME = "smollm2-135m-instruct"
# Start-up takes about two minutes on a quiet 2-core CPU; allow for a busy one.
STARTUP_TIMEOUT_S = float(os.environ.get("IMPLICIT_IF_VLLM_STARTUP_TIMEOUT", "360"))


class VLLMServer(str):
    """The server's base URL, carrying what a client needs besides it."""

    api_key: str
    model: str
    model_dir: str
    log_path: str

    def __new__(cls, base_url: str, *, api_key: str, model: str, model_dir: str, log_path: str) -> VLLMServer:
        server = super().__new__(cls, base_url)
        server.api_key, server.model, server.model_dir, server.log_path = api_key, model, model_dir, log_path
        return server

    @property
    def base_url(self) -> str:
        return str(self)

    def __repr__(self) -> str:  # the key stays out of pytest's failure reports
        return f"VLLMServer({str(self)!r}, model={self.model!r})"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def models_ready(base_url: str, api_key: str | None) -> bool:
    request = urllib.request.Request(f"{base_url}/models")
    if api_key:
        request.add_header("Authorization", f"Bearer {api_key}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status == 200 and bool(json.load(response).get("data"))
    except (urllib.error.URLError, OSError, ValueError):
        return False


def stop_process_group(process: subprocess.Popen, grace_s: float = 30.0) -> None:
    """SIGTERM the server's whole process group (engine workers included), then SIGKILL."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=grace_s)


@contextlib.contextmanager
def vllm_openai_server(
    model_dir: str,
    port: int | None = None,
    extra_args: Sequence[str] = (),
    *,
    served_model_name: str = SERVED_MODEL_NAME,
    api_key: str | None = None,
    python: Path = VLLM_PYTHON,
    startup_timeout_s: float = STARTUP_TIMEOUT_S,
    log_path: Path | None = None,
) -> Iterator[str]:
    """Serve `model_dir` with vLLM's OpenAI API on 127.0.0.1; yields the base URL (`.../v1`)."""
    if not Path(python).exists():
        raise FileNotFoundError(f"{python} is missing: run `make vllm-env` to create the vLLM virtualenv")
    port = port or free_port()
    if log_path is None:
        handle, name = tempfile.mkstemp(prefix="vllm-server-", suffix=".log")
        os.close(handle)
        log_path = Path(name)
    command = [
        str(python),
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(model_dir),
        "--served-model-name",
        served_model_name,
        "--dtype",
        "float32",
        "--max-model-len",
        "2048",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        # Eager mode: skips torch.compile, which costs minutes on a small CPU and saves little here.
        "--enforce-eager",
        *extra_args,
    ]
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "2", "PYTHONUNBUFFERED": "1"}
    env.pop("VLLM_API_KEY", None)
    if api_key:
        env["VLLM_API_KEY"] = api_key  # the environment keeps it out of `ps` and the server's logged args
    base_url = f"http://127.0.0.1:{port}/v1"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + startup_timeout_s
        while not models_ready(base_url, api_key):
            if process.poll() is not None:
                raise RuntimeError(
                    f"the vLLM server exited with code {process.returncode} during start-up; "
                    f"log tail:\n{log_tail(log_path)}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the vLLM server did not answer {base_url}/models within {startup_timeout_s:g}s "
                    f"(raise IMPLICIT_IF_VLLM_STARTUP_TIMEOUT on a slow machine); log tail:\n{log_tail(log_path)}"
                )
            time.sleep(2)
        yield base_url
    finally:
        stop_process_group(process)


@pytest.fixture(scope="session")
def vllm_server(smollm2_dir: str) -> Iterator[VLLMServer]:
    """One real vLLM server for the whole session, serving SmolLM2-135M-Instruct (key required)."""
    reuse_url, reuse_key = os.environ.get("IMPLICIT_IF_TEST_VLLM_URL"), os.environ.get("IMPLICIT_IF_TEST_VLLM_KEY")
    if reuse_url and reuse_key:  # a server started by hand (same model and name): saves start-ups while developing
        if not models_ready(reuse_url, reuse_key):
            raise RuntimeError(f"IMPLICIT_IF_TEST_VLLM_URL={reuse_url} does not answer /models with that key")
        yield VLLMServer(reuse_url, api_key=reuse_key, model=SERVED_MODEL_NAME, model_dir=smollm2_dir, log_path="")
        return
    if not VLLM_PYTHON.exists():
        pytest.skip("the vLLM virtualenv is absent: run `make vllm-env`")
    api_key = f"iif-test-{secrets.token_hex(16)}"
    handle, name = tempfile.mkstemp(prefix="vllm-server-", suffix=".log")
    os.close(handle)
    print(f"\nstarting the vLLM server for this session (log: {name})", file=sys.stderr)
    with vllm_openai_server(smollm2_dir, api_key=api_key, log_path=Path(name)) as base_url:
        yield VLLMServer(base_url, api_key=api_key, model=SERVED_MODEL_NAME, model_dir=smollm2_dir, log_path=name)
