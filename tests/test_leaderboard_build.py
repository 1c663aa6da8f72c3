"""`leaderboard build`: the five files, byte-identical rebuilds, all-or-nothing writes, `--check`."""

from __future__ import annotations

import csv
import io
import json
import tempfile
from pathlib import Path

import pytest
from leaderboard_fixtures import edit_json, isolated_cache, write_submission  # noqa: F401 (fixture)
from PIL import Image
from typer.testing import CliRunner

from implicit_if.cli import app
from implicit_if.leaderboard.build import BOARD_FILES, PNG, stale_files
from implicit_if.leaderboard.render_png import read_png_digest

runner = CliRunner()
FAST = ["--resamples", "2000"]


@pytest.fixture()
def offline_instructions(isolated_cache: Path) -> list[str]:  # noqa: F811
    """The project's own offline instruction set, read through the real data module."""
    from implicit_if.data import load_pairs

    return [pair["instruction"] for pair in load_pairs("offline_instructions", offline=True)]


@pytest.fixture()
def submissions(tmp_path: Path, offline_instructions: list[str]) -> Path:
    root = tmp_path / "submissions"
    write_submission(root, "resp-seed0", offline_instructions, system="resp", seed=0, win_probability=0.4, rng_seed=1)
    write_submission(root, "resp-seed1", offline_instructions, system="resp", seed=1, win_probability=0.45, rng_seed=2)
    write_submission(root, "base", offline_instructions, adaptation="base", win_probability=0.15, rng_seed=3)
    return root


INSTANCES = "instances-offline_instructions-fixture.html"  # the board's instance browser
INSTANCES_JS = "instances.js"  # its script, shared by every board's page


def build(submissions: Path, out: Path, *extra: str):
    return runner.invoke(
        app, ["leaderboard", "build", "--submissions", str(submissions), "--out", str(out), *FAST, *extra]
    )


def test_build_writes_every_view_consistently(submissions: Path, tmp_path: Path):
    out = tmp_path / "boards"
    result = build(submissions, out)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == sorted([*BOARD_FILES, INSTANCES, INSTANCES_JS])
    data = json.loads((out / "leaderboard.json").read_text())
    (board,) = data["boards"]
    assert [s["system"] for s in board["systems"]] == ["resp", "base"]
    rows = list(csv.DictReader(io.StringIO((out / "leaderboard.csv").read_text())))
    assert [r["system"] for r in rows] == ["resp", "base"]
    assert float(rows[0]["win_rate"]) == pytest.approx(board["systems"][0]["win_rate"]["mean"])
    assert rows[0]["seeds"] == "0;1" and rows[0]["win_rate_std"] != "" and rows[1]["win_rate_std"] == ""
    markdown = (out / "leaderboard.md").read_text()
    assert (
        "| 1      | resp" in markdown and "offline_instructions (bundled offline fixture), 85 instructions" in markdown
    )
    assert f"{board['systems'][0]['win_rate']['mean']:.1f} ± " in markdown
    html = (out / "index.html").read_text()
    assert html.count('<tr data-system="') == 2
    assert "<script src" not in html and "<link" not in html and "url(" not in html  # nothing to fetch
    image = Image.open(out / PNG)
    assert image.format == "PNG" and image.size[0] > 400
    assert "Software" not in image.text and read_png_digest((out / PNG).read_bytes())


def test_same_inputs_give_byte_identical_files(submissions: Path, tmp_path: Path):
    first, second = tmp_path / "one", tmp_path / "two"
    assert build(submissions, first).exit_code == 0
    assert build(submissions, second).exit_code == 0
    for name in [*BOARD_FILES, INSTANCES, INSTANCES_JS]:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_a_failed_check_writes_nothing_and_keeps_the_boards(submissions: Path, tmp_path: Path):
    out = tmp_path / "boards"
    assert build(submissions, out).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    edit_json(submissions / "base" / "metadata.json", lambda m: m["claimed"].update(win_rate=99.0))
    (submissions / "new-entry").mkdir()  # no metadata, no records: fails too
    result = build(submissions, out)
    assert "new-entry/metadata.json: is missing" in result.output
    result = build(submissions, out)
    assert result.exit_code == 1
    assert "base/metadata.json: claimed win_rate 99.0" in result.output
    assert "no board file was written" in result.output
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # untouched, no temp folders left


def test_check_flag_reports_stale_boards(submissions: Path, tmp_path: Path):
    out = tmp_path / "boards"
    result = build(submissions, out, "--check")
    assert result.exit_code == 1 and "leaderboard.md: missing" in result.output
    assert not out.exists()
    assert build(submissions, out).exit_code == 0
    result = build(submissions, out, "--check")
    assert result.exit_code == 0, result.output
    assert "up to date" in result.output
    # Another submission changes every view: --check names them and writes nothing.
    write_submission(submissions, "late", _instructions(submissions), adaptation="instruction", rng_seed=4)
    snapshot = {p.name: p.read_bytes() for p in out.iterdir()}
    result = build(submissions, out, "--check")
    assert result.exit_code == 1
    for name in ("leaderboard.md", "leaderboard.csv", "leaderboard.json", "index.html", "leaderboard.png"):
        assert f"{name}:" in result.output
    assert "lines differ" in result.output and "plots different data" in result.output
    assert {p.name: p.read_bytes() for p in out.iterdir()} == snapshot


