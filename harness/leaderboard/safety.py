"""Checks on a submission folder as files, before any of them is parsed.

A submission arrives in a pull request from anyone, so the folder may only hold known files:
no links (which could point anywhere on the CI machine), no names that escape the folder, no
pickled weights (loading them runs code) and nothing that needs `trust_remote_code`.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

from safetensors import SafetensorError, safe_open

from .problems import Problem

METADATA = "metadata.json"
OUTPUTS = "outputs.json"
ANNOTATIONS = "annotations.json"
RANKING = "ranking.jsonl"
LEAKAGE = "leakage.jsonl"
RECORD_FILES = (OUTPUTS, ANNOTATIONS, RANKING, LEAKAGE)
TOP_LEVEL_FILES = frozenset({METADATA, *RECORD_FILES, "README.md"})
WEIGHTS_DIR = "weights"

MiB = 1024 * 1024
MAX_RECORD_BYTES = 25 * MiB  # 805 long outputs with judge text fit in a few MiB
MAX_WEIGHTS_FILE_BYTES = 95 * MiB  # under GitHub's 100 MB per-file limit
MAX_FOLDER_BYTES = 200 * MiB

SAFE_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")  # also rules out "." and ".."
WEIGHT_SUFFIXES = frozenset({".safetensors", ".json", ".txt", ".md", ".model", ".jinja"})
PICKLE_SUFFIXES = frozenset(
    {".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".joblib", ".h5", ".npy", ".npz", ".msgpack", ".gguf", ".onnx"}
)
CODE_SUFFIXES = frozenset({".py", ".pyc", ".so", ".sh", ".js", ".exe"})

STOCK_MODEL = "submit a model that loads with a stock transformers architecture"
SAVE_SAFETENSORS = "save the weights with safetensors (save_pretrained(..., safe_serialization=True))"

Finding = tuple[str, str]  # (message, fix) of a Problem whose file is known to the caller


def check_folder(folder: Path, label: str) -> list[Problem]:
    """File-level problems of one submission folder; `label` is how lines name it (its folder name)."""
    if folder.is_symlink():
        return [Problem(label, "the submission folder is a link", "commit a real folder, not a link")]
    problems: list[Problem] = []
    total = 0
    for directory, dirnames, filenames in os.walk(folder, followlinks=False):
        here = Path(directory)
        for name in sorted(dirnames + filenames):
            path = here / name
            relative = path.relative_to(folder)
            status = path.lstat()
            found = _entry_problem(name, relative, status)
            if found is None and stat.S_ISREG(status.st_mode):
                total += status.st_size
                found = _file_problem(path, relative, status.st_size)
            if found:
                problems.append(Problem(f"{label}/{relative.as_posix()}", *found))
        # Walk into weights/ only; os.walk never follows a link, which is reported above.
        dirnames[:] = [WEIGHTS_DIR] if here == folder and WEIGHTS_DIR in dirnames else []
    if total > MAX_FOLDER_BYTES:
        problems.append(
            Problem(
                label,
                f"holds {total / MiB:.0f} MiB, over the {MAX_FOLDER_BYTES // MiB} MiB limit",
                "link large weights by hub id and pinned revision instead of committing them",
            )
        )
    if not (folder / METADATA).is_file():
        problems.append(
            Problem(
                f"{label}/{METADATA}", "is missing", "create it (implicit-if submit writes it; see the schema in docs)"
            )
        )
    return problems


def _entry_problem(name: str, relative: Path, status: os.stat_result) -> Finding | None:
    """Why an entry is neither a plain file nor the weights/ folder; the first rule that applies wins."""
    mode = status.st_mode
    rules = (
        (stat.S_ISLNK(mode), "is a link (links could reach outside the folder)", "replace the link by the file itself"),
        (
            not SAFE_PART.match(name),
            "has an unsafe name",
            "use letters, digits, '.', '_' and '-' only, not starting with '.'",
        ),
        (
            not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)),
            "is not a regular file (a FIFO, socket or device)",
            "commit regular files only",
        ),
        (
            stat.S_ISREG(mode) and status.st_nlink > 1,
            "has other hard links (it could be a file outside the folder)",
            "commit a copy of the file, not a link",
        ),
        (
            stat.S_ISDIR(mode) and relative.as_posix() != WEIGHTS_DIR,
            "is an unexpected folder",
            f"keep records at the top level and weights in {WEIGHTS_DIR}/ only",
        ),
    )
    return next(((message, fix) for applies, message, fix in rules if applies), None)


def _file_problem(path: Path, relative: Path, size: int) -> Finding | None:
    """Why a regular file may not be in a submission (by its place, size, type or content), or None."""
    if len(relative.parts) == 1:
        if relative.name not in TOP_LEVEL_FILES:
            return (
                "is not a file a submission may hold",
                f"keep only {', '.join(sorted(TOP_LEVEL_FILES))} (and weights/)",
            )
        if size > MAX_RECORD_BYTES:
            return (
                f"is {size / MiB:.1f} MiB, over the {MAX_RECORD_BYTES // MiB} MiB limit",
                "drop fields the board does not need (e.g. raw judge completions)",
            )
        if relative.name != "README.md" and size == 0:
            return "is empty", "remove the file or write its records"
        return None
    # weights/<file>
    suffix = path.suffix.lower()
    if suffix in CODE_SUFFIXES:
        return "is code; models that need trust_remote_code are not accepted", STOCK_MODEL
    if suffix in PICKLE_SUFFIXES:
        return "is not safetensors (pickled or foreign weights can run code when loaded)", SAVE_SAFETENSORS
    if suffix not in WEIGHT_SUFFIXES:
        return (
            f"has a type ({suffix or 'no suffix'}) not allowed in weights/",
            f"keep only {', '.join(sorted(WEIGHT_SUFFIXES))} files there",
        )
    if size > MAX_WEIGHTS_FILE_BYTES:
        return (
            f"is {size / MiB:.0f} MiB, over the {MAX_WEIGHTS_FILE_BYTES // MiB} MiB per-file limit",
            "shard the weights or reference them by hub id and pinned revision",
        )
    if suffix == ".safetensors":
        reason = safetensors_problem(path)
        return (reason, SAVE_SAFETENSORS) if reason else None
    if suffix == ".json":
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            return "is not valid JSON", "fix the JSON syntax"
        if isinstance(config, dict) and ("auto_map" in config or config.get("trust_remote_code")):
            return "asks for remote code (auto_map / trust_remote_code)", STOCK_MODEL
    return None


def safetensors_problem(path: Path) -> str | None:
    """Why a file named .safetensors is not one (judged by its header, not its name), or None.

    The library maps the file without reading the tensors and never runs code from it; it refuses a
    header length that does not fit, a header that is not a JSON object of dtypes and shapes, and
    data offsets that do not cover the data exactly.
    """
    try:
        with safe_open(path, framework="numpy"):
            return None
    except SafetensorError as error:
        return f"is not safetensors ({str(error).removeprefix('Error while deserializing header: ')[:120]})"
