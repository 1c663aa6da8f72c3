"""Synthetic but complete submission folders for the leaderboard tests and benchmark.

Each folder holds every record file the board reads, generated from a seeded RNG with known
rates, and a metadata.json whose claims are computed here independently (plain arithmetic over
what was written), so a test can tell when the checker's recomputation disagrees.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REFERENCE = "reference-instruct"
DETECTORS = ("gsm", "gsm_calculator", "code", "chess", "poem", "recipe")  # implicit_if.leakage's names
LEAKY_ENDINGS = [
    "\nSo the total is 12.\n#### 12",
    "\n```python\ndef answer(x):\n    return x + 1\n```",
    "\n1. e4 e5 2. Nf3 Nc6 3. Bb5 a6 4. Ba4 Nf6 5. O-O Be7",
]


def synthetic_instructions(n: int) -> list[str]:
    topics = ["a river", "tax forms", "sourdough", "the moon", "chess openings", "photosynthesis", "bicycles"]
    return [
        f"Question {i}: explain {topics[i % len(topics)]} to a curious reader in a few sentences." for i in range(n)
    ]


def metadata(
    name: str,
    *,
    seed: int = 0,
    system: str | None = None,
    adaptation: str = "response",
    dataset: str = "offline_instructions",
    source: str = "fixture",
    claimed: dict | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "schema_version": 1,
        "name": name,
        "model": {
            "id": f"example/{name}",
            "revision": "0123456789abcdef0123456789abcdef01234567",
            "base_model": "example/base-270m",
        },
        "adaptation": adaptation,
        "seed": seed,
        "chat_format": "tulu",
        "decoding": {"strategy": "greedy", "temperature": 0.0, "top_p": 1.0, "max_new_tokens": 256},
        "judge": {"name": "test judge", "model": "example/judge", "backend": "hf", "template": "pairwise-v1"},
        "reference": {"generator": REFERENCE},
        "evaluation_set": {"dataset": dataset, "source": source},
        "license": "apache-2.0",
        "contact": "someone@example.org",
        "claimed": claimed or {},
    }
    if system is not None:
        meta["system"] = system
    meta.update(overrides)
    return meta


def write_submission(
    root: Path,
    name: str,
    instructions: list[str],
    *,
    win_probability: float = 0.4,
    leak_probability: float = 0.1,
    rank_probability: float = 0.7,
    rng_seed: int = 0,
    n_ranking: int | None = None,
    distractors: int = 5,
    with_claims: bool = True,
    **meta: Any,
) -> Path:
    """Write a complete submission folder; returns it. `meta` goes to `metadata()`."""
    rng = np.random.default_rng(rng_seed)
    folder = root / name
    folder.mkdir(parents=True)
    outputs = [
        {
            "instruction": text,
            "output": f"{name} answers: {text[:30]} #{rng.integers(1000)}",
            "generator": name,
            "dataset": "helpful_base",
        }
        for text in instructions
    ]
    for output in outputs:  # some answers leak a single-task style the detectors recognise
        if rng.random() < leak_probability:
            output["output"] += rng.choice(LEAKY_ENDINGS)
    # Preferences: wins, losses and a few exact draws (1.5).
    u = rng.random(len(instructions))
    preference = np.where(u < win_probability, 2.0, 1.0)
    preference[rng.random(len(instructions)) < 0.05] = 1.5
    # Reference answers as long as the model's, give or take: lengths carry no signal here.
    annotations = [
        {
            "instruction": o["instruction"],
            "output_1": "reference: " + "x" * max(1, len(o["output"]) + int(rng.integers(-30, 31))),
            "output_2": o["output"],
            "generator_1": REFERENCE,
            "generator_2": name,
            "preference": float(p),
            "annotator": "test judge",
        }
        for o, p in zip(outputs, preference)
    ]
    from implicit_if.leakage import leakage_records

    leakage = leakage_records([o["output"] for o in outputs])
    leak = np.array([[row[d] for d in DETECTORS] for row in leakage], dtype=bool).reshape(len(outputs), len(DETECTORS))
    n_ranking = n_ranking or len(instructions)
    if n_ranking != len(instructions) or distractors != 5:
        meta.setdefault("ranking_plan", {"n_pairs": n_ranking, "distractors": distractors, "seed": 0})
    from implicit_if.ranking import plan_comparisons

    plan = plan_comparisons(n_ranking, distractors, 0)  # the comparisons the checker regenerates
    ranking, beaten = [], []
    for i in range(n_ranking):
        true = float(-1.0 - rng.random())
        ranking.append(
            {
                "instruction_id": i,
                "response_id": i,
                "logprob": true * 10,
                "n_tokens": 10,
                "instruction_key": f"alpaca-{i}",
                "response_key": f"alpaca-{i}",
            }
        )
        wins = 0
        for j in plan.distractors[i]:
            better = rng.random() < rank_probability
            score = true - 0.5 if better else true + 0.5
            wins += better
            ranking.append(
                {
                    "instruction_id": i,
                    "response_id": j,
                    "logprob": score * 20,
                    "n_tokens": 20,
                    "instruction_key": f"alpaca-{i}",
                    "response_key": f"alpaca-{j}",
                }
            )
        beaten.append(wins / distractors)
    claims = {}
    if with_claims:
        claims = {
            "win_rate": round(float(np.mean(preference - 1) * 100), 2),
            "ranking_accuracy": round(float(np.mean(beaten) * 100), 2),
            "leakage": {d: round(float(leak[:, j].mean() * 100), 2) for j, d in enumerate(DETECTORS)},
        }
    write_json(folder / "metadata.json", metadata(name, claimed=claims, **meta))
    write_json(folder / "outputs.json", outputs)
    write_json(folder / "annotations.json", annotations)
    write_jsonl(folder / "ranking.jsonl", ranking)
    write_jsonl(folder / "leakage.jsonl", leakage)
    return folder


def write_json(path: Path, payload: Any) -> None:
    path.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def edit_json(path: Path, change) -> None:
    """Load, let `change` mutate, write back."""
    payload = read_json(path)
    change(payload)
    write_json(path, payload)


@pytest.fixture()
def isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """IMPLICIT_IF_CACHE in one temp folder for the whole session: the LC fits cached there (keyed by
    file content) are shared by tests that write the same synthetic submissions."""
    root = tmp_path_factory.getbasetemp() / "leaderboard-cache"
    root.mkdir(exist_ok=True)
    monkeypatch.setenv("IMPLICIT_IF_CACHE", str(root))
    return root