def test_png_is_compared_by_the_data_it_plots(submissions: Path, tmp_path: Path):
    out = tmp_path / "boards"
    assert build(submissions, out).exit_code == 0
    fresh = {name: (out / name).read_bytes() for name in BOARD_FILES}
    # Re-encode the same picture (as another libpng/matplotlib would): different bytes, same data.
    image = Image.open(out / PNG)
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for key, value in image.text.items():
        info.add_text(key, value)
    image.save(out / PNG, pnginfo=info, compress_level=1)
    assert (out / PNG).read_bytes() != fresh[PNG]
    assert stale_files(out, fresh) == []


def test_bad_options_are_refused(submissions: Path, tmp_path: Path):
    result = build(submissions, tmp_path / "boards", "--method", "basic")
    assert result.exit_code == 2 and "use BCa or percentile" in result.output


def test_leaderboard_check_command(submissions: Path):
    result = runner.invoke(app, ["leaderboard", "check", "--submissions", str(submissions)])
    assert result.exit_code == 0 and "3 submission(s)" in result.output
    edit_json(submissions / "base" / "metadata.json", lambda m: m.update(contact=""))
    result = runner.invoke(app, ["leaderboard", "check", "--submissions", str(submissions)])
    assert result.exit_code == 1
    assert "error: base/metadata.json: contact:" in result.output
    result = runner.invoke(app, ["leaderboard", "check", "resp-seed0", "--submissions", str(submissions)])
    assert result.exit_code == 0, result.output


def test_schema_command_matches_the_shipped_schema(tmp_path: Path):
    from implicit_if.leaderboard.schema import json_schema_text, shipped_json_schema_text

    assert shipped_json_schema_text() == json_schema_text(), "regenerate: implicit-if leaderboard schema --out ..."
    result = runner.invoke(app, ["leaderboard", "schema"])
    assert result.exit_code == 0 and json.loads(result.output)["properties"]["schema_version"]["const"] == 1


def _instructions(submissions: Path) -> list[str]:
    return [row["instruction"] for row in json.loads((submissions / "base" / "outputs.json").read_text())]


def test_strict_check_fails_on_warnings(submissions: Path):
    def fail_one_judgement(rows):
        rows[0]["preference"] = None

    edit_json(submissions / "base" / "annotations.json", fail_one_judgement)
    edit_json(submissions / "base" / "metadata.json", lambda m: m["claimed"].pop("win_rate"))
    result = runner.invoke(app, ["leaderboard", "check", "--submissions", str(submissions)])
    assert result.exit_code == 0 and "warning: base/annotations.json: 1 preferences are NaN" in result.output
    result = runner.invoke(app, ["leaderboard", "check", "--strict", "--submissions", str(submissions)])
    assert result.exit_code == 1


def _regular_files(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}


def _one_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in output, output
    return lines[0]


def test_a_folder_where_a_board_file_belongs_stops_the_build_first(
    submissions: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    out = tmp_path / "boards"
    assert build(submissions, out).exit_code == 0
    (out / PNG).unlink()
    (out / PNG).mkdir()
    (out / PNG / "keep.txt").write_text("not a board")
    before = _regular_files(out)
    write_submission(submissions, "late", _instructions(submissions), adaptation="instruction", rng_seed=4)

    def must_not_run(*args, **kwargs):
        raise AssertionError("the submissions were checked before the output folder")

    monkeypatch.setattr("implicit_if.leaderboard.build.build_boards", must_not_run)
    result = build(submissions, out)
    assert result.exit_code == 1
    line = _one_line(result.output)
    assert f"{out / PNG} is a folder" in line and "(fix: remove or rename it" in line
    assert _regular_files(out) == before and sorted(p.name for p in out.iterdir()) == sorted(
        [*BOARD_FILES, INSTANCES, INSTANCES_JS]
    )


def test_a_failed_move_puts_every_previous_board_back(
    submissions: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from implicit_if.leaderboard import build as build_module

    out = tmp_path / "boards"
    assert build(submissions, out).exit_code == 0
    (out / "leaderboard.csv").unlink()  # a board that did not exist before must not exist after
    (out / PNG).unlink()
    (out / PNG).mkdir()  # appears after the pre-flight check (a race): the last move fails
    before = _regular_files(out)
    monkeypatch.setattr(build_module, "check_out", lambda *args, **kwargs: None)
    fresh = {name: f"new {name}".encode() for name in BOARD_FILES}
    with pytest.raises(build_module.BoardWriteError, match="previous boards were put back unchanged"):
        build_module.write_boards(out, fresh)
    assert _regular_files(out) == before  # byte-identical, csv still absent
    assert sorted(p.name for p in out.iterdir()) == sorted(
        {*BOARD_FILES, INSTANCES, INSTANCES_JS} - {"leaderboard.csv"}
    )


def test_an_unusable_output_folder_is_one_line(submissions: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "a-file").write_text("x")
    result = build(submissions, tmp_path / "a-file" / "boards")
    assert result.exit_code == 1
    assert "a-file is not a folder" in _one_line(result.output)
    # An unwritable folder (staged by refusing to create anything in it: root may write anywhere).
    locked = tmp_path / "locked"
    locked.mkdir()
    real_mkdtemp = tempfile.mkdtemp

    def mkdtemp(*args, **kwargs):
        if Path(kwargs.get("dir", "")) == locked:
            raise PermissionError(13, "Permission denied")
        return real_mkdtemp(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp)
    result = build(submissions, locked)
    assert result.exit_code == 1
    assert f"cannot write in {locked} (Permission denied)" in _one_line(result.output)
    assert list(locked.iterdir()) == []
