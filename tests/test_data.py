"""The datasets layer: fixtures, converters, offline policy, cache (fast; no network)."""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from implicit_if.data import (
    DatasetUnavailable,
    FixtureFallbackWarning,
    converters,
    dataset_names,
    fixtures,
    hub,
    load_pairs,
)
from implicit_if.data.cache import write_jsonl_atomic

OFFLINE_VARS = ("IMPLICIT_IF_OFFLINE", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Private cache dir, and the hub switched off unless a test says otherwise."""
    monkeypatch.setenv("IMPLICIT_IF_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("IMPLICIT_IF_OFFLINE", "1")
    hub.reset_probe()
    yield tmp_path / "cache" / "datasets"
    hub.reset_probe()


def go_online(monkeypatch: pytest.MonkeyPatch, reachable: bool = True) -> None:
    """Clear the offline switches and fake the reachability probe (never the real network)."""
    for name in OFFLINE_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(hub, "hub_reachable", lambda: reachable)


# --- every dataset, offline -------------------------------------------------------------


@pytest.mark.parametrize("name", dataset_names())
def test_every_dataset_loads_offline_with_fields(name: str) -> None:
    records = load_pairs(name, offline=True)
    assert len(records) >= 20
    for rec in records:
        for key in ("id", "instruction", "response"):
            assert isinstance(rec[key], str) and rec[key].strip(), (name, key, rec["id"])
        assert rec["origin"].startswith("fixture:")
    ids = [r["id"] for r in records]
    assert len(set(ids)) == len(ids)
    assert all(i.startswith(name) for i in ids)


def test_names_cover_the_study() -> None:
    assert set(dataset_names()) == {
        "alpaca_eval",
        "alpaca",
        "lima",
        "gsm8k",
        "mbpp",
        "poetry",
        "recipes",
        "chess",
        "offline_instructions",
        "lima_style",
        "gsm_generated",
        "chess_generated",
        "poems_written",
    }


def test_ids_are_stable_across_cache_directories(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = [r["id"] for r in load_pairs("poetry", offline=True)]
    monkeypatch.setenv("IMPLICIT_IF_CACHE", str(tmp_path / "other"))
    second = [r["id"] for r in load_pairs("poetry", offline=True)]
    assert first == second
    # Untitled poems are skipped but ids keep the raw row position, so they never shift.
    assert len(first) < len(fixtures.read_fixture("poetry.jsonl"))
    assert first[:2] == ["poetry-fixture-0", "poetry-fixture-1"]


def test_limit_keeps_a_prefix() -> None:
    full = load_pairs("gsm8k", offline=True)
    assert load_pairs("gsm8k", offline=True, limit=5) == full[:5]
    assert load_pairs("gsm8k", offline=True, limit=0) == []
    assert load_pairs("gsm8k", offline=True, limit=10_000) == full
    with pytest.raises(ValueError):
        load_pairs("gsm8k", offline=True, limit=-1)


def test_unknown_name_is_explained() -> None:
    with pytest.raises(DatasetUnavailable, match="known datasets") as info:
        load_pairs("not_a_dataset")
    assert info.value.reason == "unknown_dataset"


# --- fixture content --------------------------------------------------------------------


def test_general_set_is_large_and_distinct() -> None:
    records = load_pairs("offline_instructions")
    instructions = [r["instruction"] for r in records]
    assert len(set(instructions)) == len(instructions) >= 80
    # Shared with alpaca and alpaca_eval, in the same order.
    assert [r["instruction"] for r in load_pairs("alpaca", offline=True)] == instructions
    evals = load_pairs("alpaca_eval", offline=True)
    assert [r["instruction"] for r in evals] == instructions
    assert {r["generator"] for r in evals} == {"fixture_reference"}
    assert {r["dataset"] for r in evals} <= {"helpful_base", "koala", "oasst", "selfinstruct", "vicuna"}
    # Some instructions carry an Alpaca input, joined after a blank line.
    assert any("\n\n" in i for i in instructions)


_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def _arith(node: ast.AST) -> float:
    """Evaluate + - * / on numbers only (never eval() fixture text)."""
    if isinstance(node, ast.Expression):
        return _arith(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_arith(node.left), _arith(node.right))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_arith(node.operand)
    raise ValueError(f"unexpected expression node {ast.dump(node)}")


def test_gsm_fixture_marks_are_correct_and_answers_end_in_hashes() -> None:
    records = load_pairs("gsm8k", offline=True)
    assert len(records) >= 25
    marks = 0
    for rec in records:
        answer = rec["response"]
        assert re.search(r"\n#### \d+$", answer), rec["id"]
        for expr, result in re.findall(r"<<([^=<>]+)=([^<>]+)>>", answer):
            value = _arith(ast.parse(expr, mode="eval"))
            assert value == pytest.approx(float(result)), (rec["id"], expr, result)
            marks += 1
    assert marks >= 2 * len(records)


def test_mbpp_fixture_code_passes_its_tests() -> None:
    records = load_pairs("mbpp", offline=True)
    assert len(records) >= 25
    for rec in records:
        assert len(rec["test_list"]) >= 3
        assert rec["test_list"][0] in rec["instruction"]  # the asserts name the function
        namespace: dict[str, Any] = {}
        exec(rec["test_setup_code"] + "\n" + rec["response"], namespace)  # noqa: S102 - our own fixture
        for test in rec["test_list"]:
            exec(test, namespace)  # noqa: S102


def test_lima_fixture_has_multi_turn_conversations() -> None:
    records = load_pairs("lima", offline=True)
    assert len(records) >= 25
    multi = [r for r in records if len(r["messages"]) > 2]
    assert len(multi) == 3
    for rec in records:
        roles = [m["role"] for m in rec["messages"]]
        assert roles == ["user", "assistant"] * (len(roles) // 2)
        assert rec["messages"][0]["content"] == rec["instruction"]
        assert rec["messages"][1]["content"] == rec["response"]


def test_single_task_templates() -> None:
    poem = load_pairs("poetry", offline=True)[0]
    assert poem["instruction"].startswith("Write a poem called ")
    recipe = load_pairs("recipes", offline=True)[0]
    assert recipe["instruction"].startswith("Recipe for ")
    assert recipe["response"].startswith(" - ") and "\n1. " in recipe["response"]
    for game in load_pairs("chess", offline=True):
        white, black = game["instruction"].split("\n")
        assert white == f'[WhiteElo "{game["white_elo"]}"]' and black == f'[BlackElo "{game["black_elo"]}"]'
        assert game["response"].startswith("1. ")
        assert game["response"].rsplit(" ", 1)[-1] in {"1-0", "0-1", "1/2-1/2"}


def test_chess_fixture_games_are_legal() -> None:
    chess = pytest.importorskip("chess")
    import io

    import chess.pgn  # noqa: F401 - submodule import

    for rec in load_pairs("chess", offline=True):
        game = chess.pgn.read_game(io.StringIO(rec["response"]))
        assert game is not None and not game.errors, rec["id"]
        assert len(list(game.mainline_moves())) >= 4


# --- converters (pure) -----------------------------------------------------------------


def test_converters_on_hub_shaped_rows() -> None:
    assert converters.alpaca({"instruction": "Add", "input": "2 and 3", "output": "5"}) == {
        "instruction": "Add\n\n2 and 3",
        "response": "5",
    }
    assert converters.alpaca({"instruction": "Hi", "input": "", "output": ""}) is None
    lima = converters.lima({"conversations": ["q1", "a1", "q2", "a2"], "source": "x"})
    assert [m["role"] for m in lima["messages"]] == ["user", "assistant", "user", "assistant"]
    assert converters.poetry({"poem name": None, "content": "words"}) is None
    assert converters.parse_ingredients("['1 egg', '2 cups flour']") == ["1 egg", "2 cups flour"]
    assert (
        converters.recipe({"Title": "Toast", "Cleaned_Ingredients": "['bread']", "Instructions": "Toast it."})[
            "response"
        ]
        == " - bread\n\n\nToast it."
    )
    lines = [
        {"text": t}
        for t in [
            '[White "a"]',
            '[WhiteElo "1500"]',
            '[BlackElo "1400"]',
            "",
            "1. e4 e5 1-0",
            "",
            '[WhiteElo "1600"]',
            "",
            "1. d4 0-1",
        ]
    ]
    games = list(converters.group_pgn_lines(lines))
    assert games == [
        {"white_elo_line": '[WhiteElo "1500"]', "black_elo_line": '[BlackElo "1400"]', "movetext": "1. e4 e5 1-0"}
    ]  # the second game lacks a BlackElo line
    assert converters.chess(games[0])["white_elo"] == 1500


# --- offline policy ---------------------------------------------------------------------


def test_hub_only_with_hub_offline_raises_helpfully(monkeypatch: pytest.MonkeyPatch) -> None:
    go_online(monkeypatch)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DatasetUnavailable) as info:
        load_pairs("gsm8k", offline=False)
    assert info.value.reason == "offline"
    message = str(info.value)
    assert "HF_HUB_OFFLINE" in message and "openai/gsm8k" in message and "offline=True" in message


def test_hub_only_unreachable_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    go_online(monkeypatch, reachable=False)
    with pytest.raises(DatasetUnavailable, match="cannot reach") as info:
        load_pairs("alpaca", offline=False)
    assert info.value.reason == "unreachable"


def test_real_probe_detects_a_dead_endpoint_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    """The actual probe (no fake), pointed at a closed loopback port: fails in well under a second."""
    import socket
    import time

    with socket.socket() as sock:  # grab a free port, then close it so nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    for name in OFFLINE_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("IMPLICIT_IF_HUB_TIMEOUT", "2")
    start = time.monotonic()
    with pytest.raises(DatasetUnavailable, match=f"127.0.0.1:{port}") as info:
        load_pairs("alpaca_eval", offline=False)
    assert info.value.reason == "unreachable"
    assert time.monotonic() - start < 3


def test_hub_errors_are_classified() -> None:
    source = hub.HubSource("org/set")

    class RepositoryNotFoundError(Exception):
        pass

    assert hub.translate_error("x", source, RepositoryNotFoundError("404")).reason == "not_found"
    assert hub.translate_error("x", source, ConnectionError("reset")).reason == "unreachable"
    assert hub.translate_error("x", source, ValueError("aggregated columns differ")).reason == "error"
    assert hub.translate_error("x", source, RuntimeError("Dataset is a gated dataset")).reason == "gated"


def test_automatic_fallback_warns_once_and_uses_fixture() -> None:
    with pytest.warns(FixtureFallbackWarning, match="IMPLICIT_IF_OFFLINE") as record:
        records = load_pairs("gsm8k")
    assert len([w for w in record if issubclass(w.category, FixtureFallbackWarning)]) == 1
    assert records and all(r["origin"] == "fixture:gsm8k.jsonl" for r in records)


def test_fallback_when_hub_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    go_online(monkeypatch, reachable=False)
    with pytest.warns(FixtureFallbackWarning, match="cannot reach"):
        assert load_pairs("mbpp", limit=3)[0]["id"] == "mbpp-fixture-0"


class GatedRepoError(Exception):
    """Stand-in with the hub's class name (the translation keys on it)."""


def _refuse(*_: Any, **__: Any) -> Any:
    raise GatedRepoError("401 Client Error: access to GAIR/lima is restricted")


def test_gated_lima_explains_licence_and_login(monkeypatch: pytest.MonkeyPatch) -> None:
    go_online(monkeypatch)
    monkeypatch.setattr(hub, "_read_file_rows", _refuse)
    with pytest.raises(DatasetUnavailable) as info:
        load_pairs("lima", offline=False)
    assert info.value.reason == "gated"
    message = str(info.value)
    for needle in ("https://huggingface.co/datasets/GAIR/lima", "huggingface-cli login", "HF_TOKEN", "licence"):
        assert needle in message
    with pytest.warns(FixtureFallbackWarning, match="NOT THE REAL DATA"):
        assert load_pairs("lima")[0]["origin"] == "fixture:lima.jsonl"


def test_other_hub_errors_are_not_hidden_by_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    go_online(monkeypatch)

    def broken(*_: Any, **__: Any) -> Any:
        raise KeyError("column renamed")

    monkeypatch.setattr(hub, "_read_dataset_rows", broken)
    with pytest.raises(DatasetUnavailable) as info:
        load_pairs("gsm8k")
    assert info.value.reason == "error"


# --- cache ------------------------------------------------------------------------------


def test_fixture_cache_is_written_and_reused(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = fixtures.read_fixture

    def counting(filename: str) -> list[dict[str, Any]]:
        calls.append(filename)
        return real(filename)

    monkeypatch.setattr(fixtures, "read_fixture", counting)
    first = load_pairs("recipes", offline=True)
    second = load_pairs("recipes", offline=True)
    assert first == second and calls == ["recipes.jsonl"]
    files = list(isolated.glob("recipes.fixture.*.jsonl"))
    assert len(files) == 1
    assert not list(isolated.glob(".*.tmp"))


def _fake_gsm_rows(calls: list[int]) -> Any:
    def read_rows(name: str, source: hub.HubSource) -> Iterator[dict[str, Any]]:
        calls.append(1)
        assert source.repo_id == "openai/gsm8k" and source.config == "main"
        yield {"question": "What is 1 + 1?", "answer": "1 + 1 = <<1+1=2>>2\n#### 2"}
        yield {"question": "What is 2 * 3?", "answer": "2 * 3 = <<2*3=6>>6\n#### 6"}

    return read_rows


def test_hub_cache_is_reused_and_never_mixed_with_fixture(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    go_online(monkeypatch)
    calls: list[int] = []
    monkeypatch.setattr(hub, "read_rows", _fake_gsm_rows(calls))
    first = load_pairs("gsm8k", offline=False)
    assert [r["id"] for r in first] == ["gsm8k-0", "gsm8k-1"]
    assert first[0]["origin"].startswith("hub:openai/gsm8k")
    assert load_pairs("gsm8k", offline=False) == first and calls == [1]
    # The hub copy is served with the hub switched off, without a warning ...
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert load_pairs("gsm8k") == first
    # ... while offline=True still means the fixture, from its own cache file.
    assert load_pairs("gsm8k", offline=True)[0]["id"] == "gsm8k-fixture-0"
    assert len(list(isolated.glob("gsm8k.hub.*.jsonl"))) == 1
    assert len(list(isolated.glob("gsm8k.fixture.*.jsonl"))) == 1


def test_edited_fixture_invalidates_cache(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    load_pairs("chess", offline=True)
    monkeypatch.setattr(fixtures, "fixture_digest", lambda filename: "edited")
    load_pairs("chess", offline=True)
    assert len(list(isolated.glob("chess.fixture.*.jsonl"))) == 2


def test_atomic_write_leaves_nothing_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"

    def rows() -> Iterator[dict[str, int]]:
        yield {"a": 1}
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        write_jsonl_atomic(target, rows())
    assert not target.exists() and list(tmp_path.iterdir()) == []
