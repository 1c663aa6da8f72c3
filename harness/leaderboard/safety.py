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

SAFE_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
WEIGHT_SUFFIXES = frozenset({".safetensors", ".json", ".txt", ".md", ".model", ".jinja"})
PICKLE_SUFFIXES = frozenset(
    {".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".joblib", ".h5", ".npy", ".npz", ".msgpack", ".gguf", ".onnx"}
)
CODE_SUFFIXES = frozenset({".py", ".pyc", ".so", ".sh", ".js", ".exe"})


def check_folder(folder: Path, label: str) -> list[Problem]:
    """File-level problems of one submission folder; `label` is how lines name it (its folder name)."""
    problems: list[Problem] = []
    if folder.is_symlink():
        return [Problem(label, "the submission folder is a link", "commit a real folder, not a link")]
    total = 0
    for directory, dirnames, filenames in os.walk(folder, followlinks=False):
        here = Path(directory)
        for name in sorted(dirnames + filenames):
            path = here / name
            relative = path.relative_to(folder)
            where = f"{label}/{relative.as_posix()}"
            if path.is_symlink():
                problems.append(
                    Problem(
                        where, "is a link (links could reach outside the folder)", "replace the link by the file itself"
                    )
                )
                continue
            if not SAFE_PART.match(name) or name in {".", ".."}:
                problems.append(
                    Problem(
                        where, "has an unsafe name", "use letters, digits, '.', '_' and '-' only, not starting with '.'"
                    )
                )
                continue
            status = path.lstat()
            if not (stat.S_ISDIR(status.st_mode) or stat.S_ISREG(status.st_mode)):
                problems.append(
                    Problem(where, "is not a regular file (a FIFO, socket or device)", "commit regular files only")
                )
                continue
            if stat.S_ISREG(status.st_mode) and status.st_nlink > 1:
                problems.append(
                    Problem(
                        where,
                        "has other hard links (it could be a file outside the folder)",
                        "commit a copy of the file, not a link",
                    )
                )
                continue
            if path.is_dir():
                if relative.as_posix() != WEIGHTS_DIR:
                    problems.append(
                        Problem(
                            where,
                            "is an unexpected folder",
                            f"keep records at the top level and weights in {WEIGHTS_DIR}/ only",
                        )
                    )
                continue
            total += path.stat().st_size
            problems.extend(_check_file(path, relative, where))
        dirnames[:] = [
            d
            for d in dirnames
            if (here / d).relative_to(folder).as_posix() == WEIGHTS_DIR and not (here / d).is_symlink()
        ]
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


def _check_file(path: Path, relative: Path, where: str) -> list[Problem]:
    size = path.stat().st_size
    suffix = path.suffix.lower()
    if len(relative.parts) == 1:
        if relative.name not in TOP_LEVEL_FILES:
            return [
                Problem(
                    where,
                    "is not a file a submission may hold",
                    f"keep only {', '.join(sorted(TOP_LEVEL_FILES))} (and weights/)",
                )
            ]
        if size > MAX_RECORD_BYTES:
            return [
                Problem(
                    where,
                    f"is {size / MiB:.1f} MiB, over the {MAX_RECORD_BYTES // MiB} MiB limit",
                    "drop fields the board does not need (e.g. raw judge completions)",
                )
            ]
        if relative.name != "README.md" and size == 0:
            return [Problem(where, "is empty", "remove the file or write its records")]
        return []
    # weights/<file>
    if suffix in CODE_SUFFIXES:
        return [
            Problem(
                where,
                "is code; models that need trust_remote_code are not accepted",
                "submit a model that loads with a stock transformers architecture",
            )
        ]
    if suffix in PICKLE_SUFFIXES:
        return [
            Problem(
                where,
                "is not safetensors (pickled or foreign weights can run code when loaded)",
                "convert the weights with safetensors (save_pretrained(..., safe_serialization=True))",
            )
        ]
    if suffix not in WEIGHT_SUFFIXES:
        return [
            Problem(
                where,
                f"has a type ({suffix or 'no suffix'}) not allowed in weights/",
                f"keep only {', '.join(sorted(WEIGHT_SUFFIXES))} files there",
            )
        ]
    if size > MAX_WEIGHTS_FILE_BYTES:
        return [
            Problem(
                where,
                f"is {size / MiB:.0f} MiB, over the {MAX_WEIGHTS_FILE_BYTES // MiB} MiB per-file limit",
                "shard the weights or reference them by hub id and pinned revision",
            )
        ]
    if suffix == ".safetensors":
        problem = safetensors_problem(path, size)
        if problem:
            return [
                Problem(
                    where, problem, "save the weights with safetensors (save_pretrained(..., safe_serialization=True))"
                )
            ]
    if suffix == ".json":
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return [Problem(where, "is not valid JSON", "fix the JSON syntax")]
        if isinstance(config, dict) and ("auto_map" in config or config.get("trust_remote_code")):
            return [
                Problem(
                    where,
                    "asks for remote code (auto_map / trust_remote_code)",
                    "submit a model that loads with a stock transformers architecture",
                )
            ]
    return []


MAX_SAFETENSORS_HEADER = 100 * MiB  # the format's own limit


def safetensors_problem(path: Path, size: int) -> str | None:
    """Why a file named .safetensors is not one (judged by its header, not its name), or None.

    The format: 8 bytes little-endian header length N, then N bytes of JSON mapping tensor names to
    dtype, shape and data offsets that lie inside the rest of the file.
    """
    with path.open("rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            return "is not safetensors (shorter than its 8-byte header length)"
        length = int.from_bytes(head, "little")
        if length < 2 or length > min(MAX_SAFETENSORS_HEADER, size - 8):
            return "is not safetensors (its header length does not fit the file)"
        header = handle.read(length)
    try:
        parsed = json.loads(header.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return "is not safetensors (its header is not JSON)"
    if not isinstance(parsed, dict):
        return "is not safetensors (its header is not a JSON object)"
    data_size = size - 8 - length
    for name, tensor in parsed.items():
        if name == "__metadata__":
            continue
        offsets = tensor.get("data_offsets") if isinstance(tensor, dict) else None
        if not (
            isinstance(offsets, list)
            and len(offsets) == 2
            and all(isinstance(o, int) for o in offsets)
            and 0 <= offsets[0] <= offsets[1] <= data_size
            and isinstance(tensor.get("dtype"), str)
            and isinstance(tensor.get("shape"), list)
        ):
            return f"is not safetensors (tensor {str(name)[:40]!r} has no valid dtype, shape and offsets)"
    return None
