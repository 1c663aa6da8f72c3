"""The board ranks by the LC win rate: its interval is the CLI's, pooled over seeds and paired across systems."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from leaderboard_fixtures import (
    edit_json,
    isolated_cache,  # noqa: F401 (fixture)
    read_json,
    synthetic_instructions,
    write_submission,
)
from typer.testing import CliRunner

from implicit_if.cli import app
from implicit_if.leaderboard.board import BootstrapSettings, build_board_data
from implicit_if.leaderboard.check import check_submissions
from implicit_if.leaderboard.evaluation_sets import EvaluationSets
from implicit_if.leaderboard.render_csv import csv_rows
from implicit_if.leaderboard.render_html import render_html
from implicit_if.leaderboard.render_markdown import render_markdown
from implicit_if.leaderboard.render_png import plotted
from implicit_if.statistics import bootstrap_indices
from implicit_if.winrate import LC_RESAMPLES, length_controlled_resamples
from implicit_if.winrate.preferences import preference_table

INSTRUCTIONS = synthetic_instructions(200)
FAST = BootstrapSettings(n_resamples=2_000)


@pytest.fixture(autouse=True)
def _cache(isolated_cache):  # noqa: F811
    return isolated_cache


def board_for(root: Path) -> dict:
    entries, problems = check_submissions(root, EvaluationSets(lambda d, s: INSTRUCTIONS))
    assert [p for p in problems if p.severity == "error"] == []
    (board,) = build_board_data(entries, FAST)["boards"]
    return board


def by_system(board: dict) -> dict[str, dict]:
    return {s["system"]: s for s in board["systems"]}


def verbose(seed: int, longer: float = 0.8):
    """Annotations of a model that wins by length: its answer is longer than the reference's (by 5 to
    40 characters) on a share `longer` of instructions, and the judge prefers the longer answer 85% of
    the time, whichever wrote it."""
    rng = np.random.default_rng(seed)

    def change(rows: list[dict]) -> None:
        for row in rows:
            is_longer, gap = rng.random() < longer, int(rng.integers(5, 41))
            size = len(row["output_2"])
            row["output_1"] = "r" * (size - gap if is_longer else size + gap)
            row["preference"] = 2.0 if rng.random() < (0.85 if is_longer else 0.15) else 1.0

    return change


def length_neutral(seed: int, win: float):
    """Annotations with no length signal (the reference exactly as long), won with probability `win`."""
    rng = np.random.default_rng(seed)

    def change(rows: list[dict]) -> None:
        for row in rows:
            row["output_1"] = "r" * len(row["output_2"])
            row["preference"] = 2.0 if rng.random() < win else 1.0

    return change


def lc_resamples(folder: Path) -> np.ndarray:
    """The entry's LC win rate on the board's resamples, computed here from its file (no board code)."""
    table = preference_table(read_json(folder / "annotations.json"))
    return length_controlled_resamples(table, bootstrap_indices(len(INSTRUCTIONS), LC_RESAMPLES, 0))[1]


def test_a_single_seed_systems_lc_interval_is_what_implicit_if_winrate_prints(tmp_path: Path):
    folder = write_submission(tmp_path, "solo", INSTRUCTIONS, rng_seed=5, with_claims=False)
    edit_json(folder / "annotations.json", verbose(5))  # a length effect, so LC and win rate differ
    data = build_board_data(check_submissions(tmp_path, EvaluationSets(lambda d, s: INSTRUCTIONS))[0], FAST)
    lc = data["boards"][0]["systems"][0]["lc_win_rate"]
    result = CliRunner().invoke(app, ["winrate", str(folder / "annotations.json"), "--json", "--seed", "0"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert lc["ci_method"] == "percentile" and data["statistics"]["lc_win_rate"]["n_resamples"] == LC_RESAMPLES
    assert lc["mean"] == pytest.approx(printed["length_controlled_winrate"], abs=1e-4)
    assert lc["ci_low"] == pytest.approx(printed["length_controlled_winrate_ci_low"], abs=1e-4)
    assert lc["ci_high"] == pytest.approx(printed["length_controlled_winrate_ci_high"], abs=1e-4)
    assert lc["ci_high"] - lc["ci_low"] > 5  # a real interval, not a point
    printed_ci = (
        f"[{printed['length_controlled_winrate_ci_low']:.1f}, {printed['length_controlled_winrate_ci_high']:.1f}]"
    )
    assert printed_ci in render_markdown(data) and printed_ci in render_html(data)
    (row,) = csv_rows(data)
    assert float(row["lc_win_rate_ci_low"]) == pytest.approx(printed["length_controlled_winrate_ci_low"], abs=1e-4)
    (panel,) = plotted(data)
    assert panel["metric"] == "lc_win_rate" and panel["points"][0][2:4] == (lc["ci_low"], lc["ci_high"])


def test_a_two_seed_systems_interval_is_that_of_the_seed_mean_on_shared_resamples(tmp_path: Path):
    folders = [
        write_submission(
            tmp_path,
            f"pair-seed{seed}",
            INSTRUCTIONS,
            system="pair",
            seed=seed,
            win_probability=0.35 + 0.15 * seed,
            rng_seed=30 + seed,
        )
        for seed in (0, 1)
    ]
    lc = by_system(board_for(tmp_path))["pair"]["lc_win_rate"]
    assert len(lc["per_seed"]) == 2 and lc["per_seed"][0] != lc["per_seed"][1]
    assert lc["mean"] == pytest.approx(np.mean(lc["per_seed"]), abs=1e-4)
    assert lc["ci_low"] < lc["mean"] < lc["ci_high"]
    # Each resample: the same instructions for both seeds, the GLM refitted on each, then the mean.
    seed_mean = np.mean([lc_resamples(folder) for folder in folders], axis=0)
    low, high = np.percentile(seed_mean, [2.5, 97.5])
    assert (lc["ci_low"], lc["ci_high"]) == pytest.approx((low, high), abs=1e-4)


def test_a_verbose_model_wins_on_raw_preference_but_ranks_below_after_length_control(tmp_path: Path):
    edit_json(
        write_submission(tmp_path, "verbose", INSTRUCTIONS, rng_seed=5, with_claims=False) / "annotations.json",
        verbose(5),
    )
    edit_json(
        write_submission(tmp_path, "concise", INSTRUCTIONS, rng_seed=2, with_claims=False) / "annotations.json",
        length_neutral(2, win=0.62),
    )
    board = board_for(tmp_path)
    systems = by_system(board)
    long, short = systems["verbose"], systems["concise"]
    assert long["win_rate"]["mean"] > short["win_rate"]["mean"] + 5  # ranked by win rate, verbose would lead
    assert long["lc_win_rate"]["mean"] < short["lc_win_rate"]["mean"] - 5
    assert board["ranked_by"] == "lc_win_rate"
    assert [s["system"] for s in board["systems"]] == ["concise", "verbose"]
    assert short["vs_next"]["metric"] == "lc_win_rate" and short["vs_next"]["system"] == "verbose"
    assert short["vs_next"]["difference"] == pytest.approx(
        short["lc_win_rate"]["mean"] - long["lc_win_rate"]["mean"], abs=1e-3
    )


@pytest.mark.parametrize("lost, significant", [(1, False), (8, True)])
def test_vs_next_is_the_paired_lc_difference_on_the_same_resamples(tmp_path: Path, lost: int, significant: bool):
    # Twins: the same instructions, lengths and verdicts (same generator seed), except that twin-b
    # loses `lost` of the instructions twin-a wins. One lost verdict is no evidence; eight are, paired,
    # although the two LC intervals still overlap (so the ranks tie).
    a, b = (
        write_submission(tmp_path, name, INSTRUCTIONS, rng_seed=7, with_claims=False) for name in ("twin-a", "twin-b")
    )
    wins = [i for i, row in enumerate(read_json(a / "annotations.json")) if row["preference"] == 2.0][:lost]
    edit_json(b / "annotations.json", lambda rows: [rows[i].update(preference=1.0) for i in wins])
    board = board_for(tmp_path)
    first, second = board["systems"]
    assert (first["system"], second["system"]) == ("twin-a", "twin-b")
    assert first["rank"] == second["rank"] == 1
    vs = first["vs_next"]
    assert vs["metric"] == "lc_win_rate" and vs["significant"] is significant
    difference = lc_resamples(a) - lc_resamples(b)
    assert (vs["ci_low"], vs["ci_high"]) == pytest.approx(tuple(np.percentile(difference, [2.5, 97.5])), abs=1e-4)
    assert vs["ci_low"] >= 0  # losing verdicts never raises an LC win rate


def test_without_every_lc_interval_the_board_ranks_by_win_rate_and_says_so(tmp_path: Path):
    write_submission(tmp_path, "alpha", INSTRUCTIONS, rng_seed=1)
    write_submission(tmp_path, "beta", INSTRUCTIONS, rng_seed=2, win_probability=0.2)
    entries, _ = check_submissions(tmp_path, EvaluationSets(lambda d, s: INSTRUCTIONS))
    entries[1].lc_table = None  # as for an entry whose annotations give no LC interval
    (board,) = build_board_data(entries, FAST)["boards"]
    assert board["ranked_by"] == "win_rate" and board["systems"][0]["vs_next"]["metric"] == "win_rate"
    assert by_system(board)["beta"]["lc_win_rate"]["ci_low"] is None
    assert by_system(board)["alpha"]["lc_win_rate"]["ci_low"] is not None


def test_rebuilds_are_byte_identical_with_an_empty_and_a_warm_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    root = tmp_path / "submissions"
    write_submission(root, "resp-seed0", INSTRUCTIONS, system="resp", seed=0, rng_seed=1)
    write_submission(root, "resp-seed1", INSTRUCTIONS, system="resp", seed=1, rng_seed=2)
    edit_json(
        write_submission(root, "long", INSTRUCTIONS, rng_seed=3, with_claims=False) / "annotations.json", verbose(3)
    )
    sets = EvaluationSets(lambda d, s: INSTRUCTIONS)
    from implicit_if.leaderboard.build import render_all

    def build(cache: Path) -> dict[str, bytes]:
        monkeypatch.setenv("IMPLICIT_IF_CACHE", str(cache))
        entries, _ = check_submissions(root, sets)
        return render_all(build_board_data(entries, FAST))

    cold = build(tmp_path / "cache-1")
    assert len(list((tmp_path / "cache-1" / "leaderboard").glob("lc-resamples-*.json"))) == 3
    assert build(tmp_path / "cache-1") == cold  # every LC refit read back from the cache
    assert build(tmp_path / "cache-2") == cold  # and computed again from nothing


def test_many_entries_refit_in_parallel_processes_with_exactly_the_serial_board(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from implicit_if.leaderboard import parallel as parallel_module

    root = tmp_path / "submissions"
    for k in range(4):
        write_submission(root, f"system{k}", INSTRUCTIONS, rng_seed=40 + k, win_probability=0.2 + 0.15 * k)
    entries, _ = check_submissions(root, EvaluationSets(lambda d, s: INSTRUCTIONS))

    def board_with(parallel_from: int, cache: Path) -> dict:
        monkeypatch.setattr(parallel_module, "PARALLEL_FROM", parallel_from)
        monkeypatch.setenv("IMPLICIT_IF_CACHE", str(cache))  # a cold cache: every refit is computed
        return build_board_data(entries, FAST)

    serial = board_with(10**6, tmp_path / "cache-serial")
    parallel = board_with(2, tmp_path / "cache-parallel")
    assert len(list((tmp_path / "cache-parallel" / "leaderboard").glob("lc-resamples-*.json"))) == 4
    assert parallel == serial and serial["boards"][0]["ranked_by"] == "lc_win_rate"
