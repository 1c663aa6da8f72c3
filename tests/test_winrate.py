"""Win-rate metrics: agreement with AlpacaEval 0.6.6's own functions, and the GLM's behaviour."""

from __future__ import annotations

import json
import math
import sys
import types

import numpy as np
import pytest
from typer.testing import CliRunner

from implicit_if.cli import app
from implicit_if.statistics import bootstrap_indices
from implicit_if.winrate import (
    annotate_with_glm,
    compute_metrics,
    compute_metrics_by_model,
    difficulty_csv_text,
    estimate_instruction_difficulty,
    length_controlled_resamples,
    length_controlled_winrate,
    read_difficulty_csv,
)
from implicit_if.winrate.glm import GLMData, fit_coefficients
from implicit_if.winrate.preferences import preference_table

WORDS = "river stone quiet lamp orbit maple signal copper harbor velvet".split()


def synthetic_annotations(
    seed: int,
    n: int = 240,
    *,
    length_weight: float = 0.8,
    skill: float = 0.2,
    difficulty: np.ndarray | None = None,
    generator: str = "model",
    weighted_share: float = 0.5,
    draws: float = 0.05,
    nans: float = 0.0,
) -> list[dict]:
    """Annotations from a known GLM: P(model wins) = sigmoid(length_weight*tanh(gap) - difficulty + skill)."""
    rng = np.random.default_rng(seed)
    difficulty = np.zeros(n) if difficulty is None else difficulty
    records = []
    for i in range(n):
        len_ref, len_model = int(rng.integers(40, 900)), int(rng.integers(40, 1600))
        output_1 = " ".join(rng.choice(WORDS, max(1, len_ref // 6)))
        output_2 = " ".join(rng.choice(WORDS, max(1, len_model // 6)))
        p = 1 / (1 + math.exp(-(length_weight * math.tanh((len_model - len_ref) / 500) - difficulty[i] + skill)))
        preference = 1 + p if rng.random() < weighted_share else (2.0 if rng.random() < p else 1.0)
        roll = rng.random()
        if roll < draws / 2:
            preference = 1.5
        elif roll < draws:
            preference = 0  # AlpacaEval's other spelling of a draw
        elif roll < draws + nans:
            preference = float("nan")
        records.append(
            {
                "instruction": f"instruction {i}",
                "output_1": output_1,
                "output_2": output_2,
                "generator_1": "reference",
                "generator_2": generator,
                "annotator": "synthetic",
                "preference": preference,
            }
        )
    return records


@pytest.fixture(scope="module")
def alpaca_eval_metrics(tmp_path_factory):
    """alpaca_eval 0.6.6's metric functions, reading instruction difficulty from a file we write.

    Two adaptations, neither touching the metric code: alpaca_eval imports `pkg_resources`
    (gone from recent setuptools), so a two-function stand-in is registered if it is missing;
    and its GLM downloads a difficulty table from the hub, so the download function is pointed
    at a local CSV in the same layout (`index`, `instruction_difficulty`).
    """
    if "pkg_resources" not in sys.modules:
        try:
            import pkg_resources  # noqa: F401
        except ImportError:
            import importlib.metadata

            import packaging.version

            shim = types.ModuleType("pkg_resources")
            shim.parse_version = packaging.version.parse
            shim.get_distribution = lambda name: types.SimpleNamespace(version=importlib.metadata.version(name))
            sys.modules["pkg_resources"] = shim
    glm = pytest.importorskip("alpaca_eval.metrics.glm_winrate")
    from alpaca_eval.metrics import get_winrate

    folder = tmp_path_factory.mktemp("alpaca_eval_difficulty")

    def with_difficulty(values: np.ndarray) -> None:
        import pandas as pd

        path = folder / "df_gamed.csv"
        pd.DataFrame({"index": range(len(values)), "instruction_difficulty": values, "model": "m"}).to_csv(
            path, index=False
        )
        glm.hf_hub_download = lambda **_: str(path)

    return types.SimpleNamespace(
        get_winrate=get_winrate, lc=glm.get_length_controlled_winrate, with_difficulty=with_difficulty
    )


PLAIN_KEYS = ("win_rate", "standard_error", "discrete_win_rate", "n_wins", "n_wins_base", "n_draws", "n_total")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_plain_metrics_match_alpaca_eval(alpaca_eval_metrics, seed):
    records = synthetic_annotations(seed, nans=0.05, weighted_share=[0.0, 0.5, 1.0][seed])
    theirs = alpaca_eval_metrics.get_winrate(records)
    ours = compute_metrics(records, confidence_intervals=False)
    for key in PLAIN_KEYS:
        assert ours[key] == pytest.approx(float(theirs[key]), abs=1e-6), key
    assert ours["n_dropped"] == sum(
        1 for r in records if isinstance(r["preference"], float) and math.isnan(r["preference"])
    )


@pytest.mark.filterwarnings("ignore::FutureWarning")  # alpaca-eval's own scikit-learn calls
@pytest.mark.parametrize("seed", [3, 4])
def test_lc_without_regularisation_matches_alpaca_eval(alpaca_eval_metrics, seed):
    n = 300
    difficulty = np.random.default_rng(100 + seed).normal(size=n)
    records = synthetic_annotations(seed, n=n, difficulty=difficulty, length_weight=1.2)
    alpaca_eval_metrics.with_difficulty(difficulty)
    theirs = alpaca_eval_metrics.lc(
        records, glm_name="length_controlled_noreg", save_weights_dir=None, is_warn_extreme_changes=False
    )
    ours = length_controlled_winrate(
        records, difficulty={f"instruction {i}": d for i, d in enumerate(difficulty)}, regularization=None
    )
    assert abs(ours.length_controlled_winrate - theirs["length_controlled_winrate"]) < 0.5
    # without a difficulty table both treat difficulty as absent
    alpaca_eval_metrics.with_difficulty(np.zeros(n))
    theirs_flat = alpaca_eval_metrics.lc(
        records, glm_name="length_controlled_noreg", save_weights_dir=None, is_warn_extreme_changes=False
    )
    ours_flat = length_controlled_winrate(records, regularization=None)
    assert abs(ours_flat.length_controlled_winrate - theirs_flat["length_controlled_winrate"]) < 0.5


def test_solver_matches_liblinear_on_the_same_objective():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(7)
    n = 400
    X = np.column_stack([np.tanh(rng.normal(size=n)), rng.normal(size=n), np.ones(n)])
    y = 1 / (1 + np.exp(-(X @ [0.7, -0.5, 0.3] + rng.normal(size=n))))
    data = GLMData(X, y, np.ones(n), np.ones(n, dtype=bool))
    for C in (0.01, 0.1, 2.78, 1e4):
        ours = fit_coefficients(data, C)
        reference = LogisticRegression(C=C, solver="liblinear", fit_intercept=False, tol=1e-10, l1_ratio=1.0)
        reference.fit(np.vstack([X, X]), np.r_[np.ones(n), np.zeros(n)], sample_weight=np.r_[y, 1 - y])
        assert ours == pytest.approx(reference.coef_[0], abs=1e-5), C


def test_length_control_removes_a_pure_length_preference():
    # The judge prefers longer answers and nothing else, and the model is usually longer:
    # the raw win rate is far above 50, the LC win rate (no length gap) is not.
    rng = np.random.default_rng(11)
    n = 400
    len_ref = rng.integers(40, 900, size=n)
    len_model = (len_ref * np.exp(rng.normal(0.7, 0.6, size=n))).astype(int) + 1
    delta = (len_ref - len_model).astype(float)
    p_model = 1 / (1 + np.exp(2.5 * np.tanh(delta / delta.std(ddof=1))))
    records = [
        {
            "instruction": f"i{i}",
            "output_1": "r" * len_ref[i],
            "output_2": "m" * len_model[i],
            "preference": 1 + p_model[i],
        }
        for i in range(n)
    ]
    metrics = compute_metrics(records, confidence_intervals=False, regularization=None)
    assert metrics["win_rate"] > 65
    assert abs(metrics["length_controlled_winrate"] - 50) < 3
    assert metrics["glm_coefficients"]["length"] < -2  # delta = len(reference) - len(model)


def test_draws_identical_outputs_and_invalid_preferences():
    base = {"instruction": "x", "output_1": "a", "output_2": "b"}
    records = [
        {**base, "preference": 2.0},
        {**base, "preference": 0},  # draw
        {**base, "preference": 1.5},  # draw
        {**base, "output_2": "a", "preference": 2.0},  # identical outputs: a draw whatever the judge said
        {**base, "preference": 2.5},  # outside [1, 2]: dropped
        {**base, "preference": float("nan")},
        {**base, "preference": None},
        {**base, "preference": "not a number"},
    ]
    metrics = compute_metrics(records, confidence_intervals=False)
    assert (metrics["n_total"], metrics["n_draws"], metrics["n_dropped"], metrics["n_wins"]) == (4, 3, 4, 1)
    assert metrics["win_rate"] == pytest.approx(100 * (1 + 0.5 * 3) / 4)
    assert metrics["discrete_win_rate"] == pytest.approx(metrics["win_rate"])
    annotated = annotate_with_glm(records, length_controlled_winrate(records, regularization=None))
    assert [r["preference"] for r in annotated] == [2.0, 1.5, 1.5, 1.5, None, None, None, None]
    assert annotated[0]["glm_preference"] is not None and annotated[4]["glm_preference"] is None


def test_confidence_intervals_bracket_the_estimates_and_are_seeded():
    records = synthetic_annotations(5, n=120)
    first = compute_metrics(records, lc_resamples=60)
    again = compute_metrics(records, lc_resamples=60)
    for name in ("win_rate", "discrete_win_rate", "length_controlled_winrate"):
        assert first[f"{name}_ci_low"] <= first[name] <= first[f"{name}_ci_high"], name
        assert first[f"{name}_ci_high"] - first[f"{name}_ci_low"] > 1, name
        assert first[f"{name}_ci_low"] == again[f"{name}_ci_low"]


# LC intervals as `compute_metrics` (so `implicit-if winrate`) gave them before its bootstrap statistic
# was rebuilt on `glm.lc_resample_winrates`, the index-matrix statistic the board shares: pinned, so
# that change (or any later one) cannot move the CLI's numbers unnoticed.
PINNED_LC = [
    (dict(seed=11, n=120), {}, (57.7736009038433, 50.18240382132621, 65.30935344277043)),
    (dict(seed=12, n=80, nans=0.05), {}, (59.221690639932525, 50.425169664362826, 66.8602110686333)),
    (dict(seed=13, n=90), dict(regularization=0.2), (50.0, 41.84201906269409, 56.543486601609295)),
]


@pytest.mark.parametrize("data, options, expected", PINNED_LC)
def test_the_cli_lc_interval_is_unchanged(data: dict, options: dict, expected: tuple):
    records = synthetic_annotations(data["seed"], n=data["n"], nans=data.get("nans", 0.0))
    resamples, seed = 200, 3
    if options:  # with baselines and a difficulty table: every input of the refit
        options = dict(
            options,
            baseline_annotations=[synthetic_annotations(14, n=90, length_weight=2.0)],
            difficulty={r["instruction"]: float(v) for r, v in zip(records, np.linspace(-1, 1, 90))},
        )
        resamples, seed = 150, 0
    metrics = compute_metrics(records, lc_resamples=resamples, seed=seed, **options)
    got = tuple(metrics[f"length_controlled_winrate{k}"] for k in ("", "_ci_low", "_ci_high"))
    assert got == pytest.approx(expected, abs=1e-6)
    # And the interval is the percentile interval of the shared-index statistic over scipy's draws.
    table = preference_table(records)
    fit, values = length_controlled_resamples(
        table,
        bootstrap_indices(table.n, resamples, seed),
        difficulty=options.get("difficulty"),
        baseline_annotations=options.get("baseline_annotations", ()),
        regularization=options.get("regularization", 0.2),
        seed=seed,
    )
    assert fit.length_controlled_winrate == pytest.approx(expected[0], abs=1e-9)
    assert tuple(np.percentile(values, [2.5, 97.5])) == pytest.approx(expected[1:], abs=1e-9)


def test_joint_difficulty_recovers_the_true_ordering():
    from scipy.stats import spearmanr

    n = 300
    truth = np.random.default_rng(21).normal(scale=1.5, size=n)
    by_model = {
        f"m{k}": synthetic_annotations(30 + k, n=n, difficulty=truth, skill=skill, weighted_share=1.0, draws=0)
        for k, skill in enumerate((-1.0, 0.0, 0.5, 1.0))
    }
    estimate = estimate_instruction_difficulty(by_model)
    ordered = [estimate[f"instruction {i}"] for i in range(n)]
    assert spearmanr(ordered, truth).statistic > 0.8
    assert abs(np.mean(ordered)) < 1e-6
    with pytest.raises(ValueError, match="at least two models"):
        estimate_instruction_difficulty({"only": by_model["m0"]})
    boards = compute_metrics_by_model(by_model, confidence_intervals=False)
    rates = [boards[m]["length_controlled_winrate"] for m in by_model]
    assert rates == sorted(rates)  # model skill order survives


def test_regularisation_pulls_the_length_weight_towards_the_baselines():
    model = synthetic_annotations(40, n=60, length_weight=3.0)
    baselines = [synthetic_annotations(41 + k, n=400, length_weight=0.0, generator=f"b{k}") for k in range(2)]
    free = length_controlled_winrate(model, regularization=None)
    pulled = length_controlled_winrate(model, baseline_annotations=baselines, regularization=5.0)
    ignored = length_controlled_winrate(model, baseline_annotations=baselines, regularization=None)
    assert pulled.regularized and not free.regularized and not ignored.regularized
    assert abs(pulled.coefficients["length"]) < abs(free.coefficients["length"])
    assert ignored.length_controlled_winrate == free.length_controlled_winrate


def test_difficulty_csv_round_trip_and_errors(tmp_path):
    table = {"Say hi, twice": 0.25, 'A "quoted"\nline': -1.5}
    path = tmp_path / "difficulty.csv"
    path.write_text(difficulty_csv_text(table), encoding="utf-8")
    assert read_difficulty_csv(path) == table
    (tmp_path / "bad.csv").write_text("instruction,difficulty\nx,1\n", encoding="utf-8")
    with pytest.raises(ValueError, match="instruction_difficulty"):
        read_difficulty_csv(tmp_path / "bad.csv")
    with pytest.raises(ValueError, match="no entry for 1 of 2"):
        length_controlled_winrate(
            [
                {"instruction": "Say hi, twice", "output_1": "a", "output_2": "bb", "preference": 2},
                {"instruction": "other", "output_1": "a", "output_2": "b", "preference": 1},
            ],
            difficulty=table,
        )


def test_cli_prints_json_and_writes_annotations(tmp_path):
    records = synthetic_annotations(8, n=80)
    source = tmp_path / "annotations.json"
    source.write_text(json.dumps(records), encoding="utf-8")
    out = tmp_path / "with_glm.json"
    result = CliRunner().invoke(app, ["winrate", str(source), "--json", "--no-regularization", "--output", str(out)])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    expected = compute_metrics(records, regularization=None)
    for key in (*PLAIN_KEYS, "length_controlled_winrate", "win_rate_ci_low", "length_controlled_winrate_ci_high"):
        assert printed[key] == pytest.approx(expected[key]), key
    written = json.loads(out.read_text(encoding="utf-8"))
    assert len(written) == len(records) and all("glm_preference" in r for r in written)


def test_cli_joint_difficulty_and_saved_table(tmp_path):
    paths = []
    for k in range(3):
        path = tmp_path / f"m{k}.json"
        path.write_text(json.dumps(synthetic_annotations(50 + k, n=60, skill=k - 1.0)), encoding="utf-8")
        paths.append(path)
    saved = tmp_path / "difficulty.csv"
    result = CliRunner().invoke(
        app,
        [
            "winrate",
            str(paths[0]),
            "--joint-with",
            str(paths[1]),
            "--joint-with",
            str(paths[2]),
            "--save-difficulty",
            str(saved),
            "--no-ci",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "joint estimate over 3 models" in result.stdout
    assert len(read_difficulty_csv(saved)) == 60


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"not": "a list"}', "JSON list"),
        ('[{"instruction": "x", "output_1": "a"}]', "lacks output_2, preference"),
        ("[1, 2", "not valid JSON"),
    ],
)
def test_cli_rejects_bad_annotation_files(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")
    result = CliRunner().invoke(app, ["winrate", str(path)])
    assert result.exit_code == 2
    assert message in result.stderr


def test_boolean_preferences_are_dropped_not_read_as_numbers() -> None:
    from implicit_if.winrate.preferences import normalise_preference

    assert math.isnan(normalise_preference(False)) and math.isnan(normalise_preference(True))
    assert normalise_preference(0) == 1.5 and normalise_preference(2) == 2.0


@pytest.mark.parametrize(
    "payload", ["[]", '[{"instruction": "a", "output_1": "x", "output_2": "y", "preference": false}]']
)
def test_winrate_with_nothing_to_rate_is_one_line_and_fails(payload: str, tmp_path) -> None:
    from typer.testing import CliRunner

    from implicit_if.cli import app

    path = tmp_path / "annotations.json"
    path.write_text(payload)
    result = CliRunner().invoke(app, ["winrate", str(path)])
    assert result.exit_code != 0 and result.output.startswith("error:")
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
