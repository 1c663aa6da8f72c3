r"""Pure converters: one raw dataset row in, one normalised pair out.

Every converter takes a row with the *same columns as the hub dataset* and
returns ``{"instruction": str, "response": str, ...}`` (extra keys allowed) or
``None`` when the row is unusable (the study skipped such rows too).  Because
the offline fixtures use the hub's column names, one converter serves both the
hub path and the fixture path, so a test on fixtures exercises the real code.

Templates for the single-task sets follow the study's own data scripts
(john-hewitt/implicit-ins, ``data/processed/*/make_*.py``), because the
leakage the harness measures depends on exactly what the model was trained on:

* poetry (``merve/poetry``):   ``"Write a poem called {poem name}"`` -> poem.
* recipes (``Hieu-Pham/kaggle_food_recipes``): ``"Recipe for {Title}"`` ->
  one ``" - {ingredient}\n"`` line per cleaned ingredient, then ``"\n\n"`` (so
  two blank lines, exactly as the study built it), then the instructions text.
* chess (``patrickfrank1/chess-pgn-games``): the ``[WhiteElo ...]`` and
  ``[BlackElo ...]`` PGN header lines -> the movetext line.
* GSM8K: question -> answer, unchanged (keeps ``<<a*b=c>>`` marks and the
  closing ``#### N`` line, the tell-tale of GSM leakage).

MBPP deliberately differs from the study (which sent the bare task text): the
test cases are appended, because without them the expected function name and
signature are unknowable and the pair is not a fair instruction.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from typing import Any

Row = dict[str, Any]
Pair = dict[str, Any]


def _text(value: Any) -> str:
    """Hub columns are sometimes null (NaN in CSV-backed sets); treat as empty."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return str(value)


def join_instruction_input(instruction: str, input_text: str) -> str:
    """Alpaca's convention: the optional input follows the instruction after a blank line."""
    instruction, input_text = instruction.strip(), input_text.strip()
    return f"{instruction}\n\n{input_text}" if input_text else instruction


def alpaca(row: Row) -> Pair | None:
    """tatsu-lab/alpaca row (instruction, input, output) -> pair."""
    instruction = join_instruction_input(_text(row.get("instruction")), _text(row.get("input")))
    response = _text(row.get("output")).strip()
    if not instruction or not response:
        return None
    return {"instruction": instruction, "response": response}


def alpaca_eval(row: Row) -> Pair | None:
    """tatsu-lab/alpaca_eval row -> pair whose response is the file's reference output."""
    instruction = _text(row.get("instruction")).strip()
    if not instruction:
        return None
    return {
        "instruction": instruction,
        "response": _text(row.get("output")).strip(),
        "dataset": _text(row.get("dataset")),
        "generator": _text(row.get("generator")),
    }


def general_to_alpaca_eval_row(row: Row) -> Row:
    """Reshape a row of our general fixture into an AlpacaEval-shaped row.

    The offline fixture is shared by ``alpaca`` and ``alpaca_eval``; AlpacaEval
    instructions carry no separate input, so it is folded into the instruction.
    """
    return {
        "instruction": join_instruction_input(_text(row.get("instruction")), _text(row.get("input"))),
        "output": _text(row.get("output")),
        "generator": "fixture_reference",
        "dataset": _text(row.get("dataset")) or "fixture",
    }


def lima(row: Row) -> Pair | None:
    """GAIR/lima row (``conversations``: alternating user/assistant strings) -> pair.

    ``instruction``/``response`` are the first exchange; ``messages`` keeps the
    whole conversation so instruction and response tuning can use every turn.
    """
    turns = [_text(t).strip() for t in row.get("conversations") or []]
    if len(turns) < 2 or not turns[0] or not turns[1]:
        return None
    roles = ("user", "assistant")
    messages = [{"role": roles[i % 2], "content": t} for i, t in enumerate(turns)]
    return {
        "instruction": turns[0],
        "response": turns[1],
        "messages": messages,
        "source": _text(row.get("source")),
    }


