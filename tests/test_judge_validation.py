"""The judge-validation set and the table's arithmetic."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from implicit_if.judging.validate import (
    BLATANT,
    PAIRS_FILE,
    PairVerdicts,
    baseline_verdicts,
    correctness,
    load_pairs,
    summarise,
)

CATEGORIES = {
    "factual",
    "constraint",
    "off_topic",
    "truncation",
    "loop",
    "refusal",
    "code",
    "arithmetic",
    "verbose",
    "debris",
}


def test_the_set_has_its_promised_shape() -> None:
    pairs = load_pairs("all")
    assert len(pairs) >= 240 and len({p.id for p in pairs}) == len(pairs)
    assert len({p.instruction for p in pairs}) == len(pairs)
    assert {p.category for p in pairs} >= CATEGORIES and set(BLATANT) <= CATEGORIES
    counts = Counter((p.category, p.split) for p in pairs)
    assert all(counts[(c, "heldout")] >= 12 and counts[(c, "dev")] >= 6 for c in CATEGORIES)
    assert sum(p.shorter_is_better for p in pairs) >= len(pairs) / 3  # length alone cannot pass
    assert all(p.better != p.worse for p in pairs)
    assert len(load_pairs("heldout")) + len(load_pairs("dev")) == len(pairs)


def test_no_validation_instruction_is_an_evaluation_instruction() -> None:
    fixtures = Path(PAIRS_FILE).parents[2] / "data" / "fixtures"
    evaluation = {
        json.loads(line)["instruction"].strip().lower()
        for line in (fixtures / "general.jsonl").read_text().splitlines()
        if line.strip()
    }
    assert not [p.id for p in load_pairs("all") if p.instruction.strip().lower() in evaluation]


def test_a_bad_line_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "pairs.jsonl"
    bad.write_text(PAIRS_FILE.read_text().splitlines()[0] + '\n{"id": 3}\n')
    with pytest.raises(ValueError, match=r"pairs.jsonl:2: not a validation pair"):
        load_pairs("all", bad)


def _verdicts(first: float, second: float) -> PairVerdicts:
    pair = load_pairs("all")[0]
    return PairVerdicts(pair=pair, p_better_when_first=first, p_better_when_second=second)


def test_scoring_rules() -> None:
    assert correctness(_verdicts(0.9, 0.8), averaged=True) == 1.0
    assert correctness(_verdicts(0.9, 0.2), averaged=False) == 0.5  # position-bound: right in one order only
    assert correctness(_verdicts(0.9, 0.2), averaged=True) == 1.0  # the average still leans right
    assert correctness(_verdicts(0.5, 0.5), averaged=True) == 0.5
    assert correctness(_verdicts(None, None), averaged=True) == 0.5


def test_baselines_and_biases() -> None:
    pairs = load_pairs("all")
    longest = summarise(baseline_verdicts(pairs, "longest"), averaged=True)
    share_longer_better = sum(len(p.better) > len(p.worse) for p in pairs) / len(pairs)
    ties = sum(len(p.better) == len(p.worse) for p in pairs) / len(pairs)
    assert longest["accuracy"]["estimate"] == pytest.approx(share_longer_better + ties / 2)
    assert longest["position_consistency"]["estimate"] == 1.0
    assert longest["accuracy_shorter_better"]["estimate"] == 0.0
    # a judge that always picks the first shown: consistency 0, P(first) 1, accuracy one half
    always_first = [PairVerdicts(pair=p, p_better_when_first=1.0, p_better_when_second=0.0) for p in pairs]
    row = summarise(always_first, averaged=False)
    assert row["p_prefers_first"]["estimate"] == 1.0 and row["position_consistency"]["estimate"] == 0.0
    assert row["accuracy"]["estimate"] == 0.5
    random_row = summarise(baseline_verdicts(pairs, "random", seed=0), averaged=True)
    assert random_row["accuracy"]["ci_low"] < 0.5 < random_row["accuracy"]["ci_high"]
    assert summarise(baseline_verdicts(pairs, "random", seed=0), True) == random_row  # seeded
