"""A bug in a command is one line that says where the full report went, never a traceback on screen."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from implicit_if import cli


def test_an_unexpected_error_is_one_line_and_a_report_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("IMPLICIT_IF_CACHE", str(tmp_path))
    monkeypatch.setattr(sys, "argv", ["implicit-if", "models", "list"])

    def broken(*args: object, **kwargs: object) -> None:
        raise KeyError("a bug\nover two lines")

    monkeypatch.setattr("tabulate.tabulate", broken)  # the command's own table, broken
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 70
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "unexpected KeyError" in lines[0] and "Traceback" not in lines[0]
    reports = list((tmp_path / "reports").glob("crash-*.txt"))
    assert len(reports) == 1 and str(reports[0]) in lines[0]
    text = reports[0].read_text()
    assert text.startswith("implicit-if models list") and "Traceback" in text and "KeyError" in text
