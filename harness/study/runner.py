"""Train the study's missing checkpoints (each in its own process), evaluate every checkpoint, submit them.

Evaluation is the pipeline's run (`pipeline.run`: greedy outputs, judge, leakage, ranking,
each stage cached by its inputs), with one change the study makes: the reference is the
instruction-tuned checkpoint of the same seed, not the evaluation set's reference answers.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .. import pipeline
from ..demo import LICENSE
from ..pipeline import RunResult, RunSpec, submit_run
from ..train.checkpoint import CHECKPOINTS, PROVENANCE_FILE
from .plan import BASE_MODEL, StudyRun, checkpoint_dir, is_trained


def train_command(run: StudyRun, folder: Path, *, quiet: bool) -> list[str]:
    # Resume from the last checkpoint; with none (killed before the first), start over: the folder is
    # the study's own cache and holds no finished model (those are never retrained).
    return [
        sys.executable,
        "-m",
        "implicit_if.train",
        "--recipe",
        run.recipe,
        "--output",
        str(folder),
        "--resume",
        "auto",
        "--overwrite",
        f"training.seed={run.seed}",
        *(["--quiet"] if quiet else []),
    ]


def train_missing(
    runs: list[StudyRun], root: Path, log: Callable[[str], None], *, quiet: bool = False, train: bool = True
) -> dict[str, Path]:
    """Each run's checkpoint folder, training those not finished (resuming from their last checkpoint).

    A separate process per run: training keeps its freed memory (see train/cpu_memory.py), and a
    crash or a kill loses at most the steps since the last checkpoint. `train=False` only finds
    the finished ones (the others are left out of the result).
    """
    folders = {}
    for run in runs:
        folder = checkpoint_dir(run, root)
        if is_trained(folder):
            log(f"[{run.entry_name}] trained already: {folder}")
            drop_resume_state(folder)
            folders[run.entry_name] = folder
            continue
        if not train:
            log(f"[{run.entry_name}] not trained yet: left out (--no-train)")
            continue
        folders[run.entry_name] = folder
        log(f"[{run.entry_name}] training with recipe {run.recipe} (seed {run.seed}) into {folder}")
        completed = subprocess.run(train_command(run, folder, quiet=quiet), check=False)
        if completed.returncode != 0 or not is_trained(folder):
            raise RuntimeError(
                f"training {run.entry_name} failed (exit {completed.returncode}); "
                "rerun to resume from its last checkpoint"
            )
        drop_resume_state(folder)
    return folders


def drop_resume_state(folder: Path) -> None:
    """A finished run needs only its model: the optimizer state (3 GB a Gemma 270M run) is for resuming."""
    shutil.rmtree(folder / CHECKPOINTS, ignore_errors=True)


BOARD = "study-gemma-3-270m"
REFERENCE_GENERATOR = "study-gemma-3-270m-instruction-same-seed"


@dataclass(frozen=True)
class StudyEntry:
    """One row's entry: what the demo's runner evaluates, plus what the submission records."""

    spec: RunSpec
    system: str
    seed: int
    adaptation: str  # the submission's adaptation field
    run: StudyRun | None = None  # None for the untrained base and the rules


def study_entries(runs: list[StudyRun], folders: dict[str, Path]) -> list[StudyEntry]:
    entries = [
        StudyEntry(
            RunSpec(f"study-{BASE_MODEL}-base", BASE_MODEL, "tulu", "base"), f"study-{BASE_MODEL}-base", 0, "base"
        ),
        StudyEntry(
            RunSpec(f"study-{BASE_MODEL}-rules-all", BASE_MODEL, "tulu", "rules", "eos,uniform,diversity"),
            f"study-{BASE_MODEL}-rules-all",
            0,
            "rules",
        ),
    ]
    for run in [r for r in runs if r.entry_name in folders]:
        adaptation = (
            run.adaptation if run.adaptation in ("instruction", "response") else f"single-task:{run.adaptation}"
        )
        name = f"study-{run.entry_name}"
        entries.append(
            StudyEntry(
                RunSpec(name, str(folders[run.entry_name]), "tulu", adaptation),
                f"study-{run.entry}",
                run.seed,
                adaptation,
                run,
            )
        )
    return entries


def reference_outputs(outputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """An instruction-tuned checkpoint's outputs as the reference of its seed (one generator name for every seed)."""
    return [{**o, "generator": REFERENCE_GENERATOR} for o in outputs]


