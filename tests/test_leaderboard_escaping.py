"""Board text is hostile: no name can add a Markdown column, row or HTML, or a spreadsheet formula.

The schema refuses line breaks in names, but the renderers must be safe on their own: these tests
feed hostile text straight into the board data.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from leaderboard_fixtures import (
    isolated_cache,  # noqa: F401 (fixture)
    synthetic_instructions,
    write_submission,
)

from implicit_if.leaderboard import render_csv as render_csv_module
from implicit_if.leaderboard.board import BootstrapSettings, build_board_data
from implicit_if.leaderboard.check import check_submissions
from implicit_if.leaderboard.evaluation_sets import EvaluationSets
from implicit_if.leaderboard.formatting import COLUMNS
from implicit_if.leaderboard.render_csv import csv_cell, render_csv
from implicit_if.leaderboard.render_markdown import markdown_cell, render_markdown

INSTRUCTIONS = synthetic_instructions(40)
ROW_BREAKER = "judge | extra |\n| 9 | fake row |\r\n<img src=x onerror=alert(1)> &amp; \\|"


@pytest.fixture()
def data(tmp_path: Path, isolated_cache: Path) -> dict:  # noqa: F811
    write_submission(tmp_path, "alpha", INSTRUCTIONS, rng_seed=1)
    write_submission(tmp_path, "beta", INSTRUCTIONS, rng_seed=2, win_probability=0.2)
    entries, _ = check_submissions(tmp_path, EvaluationSets(lambda d, s: INSTRUCTIONS))
    return build_board_data(entries, BootstrapSettings(n_resamples=200))


def test_markdown_cell_escapes_what_could_leave_the_cell():
    assert markdown_cell("a|b") == "a&#124;b"
    assert markdown_cell("one\r\ntwo\nthree\rfour") == "one two three four"
    assert markdown_cell("<b>&amp;</b>") == "&lt;b&gt;&amp;amp;&lt;/b&gt;"
    assert markdown_cell("back\\|slash") == "back&#92;&#124;slash"
    assert markdown_cell("smollm2-local: x via hf (local judge)") == "smollm2-local: x via hf (local judge)"


def test_hostile_names_stay_in_their_markdown_cells(data: dict):
    system = data["boards"][0]["systems"][0]
    system.update(judge=ROW_BREAKER, reference=ROW_BREAKER, base_model=ROW_BREAKER, flags=[ROW_BREAKER])
    markdown = render_markdown(data)
    table = [line for line in markdown.splitlines() if line.startswith("|")]
    assert len(table) == 2 + len(data["boards"][0]["systems"])  # header, rule, one line per system
    assert all(line.count("|") == len(COLUMNS) + 1 for line in table), table
    assert "<img" not in markdown and "fake row" in markdown
    flag_lines = [line for line in markdown.splitlines() if line.startswith("- alpha")]
    assert len(flag_lines) == 1 and "fake row" in flag_lines[0]


def test_a_markdown_parser_sees_the_same_table(data: dict):
    markdown_it = pytest.importorskip("markdown_it")
    data["boards"][0]["systems"][0].update(judge=ROW_BREAKER, reference=ROW_BREAKER)
    html = markdown_it.MarkdownIt("commonmark", {"html": True}).enable("table").render(render_markdown(data))
    body = html.split("<tbody>")[1].split("</tbody>")[0]
    rows = body.split("<tr>")[1:]
    assert len(rows) == 2 and all(row.count("<td>") == len(COLUMNS) for row in rows)
    assert "<img" not in html
    # The judge cell holds the whole text, shown literally (the parser re-escapes it for HTML).
    assert "<td>judge | extra | | 9 | fake row | &lt;img src=x onerror=alert(1)&gt; &amp;amp; \\|</td>" in rows[0]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("=1+1", "'=1+1"),
        ("+SUM(A1)", "'+SUM(A1)"),
        ("-2+3+cmd|' /C calc'!A0", "'-2+3+cmd|' /C calc'!A0"),
        ("@SUM(1+1)", "'@SUM(1+1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\n=1"),  # neutralised, and the lone CR made a quoted line break
        ("a\rb\r\nc", "a\nb\nc"),
        ("-1e5", "'-1e5"),
        ("-inf", "'-inf"),
        ("-", "'-"),
        ("-1.2345", "-1.2345"),  # a plain negative number stays a number
        ("-3", "-3"),
        ("0.0000", "0.0000"),
        ("gemma-3-270m", "gemma-3-270m"),
        ("", ""),
    ],
)
def test_csv_cell_follows_owasp(text: str, expected: str):
    assert csv_cell(text) == expected


def test_csv_never_starts_a_cell_with_a_formula(data: dict):
    system = data["boards"][0]["systems"][0]
    system.update(
        judge='=HYPERLINK("http://evil","x")',
        reference="@SUM(1+1)",
        base_model="+1+1",
        adaptation="-2+3",
        chat_format="\tTAB",
        flags=["\rCR"],
    )
    system["vs_next"] = {
        **(system["vs_next"] or {"system": "beta", "difference": 1.0, "ci_high": 2.0}),
        "ci_low": -1.25,
    }
    (header, first, _) = list(csv.reader(io.StringIO(render_csv(data))))
    row = dict(zip(header, first))
    assert row["judge"] == '\'=HYPERLINK("http://evil","x")' and row["reference"] == "'@SUM(1+1)"
    assert row["base_model"] == "'+1+1" and row["adaptation"] == "'-2+3"
    assert row["chat_format"] == "'\tTAB" and row["flags"] == "'\nCR"
    assert row["vs_next_ci_low"] == "-1.2500"  # numbers keep their sign
    starts = ("=", "+", "@", "\t", "\r")
    assert not [
        cell
        for line in csv.reader(io.StringIO(render_csv(data)))
        for cell in line
        if cell.startswith(starts) or (cell.startswith("-") and not cell[1:].replace(".", "").isdigit())
    ]


def test_csv_headers_are_neutralised_too(data: dict, monkeypatch: pytest.MonkeyPatch):
    rows = render_csv_module.csv_rows(data)
    monkeypatch.setattr(render_csv_module, "csv_rows", lambda _: [{"=cmd": row["system"], **row} for row in rows])
    header = next(csv.reader(io.StringIO(render_csv(data))))
    assert header[0] == "'=cmd"
