"""Which checkpoints the study trains, and the cache folder of each (pure apart from reading recipes).

A checkpoint's folder is named by a digest of its resolved recipe (seed included) and of the
bytes of its training data, so a rerun finds it and trains nothing, and a changed recipe or data
set trains anew in another folder.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from ..data.fixtures import fixture_digest
from ..data.registry import get_spec
from ..train.recipes import Recipe, load_recipe

BASE_MODEL = "gemma-3-270m"
REFERENCE_ADAPTATION = "instruction"


@dataclass(frozen=True)
class StudyRun:
    entry: str  # board entry name, e.g. gemma-3-270m-response
    recipe: str  # bundled recipe name
    adaptation: str  # instruction | response | gsm | chess | poems
    seed: int

    @property
    def entry_name(self) -> str:
        return f"{self.entry}-seed{self.seed}"


def study_runs(seeds: tuple[int, ...] = (0, 1), single_task_seeds: tuple[int, ...] = (0,)) -> list[StudyRun]:
    """Instruction (the reference) and response tuning for every seed, single-task tuning for fewer.

    In the order they train: the first seed's reference and response tuning, the single tasks,
    then the other seeds, so a stopped run has the most informative checkpoints first.
    """

    def pair(seed: int) -> list[StudyRun]:
        return [
            StudyRun(f"{BASE_MODEL}-instruction", f"{BASE_MODEL}-cpu-instruction", "instruction", seed),
            StudyRun(f"{BASE_MODEL}-response", f"{BASE_MODEL}-cpu-response", "response", seed),
        ]

    tasks = [
        StudyRun(f"{BASE_MODEL}-{task}", f"{BASE_MODEL}-cpu-{task}", task, seed)
        for seed in single_task_seeds
        for task in ("gsm", "poems", "chess")
    ]
    return pair(seeds[0]) + tasks + [run for seed in seeds[1:] for run in pair(seed)]


def resolved_recipe(run: StudyRun) -> Recipe:
    return load_recipe(run.recipe, {"training": {"seed": run.seed}})


def checkpoint_key(recipe: Recipe) -> str:
    """Digest of the resolved recipe and the training set's bytes."""
    data = fixture_digest(get_spec(recipe.data.dataset).fixture)
    return hashlib.sha256(f"{recipe.digest()}\n{recipe.data.dataset}\n{data}".encode()).hexdigest()


def checkpoint_dir(run: StudyRun, root: Path) -> Path:
    return root / f"{run.entry_name}-{checkpoint_key(resolved_recipe(run))[:12]}"


def is_trained(folder: Path) -> bool:
    """A model card is written last: its presence means the model directory is complete."""
    return (folder / "README.md").is_file() and (folder / "config.json").is_file()
