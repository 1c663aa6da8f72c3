"""Speed of the length-controlled win rate against named baselines, on the same annotations.

One model's 805 synthetic annotations (AlpacaEval's size), instruction difficulty given:

  fit (one penalty value):
    (a) liblinear      scikit-learn's LogisticRegression(liblinear, L1) on the duplicated rows,
                       as alpaca-eval hands the problem to it;
    (b) ours           `implicit_if.winrate.glm.fit_coefficients` (proximal Newton, same objective);
  whole LC win rate (penalty chosen by 5-fold CV over 10 values, then the final fit):
    (c) alpaca_eval    alpaca-eval 0.6.6 `get_length_controlled_winrate(glm_name="length_controlled_noreg")`;
    (d) ours           `implicit_if.winrate.length_controlled_winrate(regularization=None)`;
  and (e) ours with the 95% CI (300 refits) via `compute_metrics`.

Contenders alternate; each is timed `--runs` times and the median is reported with the ratio to
the baseline of its group. Usage: python benchmarks/lc_glm_speed.py [--runs 5]
Writes benchmarks/results/lc_glm_speed.md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
N = 805


def synthetic(seed: int = 0) -> tuple[list[dict], np.ndarray]:
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(size=N)
    records = []
    for i in range(N):
        len_ref, len_model = int(rng.integers(40, 900)), int(rng.integers(40, 1600))
        p = 1 / (1 + np.exp(-(1.0 * np.tanh((len_model - len_ref) / 500) - difficulty[i] + 0.2)))
        preference = 1 + p if rng.random() < 0.5 else (2.0 if rng.random() < p else 1.0)
        records.append(
            {
                "instruction": f"instruction {i}",
                "output_1": "r" * len_ref,
                "output_2": "m" * len_model,
                "generator_1": "reference",
                "generator_2": "model",
                "annotator": "synthetic",
                "preference": preference,
            }
        )
    return records, difficulty


def alpaca_eval_lc(difficulty: np.ndarray, folder: Path):
    """alpaca-eval's LC function, reading the difficulty from a local file instead of the hub."""
    if "pkg_resources" not in sys.modules:
        try:
            import pkg_resources  # noqa: F401
        except ImportError:  # gone from recent setuptools; alpaca-eval only needs these two names
            import importlib.metadata

            import packaging.version

            shim = types.ModuleType("pkg_resources")
            shim.parse_version = packaging.version.parse
            shim.get_distribution = lambda name: types.SimpleNamespace(version=importlib.metadata.version(name))
            sys.modules["pkg_resources"] = shim
    import pandas as pd
    from alpaca_eval.metrics import glm_winrate

    path = folder / "df_gamed.csv"
    pd.DataFrame({"index": range(len(difficulty)), "instruction_difficulty": difficulty, "model": "m"}).to_csv(
        path, index=False
    )
    glm_winrate.hf_hub_download = lambda **_: str(path)
    return glm_winrate


def timed(fn, runs: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    import warnings

    from sklearn.linear_model import LogisticRegression

    from implicit_if.winrate import compute_metrics, length_controlled_winrate
    from implicit_if.winrate.glm import fit_coefficients, length_controlled_fit, stack, table_rows
    from implicit_if.winrate.preferences import preference_table

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    warnings.simplefilter("ignore", FutureWarning)

    records, difficulty = synthetic()
    table_of_difficulty = {f"instruction {i}": d for i, d in enumerate(difficulty)}
    data = stack([table_rows(preference_table(records), table_of_difficulty, is_model=True, weight=1.0)])
    C = length_controlled_fit(preference_table(records), difficulty=table_of_difficulty, regularization=None).C
    X = np.vstack([data.features, data.features])
    y = np.r_[np.ones(N), np.zeros(N)]
    w = np.r_[data.target, 1 - data.target]

    def liblinear():
        return (
            LogisticRegression(C=C, solver="liblinear", fit_intercept=False, l1_ratio=1.0, random_state=123)
            .fit(X, y, sample_weight=w)
            .coef_[0]
        )

    rows = []
    t_lib, coef_lib = timed(liblinear, args.runs)
    t_ours, coef_ours = timed(lambda: fit_coefficients(data, C), args.runs)
    rows.append(("fit, one penalty", "liblinear (scikit-learn)", t_lib, 1.0, ""))
    rows.append(
        (
            "fit, one penalty",
            "ours (proximal Newton)",
            t_ours,
            t_lib / t_ours,
            f"max abs coef diff {np.max(np.abs(coef_lib - coef_ours)):.1e}",
        )
    )

    with tempfile.TemporaryDirectory() as tmp:
        glm = alpaca_eval_lc(difficulty, Path(tmp))
        t_ae, theirs = timed(
            lambda: glm.get_length_controlled_winrate(
                records, glm_name="length_controlled_noreg", save_weights_dir=None, is_warn_extreme_changes=False
            ),
            args.runs,
        )
    t_lc, ours = timed(
        lambda: length_controlled_winrate(records, difficulty=table_of_difficulty, regularization=None), args.runs
    )
    rows.append(
        (
            "LC win rate (CV + fit)",
            "alpaca-eval 0.6.6 noreg",
            t_ae,
            1.0,
            f"LC {theirs['length_controlled_winrate']:.3f}",
        )
    )
    rows.append(("LC win rate (CV + fit)", "ours", t_lc, t_ae / t_lc, f"LC {ours.length_controlled_winrate:.3f}"))
    t_ci, metrics = timed(
        lambda: compute_metrics(records, difficulty=table_of_difficulty, regularization=None), max(1, args.runs // 2)
    )
    rows.append(
        (
            "LC + all 95% CIs",
            "ours (300 LC refits, 2 x 10,000 BCa)",
            t_ci,
            t_ae / t_ci,
            f"LC CI [{metrics['length_controlled_winrate_ci_low']:.2f}, "
            f"{metrics['length_controlled_winrate_ci_high']:.2f}]",
        )
    )

    machine = (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"load {os.getloadavg()[0]:.1f}"
    )
    lines = [
        "# LC win rate speed",
        "",
        f"{N} synthetic annotations, difficulty given; median of {args.runs} runs; {machine}.",
        "Ratio = baseline time / this time within each group (higher is faster).",
        "",
        "| group | contender | median s | ratio | check |",
        "| --- | --- | ---: | ---: | --- |",
        *[f"| {g} | {c} | {t:.4f} | {r:.1f}x | {note} |" for g, c, t, r, note in rows],
        "",
    ]
    text = "\n".join(lines)
    print(text)
    out = REPO / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "lc_glm_speed.md").write_text(text, encoding="utf-8")
    (out / "lc_glm_speed.json").write_text(
        json.dumps(
            {
                "n": N,
                "runs": args.runs,
                "machine": machine,
                "rows": [
                    {"group": g, "contender": c, "median_s": t, "ratio": r, "check": note} for g, c, t, r, note in rows
                ],
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )


if __name__ == "__main__":
    main()