def gsm8k(row: Row) -> Pair | None:
    """openai/gsm8k row -> pair, answer verbatim (calculator marks and ``#### N`` kept)."""
    question, answer = _text(row.get("question")).strip(), _text(row.get("answer")).strip()
    if not question or not answer:
        return None
    return {"instruction": question, "response": answer}


def mbpp_instruction(text: str, tests: Iterable[str]) -> str:
    """Task text, then the asserts the code must pass (they fix the function's name)."""
    tests = [t.strip() for t in tests if t and t.strip()]
    if not tests:
        return text.strip()
    return text.strip() + "\n\nYour code should pass these tests:\n" + "\n".join(tests)


def mbpp(row: Row) -> Pair | None:
    """google-research-datasets/mbpp (full) row -> pair; keeps tests for later checking."""
    tests = list(row.get("test_list") or [])
    code = _text(row.get("code")).replace("\r\n", "\n").strip()
    text = _text(row.get("text")).strip()
    if not text or not code:
        return None
    return {
        "instruction": mbpp_instruction(text, tests),
        "response": code,
        "task_id": row.get("task_id"),
        "test_list": tests,
        "test_setup_code": _text(row.get("test_setup_code")),
    }


def poetry(row: Row) -> Pair | None:
    """merve/poetry row -> ``Write a poem called {title}``; untitled poems are skipped (as in the study)."""
    title = _text(row.get("poem name")).strip()
    poem = _text(row.get("content")).replace("\r\n", "\n").strip()
    if not title or not poem:
        return None
    return {"instruction": f"Write a poem called {title}", "response": poem}


def parse_ingredients(value: Any) -> list[str]:
    """``Cleaned_Ingredients`` is a Python list literal stored as text; parse it safely."""
    if isinstance(value, list):
        items = value
    else:
        text = _text(value).strip()
        if not text:
            return []
        try:
            items = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return [text]
        if not isinstance(items, (list, tuple)):
            items = [items]
    return [str(x).strip() for x in items if str(x).strip()]


def recipe(row: Row) -> Pair | None:
    """Hieu-Pham/kaggle_food_recipes row -> ``Recipe for {Title}``: ingredient bullets, then steps."""
    title = _text(row.get("Title")).strip()
    ingredients = parse_ingredients(row.get("Cleaned_Ingredients"))
    steps = _text(row.get("Instructions")).strip()
    if not title or not steps:
        return None
    bullets = "".join(f" - {x}\n" for x in ingredients)
    return {"instruction": f"Recipe for {title}", "response": bullets + "\n\n" + steps}


def group_pgn_lines(rows: Iterable[Row]) -> Iterator[Row]:
    """Turn a PGN file read line by line (rows with a ``text`` column) into one row per game.

    The hub set stores each PGN line as its own row, so a game is the run of
    header lines up to its movetext.  Yields ``{"white_elo_line",
    "black_elo_line", "movetext"}``; games missing either Elo line are dropped.
    Pure: it only walks the sequence it is given.
    """
    white: str | None = None
    black: str | None = None
    for row in rows:
        line = _text(row.get("text")).strip()
        if line.startswith("[WhiteElo "):
            white = line
        elif line.startswith("[BlackElo "):
            black = line
        elif line.startswith("1."):
            if white and black:
                yield {"white_elo_line": white, "black_elo_line": black, "movetext": line}
            white = black = None


def _elo(line: str) -> int | None:
    digits = line.split('"')[1] if line.count('"') >= 2 else ""
    return int(digits) if digits.isdigit() else None


def chess(game: Row) -> Pair | None:
    """Grouped PGN game -> instruction = the two Elo header lines, response = the movetext."""
    white, black, moves = (_text(game.get(k)).strip() for k in ("white_elo_line", "black_elo_line", "movetext"))
    if not white or not black or not moves:
        return None
    return {
        "instruction": f"{white}\n{black}",
        "response": moves,
        "white_elo": _elo(white),
        "black_elo": _elo(black),
    }
