"""Our training sets: big enough to tune on, correct by construction, disjoint from the evaluation set."""

from __future__ import annotations

import json
import re

import pytest

from implicit_if.contamination import build_index, check_example
from implicit_if.data import load_pairs
from implicit_if.data.synthetic import __main__ as generated
from implicit_if.data.synthetic.gsm import TEMPLATES, generate_problems

MINIMUM = {"lima_style": 300, "gsm_generated": 500, "chess_generated": 500, "poems_written": 150}
MARK = re.compile(r"<<(-?\d+)([-+*/])(-?\d+)=(-?\d+)>>(-?\d+)")


@pytest.mark.parametrize("name", sorted(MINIMUM))
def test_each_set_loads_with_its_minimum_size_and_distinct_instructions(name: str) -> None:
    records = load_pairs(name, offline=True)
    assert len(records) >= MINIMUM[name]
    assert all(r["instruction"].strip() and r["response"].strip() for r in records)
    if name != "chess_generated":  # Elo pairs repeat by nature
        assert len({r["instruction"] for r in records}) == len(records)


@pytest.mark.parametrize("name", sorted(MINIMUM))
@pytest.mark.parametrize("n", [13, 8])
def test_no_training_set_shares_an_ngram_with_the_evaluation_instructions(name: str, n: int) -> None:
    train = load_pairs(name, offline=True)
    index = build_index((f"{r['instruction']}\n{r['response']}" for r in train), n=n)
    flagged = [
        e["instruction"]
        for e in load_pairs("offline_instructions")
        if check_example(e["instruction"], index)["flagged"]
    ]
    assert flagged == [], f"{name} overlaps the evaluation set at {n}-grams: {flagged[:3]}"


def test_lima_style_has_multi_turn_conversations_whose_responses_are_trained() -> None:
    records = load_pairs("lima_style", offline=True)
    multi = [r for r in records if len(r["messages"]) > 2]
    assert len(multi) >= 10
    assert all([m["role"] for m in r["messages"]] == ["user", "assistant"] * (len(r["messages"]) // 2) for r in multi)


def test_every_gsm_calculation_is_right_and_the_answer_is_the_last_one() -> None:
    for record in load_pairs("gsm_generated", offline=True):
        *steps, last = record["response"].splitlines()
        assert last.startswith("#### ")
        values = []
        for a, sign, b, result, shown in (m.groups() for m in MARK.finditer(record["response"])):
            a, b, result = int(a), int(b), int(result)
            expected = {"+": a + b, "-": a - b, "*": a * b, "/": a // b if b and a % b == 0 else None}[sign]
            assert expected == result == int(shown), record["response"]
            values.append(result)
        assert values and int(last.removeprefix("#### ")) == values[-1]
        assert len(values) == len(steps)


def test_gsm_uses_every_template_and_regenerates_byte_for_byte() -> None:
    problems = generate_problems(generated.GSM_COUNT, generated.SEED)
    assert {p.template for p in problems} == set(TEMPLATES)
    committed = (generated.FIXTURES / generated.GSM_FILE).read_text(encoding="utf-8")
    text = "".join(
        json.dumps({"question": p.question, "answer": p.answer}, ensure_ascii=False) + "\n" for p in problems
    )
    assert text == committed


def test_every_chess_game_is_legal_and_its_result_agrees_with_the_board() -> None:
    chess = pytest.importorskip("chess")
    for record in load_pairs("chess_generated", offline=True):
        assert re.fullmatch(r'\[WhiteElo "\d{3,4}"\]\n\[BlackElo "\d{3,4}"\]', record["instruction"])
        *moves, result = record["response"].split()
        board = chess.Board()
        for token in moves:
            if not token[0].isdigit():
                board.push_san(token)  # raises on an illegal or ambiguous move
        assert result in {"1-0", "0-1", "1/2-1/2"}
        if board.is_checkmate():
            assert result == ("0-1" if board.turn == chess.WHITE else "1-0")


@pytest.mark.slow
def test_chess_games_regenerate_byte_for_byte() -> None:
    pytest.importorskip("chess")
    assert generated.rendered()[generated.CHESS_FILE] == (generated.FIXTURES / generated.CHESS_FILE).read_text(
        encoding="utf-8"
    )
