"""Assemble a submission folder from the harness's own outputs, validated before it appears.

The records come from `implicit-if generate / judge / rank / leak` files or from an lm_eval
results folder (`lm_eval_results.py`); the metadata from the caller, completed with what the
records themselves say (judge and reference names, model provenance). The folder is written
beside the submissions folder, checked with exactly the rules of `leaderboard check`, and only
then moved into place: a failed submit leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..io import atomic_write_json
from ..models.identity import embedded_identity, weights_digest
from ..records import Kind, RecordError, read_records, validate_records, write_records
from . import safety
from .check import Entry, check_across, check_submission, check_submissions
from .evaluation_sets import EvaluationSetError, EvaluationSets
from .metrics import instruction_key
from .problems import Problem, SubmissionError, errors, refuse
from .schema import SAFE_NAME, SCHEMA_VERSION, SubmissionMetadata

KINDS: tuple[Kind, ...] = ("outputs", "annotations", "ranking", "leakage")  # in safety.RECORD_FILES' order


@dataclass
class Collected:
    """Per-item records found for one run, plus what they reveal about the run."""

    outputs: list[dict[str, Any]] | None = None
    annotations: list[dict[str, Any]] | None = None
    ranking: list[dict[str, Any]] | None = None
    leakage: list[dict[str, Any]] | None = None
    claimed: dict[str, Any] = field(default_factory=dict)  # numbers a results file reports (percent)
    hints: dict[str, Any] = field(default_factory=dict)  # metadata the run reveals (model, format, ...)


def read_json_file(path: Path, what: str) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        refuse(str(path), "does not exist", f"pass the {what} file written by the harness")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        refuse(str(path), f"is not valid JSON ({exc})", f"pass the {what} file as written")


def read_record_file(path: Path, kind: Kind) -> list[dict[str, Any]]:
    """A record file through the one reader (`implicit_if.records`), its error as a SubmissionError."""
    try:
        return read_records(path, kind)
    except RecordError as error:
        refuse(error.path if error.line is None else f"{error.path}:{error.line}", error.problem, error.fix)


def collect_files(
    outputs: Path | None = None,
    annotations: Path | None = None,
    ranking: Path | None = None,
    leakage: Path | None = None,
    into: Collected | None = None,
) -> Collected:
    """Explicit CLI output files; each one given replaces what `into` (e.g. lm_eval results) had."""
    collected = into or Collected()
    if outputs is not None:
        collected.outputs = read_record_file(outputs, "outputs")
    if annotations is not None:
        collected.annotations = read_record_file(annotations, "annotations")
    if ranking is not None:
        collected.ranking = read_record_file(ranking, "ranking")
    if leakage is not None:
        collected.leakage = read_record_file(leakage, "leakage")
    return collected


# -- metadata ------------------------------------------------------------------------------------


def judge_from_annotations(annotations: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The judge as the annotations name it (`annotator`), described from its spec when known."""
    names = sorted({str(a["annotator"]) for a in annotations if a.get("annotator")})
    if len(names) != 1:
        return None
    annotator = names[0]
    configs = sorted({str(a["judge_config"]) for a in annotations if a.get("judge_config")})
    template = f"judge_config {configs[0]}" if len(configs) == 1 else "unknown"
    try:
        from implicit_if.judging import load_judge_spec

        spec = load_judge_spec(annotator)
    except Exception:
        return {"name": annotator, "model": annotator, "backend": "unknown", "template": template}
    model = embedded_identity(spec.model)
    model_name = model[0] if model else spec.model
    backend = getattr(spec, "backend", None) or spec.kind
    described = f"{model_name} via {backend} ({spec.kind} judge)"
    if re.fullmatch(r"[A-Za-z0-9._-]+", spec.name):  # a named spec; ad-hoc ones are named by their path
        described = f"{spec.name}: {described}"
    return {
        "name": described,
        "model": model_name,
        "revision": model[1] if model else None,
        "backend": str(backend),
        "template": f"{spec.kind}; {template}",
    }


def complete_metadata(given: dict[str, Any], collected: Collected) -> dict[str, Any]:
    """Fill what the records reveal into the caller's metadata (the caller's values win)."""
    meta = json.loads(json.dumps(given))  # deep copy
    hints = collected.hints
    meta.setdefault("schema_version", SCHEMA_VERSION)
    model = meta.setdefault("model", {})
    if not model.get("id") and hints.get("model"):
        model["id"] = hints["model"]
    if model.get("id"):
        embedded = embedded_identity(str(model["id"]))
        if embedded:
            model["id"] = embedded[0]
            model.setdefault("revision", embedded[1])
        elif Path(str(model["id"])).is_dir():  # a local path means nothing on a public board
            digest = weights_digest(Path(model["id"]))
            pin = f" and --revision {digest}" if digest and "revision" not in model else ""
            refuse("metadata", f"model.id {model['id']!r} is a local folder", f"pass --model-id: its public name{pin}")
    if meta.get("adaptation") == "base" and model.get("id"):
        model.setdefault("base_model", model["id"])
    meta.setdefault("seed", 0)
    if "ranking_plan" in hints:
        meta.setdefault("ranking_plan", hints["ranking_plan"])
    meta.setdefault("chat_format", hints.get("chat_format", "tulu"))
    decoding = meta.setdefault("decoding", {})
    for key, value in hints.get("decoding", {}).items():
        decoding.setdefault(key, value)
    if collected.annotations:
        if "judge" not in meta:
            judge = judge_from_annotations(collected.annotations)
            if judge:
                meta["judge"] = judge
        if "reference" not in meta:
            generators = sorted({str(a.get("generator_1", "")) for a in collected.annotations})
            if len(generators) == 1 and generators[0]:
                meta["reference"] = {"generator": generators[0]}
    return meta


