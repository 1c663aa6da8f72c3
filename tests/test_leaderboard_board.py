"""The board's numbers: seed aggregation, paired comparisons, upper-bound ranks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from leaderboard_fixtures import (
    isolated_cache,  # noqa: F401 (fixture)
    read_json,
    synthetic_instructions,
    write_submission,
)

from implicit_if.leaderboard.board import BootstrapSettings, build_board_data
from implicit_if.leaderboard.check import check_submissions
from implicit_if.leaderboard.evaluation_sets import EvaluationSets

INSTRUCTIONS = synthetic_instructions(300)
FAST = BootstrapSettings(n_resamples=2_000)


@pytest.fixture(autouse=True)
def _cache(isolated_cache):  # noqa: F811
    return isolated_cache


def board_for(root: Path, settings: BootstrapSettings = FAST) -> dict:
    entries, problems = check_submissions(root, EvaluationSets(lambda d, s: INSTRUCTIONS))
    assert [p for p in problems if p.severity == "error"] == []
    data = build_board_data(entries, settings)
    (board,) = data["boards"]
    return board


def by_system(board: dict) -> dict[str, dict]:
    return {s["system"]: s for s in board["systems"]}


def test_seeds_of_one_system_become_mean_std_and_a_pooled_interval(tmp_path: Path):
    for seed, p in enumerate([0.30, 0.40, 0.50]):
        write_submission(
            tmp_path, f"resp-seed{seed}", INSTRUCTIONS, system="resp", seed=seed, win_probability=p, rng_seed=10 + seed
        )
    write_submission(tmp_path, "solo", INSTRUCTIONS, win_probability=0.4, rng_seed=20)
    systems = by_system(board_for(tmp_path))
    claims = [read_json(tmp_path / f"resp-seed{s}" / "metadata.json")["claimed"]["win_rate"] for s in range(3)]
    resp = systems["resp"]
    assert resp["entries"] == ["resp-seed0", "resp-seed1", "resp-seed2"] and resp["seeds"] == [0, 1, 2]
    assert resp["win_rate"]["per_seed"] == pytest.approx(claims, abs=0.006)
    assert resp["win_rate"]["mean"] == pytest.approx(np.mean(claims), abs=0.006)
    assert resp["win_rate"]["std"] == pytest.approx(np.std(claims, ddof=1), abs=0.006)
    assert resp["win_rate"]["ci_low"] < resp["win_rate"]["mean"] < resp["win_rate"]["ci_high"]
    # The pooled interval is over 3 x 300 judgements: narrower than the single-seed system's.
    solo = systems["solo"]
    assert solo["win_rate"]["std"] is None
    assert (
        resp["win_rate"]["ci_high"] - resp["win_rate"]["ci_low"]
        < solo["win_rate"]["ci_high"] - solo["win_rate"]["ci_low"]
    )


def test_vs_reference_is_the_win_rate_minus_parity(tmp_path: Path):
    write_submission(tmp_path, "strong", INSTRUCTIONS, win_probability=0.8, rng_seed=1)
    write_submission(tmp_path, "even", INSTRUCTIONS, win_probability=0.5, rng_seed=2)
    systems = by_system(board_for(tmp_path))
    for system in systems.values():
        vs = system["vs_reference"]
        assert vs["difference"] == pytest.approx(system["win_rate"]["mean"] - 50, abs=1e-3)
        assert vs["ci_low"] == pytest.approx(system["win_rate"]["ci_low"] - 50, abs=1e-3)
    assert systems["strong"]["vs_reference"]["significant"] is True


def test_order_ranks_and_neighbour_differences(tmp_path: Path):
    # Two systems with the same win probability (they should tie), one clearly better, one clearly worse.
    write_submission(tmp_path, "best", INSTRUCTIONS, win_probability=0.85, rng_seed=1)
    write_submission(tmp_path, "mid-a", INSTRUCTIONS, win_probability=0.45, rng_seed=2)
    write_submission(tmp_path, "mid-b", INSTRUCTIONS, win_probability=0.45, rng_seed=3)
    write_submission(tmp_path, "worst", INSTRUCTIONS, win_probability=0.05, rng_seed=4)
    board = board_for(tmp_path)
    assert board["ranked_by"] == "lc_win_rate"  # the headline; lengths carry no signal here, so LC follows win rate
    order = [s["system"] for s in board["systems"]]
    assert order[0] == "best" and order[-1] == "worst" and set(order[1:3]) == {"mid-a", "mid-b"}
    ranks = {s["system"]: s["rank"] for s in board["systems"]}
    assert ranks["best"] == 1 and ranks["mid-a"] == ranks["mid-b"] == 2 and ranks["worst"] == 4
    first, second = board["systems"][0], board["systems"][1]
    assert first["vs_next"]["system"] == second["system"]
    assert first["vs_next"]["metric"] == "lc_win_rate"
    assert first["vs_next"]["difference"] == pytest.approx(
        first["lc_win_rate"]["mean"] - second["lc_win_rate"]["mean"], abs=1e-3
    )
    assert first["vs_next"]["significant"] is True
    assert board["systems"][1]["vs_next"]["significant"] is False  # the two mids are indistinguishable
    assert board["systems"][-1]["vs_next"] is None


def test_ranking_only_entries_are_ranked_by_ranking_accuracy(tmp_path: Path):
    for name, p, seed in (("good-ranker", 0.9, 1), ("poor-ranker", 0.5, 2)):
        folder = write_submission(tmp_path, name, INSTRUCTIONS, rank_probability=p, rng_seed=seed, with_claims=False)
        for file in ("outputs.json", "annotations.json", "leakage.jsonl"):
            (folder / file).unlink()
    board = board_for(tmp_path)
    assert board["ranked_by"] == "ranking_accuracy"
    assert [s["system"] for s in board["systems"]] == ["good-ranker", "poor-ranker"]
    assert board["systems"][0]["win_rate"] is None
    assert board["systems"][0]["ranking_accuracy"]["mean"] > 80


def test_boards_are_split_by_evaluation_set(tmp_path: Path):
    write_submission(tmp_path, "on-fixture", INSTRUCTIONS, rng_seed=1)
    write_submission(tmp_path, "on-hub", INSTRUCTIONS, rng_seed=2, dataset="alpaca_eval", source="hub")
    entries, _ = check_submissions(tmp_path, EvaluationSets(lambda d, s: INSTRUCTIONS))
    data = build_board_data(entries, FAST)
    keys = [(b["evaluation_set"]["dataset"], b["evaluation_set"]["source"]) for b in data["boards"]]
    assert keys == [("alpaca_eval", "hub"), ("offline_instructions", "fixture")]
    assert [len(b["systems"]) for b in data["boards"]] == [1, 1]


def test_a_named_board_is_its_own_board_and_says_its_name(tmp_path: Path):
    from implicit_if.leaderboard.formatting import evaluation_set_title
    from implicit_if.leaderboard.render_csv import render_csv

    write_submission(tmp_path, "main-entry", INSTRUCTIONS, rng_seed=1)
    write_submission(tmp_path, "study-entry", INSTRUCTIONS, rng_seed=2, board="study-small")
    entries, _ = check_submissions(tmp_path, EvaluationSets(lambda d, s: INSTRUCTIONS))
    data = build_board_data(entries, FAST)
    assert [b.get("board") for b in data["boards"]] == [None, "study-small"]
    assert [s["system"] for b in data["boards"] for s in b["systems"]] == ["main-entry", "study-entry"]
    assert evaluation_set_title(data["boards"][1]).startswith("study-small: offline_instructions")
    assert "board" not in data["boards"][0]  # the main board's data is as before
    assert "study-small,offline_instructions" in render_csv(data)


def test_an_entry_not_fully_fine_tuned_is_flagged(tmp_path: Path):
    training = {
        "recipe": "r",
        "recipe_digest": "a" * 64,
        "dataset": "lima_style",
        "data_fingerprint": "b" * 64,
        "trained_parameters": "all but the embeddings",
        "steps": 40,
        "epochs": 1.0,
    }
    write_submission(tmp_path, "frozen", INSTRUCTIONS, rng_seed=1, training=training)
    write_submission(tmp_path, "full", INSTRUCTIONS, rng_seed=2, training={**training, "trained_parameters": "all"})
    systems = by_system(board_for(tmp_path))
    assert any("not full fine-tuning" in flag for flag in systems["frozen"]["flags"])
    assert not any("fine-tuning" in flag for flag in systems["full"]["flags"])