def training_metadata(folder: Path) -> dict[str, Any]:
    provenance = json.loads((folder / PROVENANCE_FILE).read_text(encoding="utf-8"))
    recipe, data, run = provenance["recipe"], provenance["data"], provenance["training"]
    return {
        "recipe": recipe["name"],
        "recipe_digest": recipe["digest"],
        "dataset": data["dataset"],
        "data_fingerprint": data["fingerprint"],
        "trained_parameters": run.get("trained_parameters", "all"),
        "steps": run["steps"],
        "epochs": round(float(run["epochs"]), 4),
    }


def evaluate(
    entries: list[StudyEntry],
    out: Path,
    *,
    judge: str,
    max_new_tokens: int,
    log: Callable[[str], None],
    limit: int | None = None,
    rank_all: bool = True,
) -> list[tuple[StudyEntry, Any]]:
    """Every entry through the harness; the instruction-tuned entry of each seed is the others' reference.

    The references are generated first; an entry whose seed has no reference checkpoint is
    judged against seed 0's. `rank_all=False` ranks only the base model and the instruction-tuned
    checkpoints (the study's own ranking comparison), which saves minutes per entry on a CPU.
    """

    def spec(entry: StudyEntry, **changes: Any) -> RunSpec:
        return replace(entry.spec, limit=limit, max_new_tokens=max_new_tokens, judge=judge, **changes)

    results: list[tuple[StudyEntry, RunResult]] = []
    references: dict[int, list[dict[str, Any]]] = {}
    for entry in [e for e in entries if e.adaptation == "instruction"]:
        result = pipeline.run(spec(entry, judged=False), out / entry.spec.name, log)
        references[entry.seed] = reference_outputs(
            json.loads((result.folder / "outputs.json").read_text(encoding="utf-8"))
        )
        results.append((entry, result))
    if not references:
        raise RuntimeError("no instruction-tuned checkpoint to judge against: train the instruction recipe first")
    for entry in [e for e in entries if e.adaptation != "instruction"]:
        reference = references.get(entry.seed, references[min(references)])
        ranked = rank_all or entry.adaptation == "base"
        results.append(
            (entry, pipeline.run(spec(entry, ranked=ranked), out / entry.spec.name, log, references=reference))
        )
    return results


def submit(results: list[tuple[StudyEntry, RunResult]], submissions: Path, *, judge: str) -> list[Path]:
    from ..models.identity import weights_digest
    from ..models.registry import EMBEDDED_MODELS

    written = []
    base_revision = EMBEDDED_MODELS[BASE_MODEL].revision
    for entry, result in results:
        extra: dict[str, Any] = {
            "system": entry.system,
            "seed": entry.seed,
            "board": BOARD,
            "adaptation": entry.adaptation,
            "license": LICENSE,
            "notes": (
                f"The study in miniature (`implicit-if study`, docs/study.md): Gemma 3 270M base and checkpoints "
                f"of implicit-if's trainer, judged by {judge} against the instruction-tuned checkpoint of the same "
                "seed, as the study did; on CPU, greedy."
            ),
        }
        if entry.adaptation != "instruction":
            extra["reference"] = {
                "generator": REFERENCE_GENERATOR,
                "model": f"{BASE_MODEL} instruction-tuned",
                "description": "the instruction-tuned checkpoint of the same seed (the study's protocol)",
            }
        # the base model and the rules run the embedded weights themselves: named so, CI can re-score them
        model = {
            "id": BASE_MODEL if entry.run is None else entry.spec.name,
            "base_model": BASE_MODEL,
            "revision": base_revision,
        }
        if entry.run is not None:
            folder = Path(entry.spec.model)
            extra["training"] = training_metadata(folder)
            model["revision"] = weights_digest(folder)
        written.append(submit_run(result, submissions, model=model, extra=extra))
    return written