# -- assembling -----------------------------------------------------------------------------------


# Without a hint: the study's set from the hub, else the project's own offline set (the bundled
# alpaca_eval fixture holds the same instructions, so the honest name for them is the offline one).
DEFAULT_CANDIDATES = (("alpaca_eval", "hub"), ("offline_instructions", "fixture"), ("alpaca_eval", "fixture"))


def infer_evaluation_set(
    outputs: list[dict[str, Any]], dataset: str | None, evaluation_sets: EvaluationSets, source: str | None = None
) -> dict[str, str]:
    """The first candidate set that holds every output's instruction (matched by text)."""
    wanted = {instruction_key(o["instruction"]) for o in outputs}
    if dataset:
        candidates: tuple[tuple[str, str], ...] = (
            ((dataset, source),) if source else ((dataset, "hub"), (dataset, "fixture"))
        )
    else:
        candidates = DEFAULT_CANDIDATES
    reasons = []
    for name, source in candidates:
        try:
            _, index_of = evaluation_sets.get(name, source)
        except EvaluationSetError as exc:
            reasons.append(f"{name} ({source}): {exc.message}")
            continue
        if wanted <= set(index_of):
            return {"dataset": name, "source": source}
        reasons.append(f"{name} ({source}): {len(wanted - set(index_of))} instructions not in it")
    refuse("outputs", f"the outputs match no evaluation set ({'; '.join(reasons)})", "pass --dataset naming their set")


def build_submission(
    collected: Collected,
    metadata: dict[str, Any],
    submissions: Path,
    *,
    evaluation_sets: EvaluationSets | None = None,
    scan_leakage: bool = True,
    force: bool = False,
) -> tuple[Path, list[Problem]]:
    """Write `submissions/<name>/` from `collected`; returns (folder, warnings). Raises SubmissionError."""
    evaluation_sets = evaluation_sets or EvaluationSets()
    name = str(metadata.get("name", ""))
    if not re.fullmatch(SAFE_NAME, name):
        refuse(name or "(no name)", "is not a usable submission name", "pass --name: a-z, 0-9, '.', '_', '-' (max 80)")
    target = submissions / name
    if (target.exists() or target.is_symlink()) and not force:
        refuse(name, f"already exists in {submissions}", "pick another --name or pass --force")
    if collected.outputs is None and collected.ranking is None:
        refuse(name, "nothing to submit", "pass RESULTS (lm_eval --output_path) or --outputs and/or --ranking files")
    if collected.annotations is not None and collected.outputs is None:
        refuse(name, "annotations without outputs", "pass --outputs too")
    for kind in KINDS:  # records from lm_eval samples have not met the record reader yet
        try:
            validate_records(getattr(collected, kind) or [], kind, f"the {kind} records")
        except RecordError as error:
            refuse(name, f"{error.path}: {error.problem}", error.fix)
    meta = complete_metadata({**metadata, "name": name}, collected)
    if collected.outputs is not None and "evaluation_set" not in meta:
        meta["evaluation_set"] = infer_evaluation_set(
            collected.outputs, collected.hints.get("dataset"), evaluation_sets, collected.hints.get("source")
        )
    if collected.outputs is not None and collected.leakage is None and scan_leakage:
        from implicit_if.leakage import leakage_records

        collected.leakage = leakage_records([o["output"] for o in collected.outputs])

    submissions.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".submit-{name}-", dir=submissions.parent))
    try:
        folder = staging / name
        folder.mkdir()
        for kind, file in zip(KINDS, safety.RECORD_FILES):
            if getattr(collected, kind) is not None:
                write_records(folder / file, getattr(collected, kind))
        meta.pop("claimed", None)
        atomic_write_json(folder / safety.METADATA, _in_schema_order(meta))
        entry, _ = _checked(folder, name, evaluation_sets)
        meta["claimed"] = _claims(entry, collected.claimed)
        atomic_write_json(folder / safety.METADATA, _in_schema_order(meta))
        entry, warnings = _checked(folder, name, evaluation_sets)  # the claims, as the board will check them
        others, _ = check_submissions(submissions, evaluation_sets)
        clashes = errors(check_across([e for e in others if e.name != name] + [entry], only=[name]))
        if clashes:
            raise SubmissionError(clashes)
        if target.exists():
            shutil.rmtree(target)
        os.replace(folder, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target, warnings


def _in_schema_order(meta: dict[str, Any]) -> dict[str, Any]:
    """Keys in the schema's order (unknown ones last, for the check to report), for readable diffs."""
    order = list(SubmissionMetadata.model_fields)
    return {key: meta[key] for key in sorted(meta, key=lambda k: (order.index(k) if k in order else len(order), k))}


def _checked(folder: Path, name: str, evaluation_sets: EvaluationSets) -> tuple[Entry, list[Problem]]:
    """The entry and its warnings; raises SubmissionError with the errors."""
    entry, problems = check_submission(folder, name, evaluation_sets)
    if entry is None or errors(problems):
        raise SubmissionError(errors(problems) or problems)
    return entry, problems


def _claims(entry: Entry, reported: dict[str, Any]) -> dict[str, Any]:
    """The run's own numbers when it reported them (so `check` verifies them), else ours."""
    recomputed = entry.recomputed()
    claims: dict[str, Any] = {}
    for key in ("win_rate", "lc_win_rate", "ranking_accuracy"):
        value = reported.get(key, recomputed[key])
        if value is not None:
            claims[key] = round(float(value), 4)
    leakage = recomputed["leakage"]
    assert isinstance(leakage, dict)
    claims["leakage"] = {d: round(float(reported.get("leakage", {}).get(d, v)), 4) for d, v in sorted(leakage.items())}
    if not claims["leakage"]:
        del claims["leakage"]
    return claims
