"""Typed per-item records (`implicit_if.records`): one reader, one writer, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from implicit_if.generation import output_records
from implicit_if.io import atomic_write_json, atomic_write_jsonl
from implicit_if.leaderboard import records as board_records
from implicit_if.records import RecordError, read_records, write_records

REPO = Path(__file__).resolve().parent.parent
SUBMISSIONS = REPO / "leaderboards" / "submissions"
FILES = {"outputs.json": "outputs", "annotations.json": "annotations", "ranking.jsonl": "ranking"}
FILES["leakage.jsonl"] = "leakage"

RANK = {"instruction_id": 0, "response_id": 1, "roles": ["distractor"], "logprob": -3.5, "n_tokens": 2}


def jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("name", "kind", "rows", "where", "field"),
    [
        (
            "o.json",
            "outputs",
            [{"instruction": "a", "output": "b"}, {"instruction": "c", "output": None}],
            "item 1",
            "'output' is null",
        ),
        ("o.json", "outputs", [{"instruction": "a"}], "item 0", "'output' is missing"),
        (
            "a.json",
            "annotations",
            [{"instruction": "a", "output_1": "b", "output_2": "c", "preference": "2"}],
            "item 0",
            "'preference'",
        ),
        ("r.jsonl", "ranking", [RANK, {**RANK, "logprob": float("-inf")}], ":2:", "'logprob'"),
        ("r.jsonl", "ranking", [RANK, {**RANK, "n_tokens": True}], ":2:", "'n_tokens'"),
        ("r.jsonl", "ranking", [{**RANK, "roles": None}], ":1:", "'roles' is null"),
        ("r.jsonl", "ranking", [{**RANK, "response_id": None}], ":1:", "'response_id' is null"),
        ("l.jsonl", "leakage", [{"index": 0, "gsm": False}, {"index": -1, "gsm": True}], ":2:", "'index'"),
    ],
)
def test_a_bad_record_is_one_line_naming_file_place_field_and_fix(tmp_path, name, kind, rows, where, field):
    path = tmp_path / name
    if name.endswith(".jsonl"):
        jsonl(path, rows)
    else:
        path.write_text(json.dumps(rows), encoding="utf-8")
    with pytest.raises(RecordError) as caught:
        read_records(path, kind)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(str(path)) and where in message and field in message
    assert message.endswith(board_records.__dict__[f"{kind.upper()}_FIX"])  # the fix: the board's own words


def test_jsonl_errors_count_blank_lines_and_name_broken_json(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps(RANK) + "\n\n" + json.dumps({**RANK, "n_tokens": 0}) + "\n", encoding="utf-8")
    with pytest.raises(RecordError, match=r"r\.jsonl:3: field 'n_tokens'"):
        read_records(path, "ranking")
    path.write_text(json.dumps(RANK) + "\n{broken\n", encoding="utf-8")
    with pytest.raises(RecordError, match=r"r\.jsonl:2: not valid JSON"):
        read_records(path, "ranking")
    with pytest.raises(RecordError, match="does not exist"):
        read_records(tmp_path / "nope.json", "outputs")
    (tmp_path / "o.json").write_text('{"instruction": "a"}', encoding="utf-8")
    with pytest.raises(RecordError, match="holds a JSON dict, not a list"):
        read_records(tmp_path / "o.json", "outputs")
    (tmp_path / "o.json").write_bytes(b'[{"instruction": "\xff"}]')
    with pytest.raises(RecordError, match="not UTF-8"):
        read_records(tmp_path / "o.json", "outputs")


def test_extra_fields_and_their_order_pass_through(tmp_path):
    rows = [{"output": "b", "instruction": "a", "generator": "g", "alpaca_eval_field": {"x": [1, None]}, "n": 3}]
    path = tmp_path / "outputs.json"
    write_records(path, rows, "outputs")
    back = read_records(path, "outputs")
    assert back == rows and list(back[0]) == list(rows[0])


@pytest.mark.parametrize("name", sorted(FILES))
def test_committed_records_round_trip_byte_identically(tmp_path, name):
    """Every committed submission file reads and rewrites to the same bytes, in io.py's format."""
    paths = sorted(SUBMISSIONS.glob(f"*/{name}"))
    assert paths
    for path in paths:
        rows = read_records(path, FILES[name])
        again = tmp_path / name
        write_records(again, rows, FILES[name])
        legacy = tmp_path / f"legacy-{name}"
        (atomic_write_jsonl if name.endswith(".jsonl") else atomic_write_json)(legacy, rows)
        assert again.read_bytes() == legacy.read_bytes() == path.read_bytes()


def test_nan_preference_and_non_ascii_round_trip(tmp_path):
    rows = [{"instruction": "ü", "output_1": "a", "output_2": "b", "preference": float("nan"), "annotator": "j"}]
    rows.append({"instruction": "€", "output_1": "a", "output_2": "a", "preference": None})
    path = tmp_path / "annotations.json"
    write_records(path, rows, "annotations")
    first = path.read_bytes()
    assert b"NaN" in first and "ü".encode() in first
    write_records(path, read_records(path, "annotations"), "annotations")
    assert path.read_bytes() == first


def test_the_writer_refuses_a_bad_record_and_writes_nothing(tmp_path):
    path = tmp_path / "ranking.jsonl"
    with pytest.raises(RecordError, match="item 1: field 'logprob'"):
        write_records(path, [RANK, {**RANK, "logprob": float("nan")}], "ranking")
    assert not path.exists()


def test_generation_output_records_are_checked():
    rows = output_records([{"instruction": "a"}], ["b"], generator="m", dataset="d")
    assert rows == [{"instruction": "a", "output": "b", "generator": "m", "dataset": "d", "instruction_id": "0"}]
    with pytest.raises(RecordError, match="outputs of m: item 0: field 'output'"):
        output_records([{"instruction": "a"}], [None], generator="m", dataset="d")  # type: ignore[list-item]


def test_the_board_reads_the_same_field_definitions(tmp_path):
    """The board's aggregated messages come from the same schemas: every broken row, per rule."""
    rows = [RANK, {**RANK, "roles": None}, {**RANK, "logprob": True}, {**RANK, "roles": ["a", 3]}]
    path = jsonl(tmp_path / "ranking.jsonl", rows)
    _, issues = board_records.read_ranking(path)
    assert [m for m, _ in issues] == [
        "row 3: 'logprob' is missing or not a finite number",
        "rows 2, 4: 'roles' is not a list of strings",
    ]
    with pytest.raises(RecordError, match=r"ranking\.jsonl:2: field 'roles' is null"):
        read_records(path, "ranking")


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85"])
def test_jsonl_lines_end_at_newline_only(tmp_path, separator):
    """JSON strings may hold U+2028, U+0085 and kin unescaped (json.dumps(ensure_ascii=False) writes
    them so); a reader splitting at every Unicode line boundary would cut such a record in two."""
    from implicit_if.io import read_jsonl
    from implicit_if.leaderboard.records import read_leakage

    rows = [{**RANK, "instruction_key": f"a{separator}b"}, {**RANK, "response_id": 2}]
    path = tmp_path / "ranking.jsonl"
    write_records(path, rows)
    assert separator in path.read_text(encoding="utf-8")  # written raw, not escaped
    assert read_records(path, "ranking") == rows
    assert read_jsonl(path) == rows
    leakage = tmp_path / "leakage.jsonl"
    write_records(leakage, [{"index": 0, "instruction": f"x{separator}y", "gsm": True}])
    assert read_leakage(leakage, ["gsm"]) == ([{"index": 0, "instruction": f"x{separator}y", "gsm": True}], [])


def test_a_broken_jsonl_line_is_named_by_every_reader(tmp_path):
    from implicit_if.generation import read_instructions_jsonl
    from implicit_if.io import JSONLinesError, read_jsonl
    from implicit_if.ranking import read_pairs_jsonl

    path = tmp_path / "bad.jsonl"
    path.write_text('{"instruction": "a", "response": "b"}\n\n{"instruction": \n', encoding="utf-8")
    for reader in (read_jsonl, read_instructions_jsonl, read_pairs_jsonl):
        with pytest.raises(JSONLinesError, match=r"bad\.jsonl:3: not valid JSON .*; write one JSON object per line"):
            reader(path)
