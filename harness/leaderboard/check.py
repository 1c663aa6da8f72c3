"""Validate submissions and turn each into an `Entry`: per-instruction values ready for the board.

Rules (each broken rule is one line naming the file and the fix):

- files: only known names, no links, no unsafe names, size limits, weights only as safetensors,
  nothing that needs `trust_remote_code` (see `safety.py`);
- metadata.json: schema v1 (`schema.py`); `name` equals the folder name;
- alignment: every output and annotation is matched to the evaluation set *by instruction text*
  (outer whitespace and line endings forgiven), never by position;
- completeness: every instruction of the set has exactly one output. An output is a string; the
  empty string is a valid answer (a model that stops at once) and loses to any non-empty
  reference, but an entry whose outputs are *all* empty is rejected as a broken run. Every
  output has exactly one annotation, judging that very output (output_2) against the
  reference named in the metadata (generator_1); preferences that are NaN or outside [1, 2]
  are dropped, as AlpacaEval does, and reported as a warning;
- leakage: every registered detector is run on outputs.json and only that measurement reaches the
  board; a leakage.jsonl, when present, must equal it exactly (one record per output, every
  detector's column and no unknown one, the same true/false values);
- duplicates: an instruction twice in a file; two entries with the same system and seed; two
  entries with identical outputs;
- claims: every number in `claimed` equals the one recomputed from the records (within 0.05
  points, so one-decimal rounding passes);
- a gap of more than 20 points between the LC and the raw win rate is flagged (a warning: it
  usually means length gaming or a broken judge);
- entries sharing a `system` must agree on everything but the seed and the model weights.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from .. import winrate
from ..leakage import leakage_rate
from ..winrate.bias import judge_bias
from ..winrate.plain import win_rate_percent
from ..winrate.preferences import PreferenceTable, preference_table
from . import metrics, records, safety
from .evaluation_sets import EvaluationSetError, EvaluationSets
from .parallel import parallel_map
from .problems import Problem, errors, row_problems
from .ranking_plan import plan_issues
from .recompute_cache import cached, package_source_digest
from .rejudge import SELF_REPORTED, judge_provenance
from .rescore import rescorable
from .schema import SAFE_NAME, SubmissionMetadata, format_validation_error

CLAIM_TOLERANCE = 0.05  # percentage points
LC_GAP_WARNING = 20.0  # percentage points between LC and raw win rate


SELF_REPORTED_PREFERENCES = "preferences"  # an API judge: CI cannot re-judge
SELF_REPORTED_LOGPROBS = "log-probabilities"  # CI does not hold the model (see rescore.py)


@dataclass
class Entry:
    """One checked submission, reduced to what the board needs."""

    name: str
    metadata: SubmissionMetadata
    n_instructions: int
    win: np.ndarray | None = None  # per instruction: preference - 1, NaN when dropped
    lc_win_rate: float | None = None
    lc_table: PreferenceTable | None = None  # the annotations as the LC GLM reads them (the board refits it)
    lc_positions: np.ndarray | None = None  # evaluation-set position of each lc_table row (-1: not in the set)
    leakage: dict[str, np.ndarray] = field(default_factory=dict)  # detector (and 'any') -> 0/1 per instruction
    ranking: dict[str, float] | None = None  # instruction_id -> fraction of distractors beaten
    ranking_positions: dict[str, int] = field(default_factory=dict)  # instruction_id -> its ranked-set position
    n_empty_outputs: int = 0
    n_dropped_preferences: int = 0
    judge_bias: dict[str, float | int | None] = field(default_factory=dict)  # see winrate.bias
    judge_configs: list[str] = field(default_factory=list)  # judge identities the annotations name
    outputs_digest: str | None = None
    flags: list[str] = field(default_factory=list)
    self_reported: list[str] = field(default_factory=list)  # what CI could not reproduce (see rejudge.py)

    @property
    def board_key(self) -> tuple[str, str, str]:
        return (self.metadata.board or "", self.metadata.evaluation_set.dataset, self.metadata.evaluation_set.source)

    def recomputed(self) -> dict[str, float | None | dict[str, float]]:
        return {
            "win_rate": win_rate_percent(self.win) if self.win is not None else None,
            "lc_win_rate": self.lc_win_rate,
            "ranking_accuracy": float(np.mean(list(self.ranking.values())) * 100) if self.ranking else None,
            "leakage": {name: leakage_rate(values) * 100 for name, values in self.leakage.items() if name != "any"},
        }


def submission_folders(submissions: Path) -> list[Path]:
    if not submissions.is_dir():
        return []
    return sorted(p for p in submissions.iterdir() if p.is_dir() or p.is_symlink())


def check_submissions(
    submissions: Path, evaluation_sets: EvaluationSets | None = None, only: list[str] | None = None
) -> tuple[list[Entry], list[Problem]]:
    """Check every folder under `submissions` (or just `only`), then the rules across entries."""
    evaluation_sets = evaluation_sets or EvaluationSets()
    problems: list[Problem] = []
    if not submissions.is_dir():
        return [], [Problem(str(submissions), "is not a folder", "point --submissions at leaderboards/submissions")]
    folders = submission_folders(submissions)
    stray = sorted(p.name for p in submissions.iterdir() if p.is_file() and p.name not in {"README.md", ".gitkeep"})
    problems += [
        Problem(name, "is a file where only submission folders belong", "move it into a submission folder")
        for name in stray
    ]
    if only:
        known = {f.name for f in folders}
        problems += [
            Problem(name, "no such submission folder", "pass the folder name under the submissions folder")
            for name in only
            if name not in known
        ]
    entries: list[Entry] = []
    checked = parallel_map(lambda f: check_submission(f, f.name, evaluation_sets), folders, "checking submissions")
    for folder, (entry, found) in zip(folders, checked):
        if only is None or folder.name in only:
            problems += found
        if entry is not None:
            entries.append(entry)
    problems += check_across(entries, only)
    return entries, sorted(set(problems), key=lambda p: (p.file, p.severity, p.message))


def check_submission(folder: Path, label: str, evaluation_sets: EvaluationSets) -> tuple[Entry | None, list[Problem]]:
    """One folder: every rule that does not need the other entries. Returns (entry or None, problems)."""
    if not re.fullmatch(SAFE_NAME, label):  # fullmatch: re's `$` would let a trailing newline through
        return None, [
            Problem(
                label,
                "is not a safe submission name",
                "rename the folder: lower-case letters, digits, '.', '_' and '-' (max 80)",
            )
        ]
    problems = safety.check_folder(folder, label)
    if errors(problems):
        return None, problems  # never read files from a folder that failed the file checks
    meta_path = folder / safety.METADATA
    where = f"{label}/{safety.METADATA}"
    try:
        raw = json.loads(meta_path.read_text(encoding="utf-8"))
        metadata = SubmissionMetadata.model_validate(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, problems + [Problem(where, f"is not valid JSON ({exc})", "fix the JSON syntax")]
    except RecursionError:
        return None, problems + [Problem(where, "nests JSON too deeply", "write the metadata as the schema shows")]
    except ValidationError as exc:
        return None, problems + [
            Problem(where, line, "see the metadata schema (docs/leaderboard.md)")
            for line in format_validation_error(exc)
        ]
    if metadata.name != label:
        problems.append(
            Problem(
                where,
                f"name {metadata.name!r} differs from the folder name {label!r}",
                "make metadata.name equal the folder name",
            )
        )
    present = {name for name in safety.RECORD_FILES if (folder / name).is_file()}
    problems += _presence_rules(present, metadata, label)
    if errors(problems):
        return None, problems
    try:
        instructions, index_of = evaluation_sets.get(metadata.evaluation_set.dataset, metadata.evaluation_set.source)
    except EvaluationSetError as exc:
        return None, problems + [Problem(where, f"evaluation_set: {exc.message}", exc.fix)]
    entry = Entry(name=label, metadata=metadata, n_instructions=len(instructions))
    outputs = None
    if safety.OUTPUTS in present:
        outputs, found = _check_outputs(folder / safety.OUTPUTS, f"{label}/{safety.OUTPUTS}", index_of, entry)
        problems += found
    if safety.ANNOTATIONS in present and outputs is not None:
        problems += _check_annotations(
            folder / safety.ANNOTATIONS, f"{label}/{safety.ANNOTATIONS}", outputs, index_of, entry
        )
    if outputs is not None:
        problems += _measure_leakage(folder, label, outputs, index_of, entry, safety.LEAKAGE in present)
    if safety.RANKING in present:
        problems += _check_ranking(folder / safety.RANKING, f"{label}/{safety.RANKING}", entry)
    if errors(problems):
        return None, problems
    problems += _check_claims(entry, where)
    return (None if errors(problems) else entry), problems


def _presence_rules(present: set[str], metadata: SubmissionMetadata, label: str) -> list[Problem]:
    where = f"{label}/{safety.METADATA}"
    outputs, annotations, ranking = safety.OUTPUTS, safety.ANNOTATIONS, safety.RANKING
    claimed = metadata.claimed
    rules = [  # (broken, file, message, fix)
        (
            not present & {outputs, ranking},
            label,
            "holds no measurement",
            f"add {outputs} (+ annotations/leakage) and/or {ranking}",
        ),
        *(
            (
                name in present and outputs not in present,
                f"{label}/{name}",
                f"needs {outputs} (its records refer to it)",
                f"add the {outputs} that were judged/scanned",
            )
            for name in (annotations, safety.LEAKAGE)
        ),
        (
            annotations in present and metadata.judge is None,
            where,
            "annotations are present but 'judge' is not set",
            "name the judge honestly: model, revision, backend and template",
        ),
        (
            annotations in present and metadata.reference is None,
            where,
            "annotations are present but 'reference' is not set",
            "name the reference outputs (generator_1 in annotations.json)",
        ),
        *(
            (
                getattr(claimed, claim) is not None and needed not in present,
                where,
                f"claims {claim} but {needed} is missing",
                f"add {needed} or remove the claim",
            )
            for claim, needed in (
                ("win_rate", annotations),
                ("lc_win_rate", annotations),
                ("ranking_accuracy", ranking),
            )
        ),
        (
            bool(claimed.leakage) and outputs not in present,
            where,
            f"claims leakage but {outputs} is missing",
            f"add the {outputs} the detectors should scan, or remove the claim",
        ),  # leakage is measured on the outputs
    ]
    return [Problem(file, message, fix) for broken, file, message, fix in rules if broken]


def _issues(where: str, issues: list[tuple[str, str]]) -> list[Problem]:
    return [Problem(where, message, fix) for message, fix in issues]


def _check_outputs(
    path: Path, where: str, index_of: dict[str, int], entry: Entry
) -> tuple[list[dict] | None, list[Problem]]:
    rows, issues = records.read_outputs(path)
    if rows is None:
        return None, _issues(where, issues)
    keys = [metrics.instruction_key(r["instruction"]) for r in rows]
    counts = Counter(keys)
    dataset = entry.metadata.evaluation_set.dataset
    problems = row_problems(
        where,
        [i for i, key in enumerate(keys) if key not in index_of],
        f"instruction not in the evaluation set {dataset!r} (matched by text)",
        "generate on exactly the evaluation set named in metadata.evaluation_set",
    ) + row_problems(
        where,
        [i for i, key in enumerate(keys) if counts[key] > 1],
        "instruction appears more than once",
        "keep one output per instruction",
    )
    missing = sorted(set(index_of.values()) - {index_of[k] for k in keys if k in index_of})
    if missing:
        problems.append(
            Problem(
                where,
                f"{len(missing)} of {entry.n_instructions} evaluation instructions have no "
                f"output (first: evaluation row {missing[0] + 1})",
                "answer every instruction of the evaluation set",
            )
        )
    empty = [i for i, r in enumerate(rows) if not r["output"].strip()]
    if rows and len(empty) == len(rows):
        problems.append(Problem(where, "every output is empty", "check the generation run (prompt format, stop words)"))
    entry.n_empty_outputs = len(empty)
    entry.outputs_digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return rows, problems


def _check_annotations(
    path: Path, where: str, outputs: list[dict], index_of: dict[str, int], entry: Entry
) -> list[Problem]:
    rows, issues = records.read_annotations(path)
    if rows is None:
        return _issues(where, issues)
    answer = {metrics.instruction_key(r["instruction"]): r["output"] for r in outputs}
    keys = [metrics.instruction_key(r["instruction"]) for r in rows]
    counts = Counter(keys)
    reference = entry.metadata.reference.generator if entry.metadata.reference else None
    problems = [
        *row_problems(
            where,
            [i for i, key in enumerate(keys) if key not in answer],
            "instruction has no output in outputs.json",
            "annotate exactly the submitted outputs",
        ),
        *row_problems(
            where,
            [i for i, key in enumerate(keys) if counts[key] > 1],
            "instruction judged more than once",
            "keep one annotation per instruction",
        ),
        *row_problems(
            where,
            [i for i, (key, r) in enumerate(zip(keys, rows)) if key in answer and r["output_2"] != answer[key]],
            "output_2 is not the submitted output",
            "judge the outputs in outputs.json (output_2 = model, output_1 = reference)",
        ),
        *row_problems(
            where,
            [i for i, r in enumerate(rows) if reference and r.get("generator_1", reference) != reference],
            f"generator_1 differs from metadata reference {reference!r}",
            "judge against the one reference named in metadata",
        ),
    ]
    unjudged = set(answer) - set(keys)
    if unjudged:
        problems.append(
            Problem(
                where,
                f"{len(unjudged)} outputs have no annotation",
                "judge every output (failed judgements stay, with preference NaN)",
            )
        )
    if problems:
        return problems
    entry.win, entry.n_dropped_preferences = metrics.win_values(rows, index_of, entry.n_instructions)
    if not np.isfinite(entry.win).any():
        return [Problem(where, "every preference is NaN or outside [1, 2]", "check the judge run")]
    if entry.n_dropped_preferences:
        problems.append(
            Problem(
                where,
                f"{entry.n_dropped_preferences} preferences are NaN or outside [1, 2] and were dropped",
                "re-run the judge on those items",
                "warning",
            )
        )
    entry.lc_win_rate = cached(  # keyed by the file and the LC code, as the board's resamples are
        "lc", [path.read_bytes(), package_source_digest(winrate)], lambda: metrics.length_controlled_win_rate(rows)
    )
    entry.lc_table = preference_table(rows)
    entry.lc_positions = np.asarray(
        [index_of.get(metrics.instruction_key(text), -1) for text in entry.lc_table.instruction], dtype=int
    )
    entry.judge_bias = judge_bias(rows)
    entry.judge_configs = sorted({str(r["judge_config"]) for r in rows if r.get("judge_config")})
    if judge_provenance(rows) == SELF_REPORTED:
        entry.self_reported.append(SELF_REPORTED_PREFERENCES)
    return problems


def detector_verdicts(outputs_content: bytes, outputs: list[dict]) -> list[dict[str, bool]]:
    """Every registered detector's verdict on every output, in outputs.json's order (cached by the
    file's bytes and the detectors' source). The board's leakage comes only from here."""
    from implicit_if import leakage

    names = list(leakage.DETECTORS)

    def compute() -> list[list[bool]]:
        return [[found[d] for d in names] for found in (leakage.detect(o["output"], names) for o in outputs)]

    table = cached("detect", [outputs_content, json.dumps(names).encode(), package_source_digest(leakage)], compute)
    return [dict(zip(names, row)) for row in table]


def _measure_leakage(
    folder: Path, label: str, outputs: list[dict], index_of: dict[str, int], entry: Entry, with_records: bool
) -> list[Problem]:
    """Run the detectors on outputs.json; a submitted leakage.jsonl must equal their verdicts exactly."""
    from implicit_if.leakage import DETECTORS

    detectors = list(DETECTORS)
    verdicts = detector_verdicts((folder / safety.OUTPUTS).read_bytes(), outputs)
    entry.leakage = metrics.leakage_values(verdicts, outputs, index_of, entry.n_instructions, detectors)
    if not with_records:
        return []
    return _compare_leakage_records(folder / safety.LEAKAGE, f"{label}/{safety.LEAKAGE}", outputs, verdicts, detectors)


def _compare_leakage_records(
    path: Path, where: str, outputs: list[dict], verdicts: list[dict[str, bool]], detectors: list[str]
) -> list[Problem]:
    rows, issues = records.read_leakage(path, detectors)
    if rows is None:
        return _issues(where, issues)
    counts = Counter(r["index"] for r in rows)
    problems = row_problems(
        where,
        [i for i, r in enumerate(rows) if counts[r["index"]] > 1],
        "index appears more than once",
        "one record per output",
    ) + row_problems(
        where,
        metrics.misplaced_leakage_rows(rows, outputs),
        "index is past the end of outputs.json or its instruction differs from that output's",
        "scan the submitted outputs.json, in its order",
    )
    unscanned = len(outputs) - len(set(counts) & set(range(len(outputs))))
    if unscanned:
        problems.append(
            Problem(where, f"{unscanned} outputs have no leakage record", "scan every output in outputs.json")
        )
    if problems:
        return problems
    return row_problems(
        where,
        [i for i, row in enumerate(rows) if any(row[d] != verdicts[row["index"]][d] for d in detectors)],
        "the detectors find otherwise in that output",
        f"regenerate the records: {records.LEAKAGE_COMMAND}",
    )


def _check_ranking(path: Path, where: str, entry: Entry) -> list[Problem]:
    rows, issues = records.read_ranking(path)
    if rows is None:
        return _issues(where, issues)
    values, issues = metrics.ranking_values(rows)
    if issues:
        return _issues(where, issues)
    plan = entry.metadata.ranking_plan
    issues = plan_issues(rows, plan.n_pairs or entry.n_instructions, plan.distractors, plan.seed)
    if issues:
        return _issues(where, issues)
    if not values:
        return [Problem(where, "holds no scored instruction", "score the ranking set or remove the file")]
    entry.ranking = values
    assert rows.positions is not None  # plan_issues refuses ids that are not positions
    entry.ranking_positions = {rows.ids[int(c)]: int(at) for c, at in zip(rows.instruction, rows.positions[0])}
    if rescorable(entry.metadata.model.id, entry.metadata.model.revision):  # a reason: CI cannot re-score them
        entry.self_reported.append(SELF_REPORTED_LOGPROBS)
    return []


def _check_claims(entry: Entry, where: str) -> list[Problem]:
    problems = []
    recomputed = entry.recomputed()
    claims = entry.metadata.claimed
    leakage = recomputed["leakage"]
    assert isinstance(leakage, dict)
    # (name, claimed, recomputed); a detector this harness does not run recomputes as None
    checked = [
        (name, getattr(claims, name), recomputed[name]) for name in ("win_rate", "lc_win_rate", "ranking_accuracy")
    ]
    checked += [(f"leakage.{d}", claimed, leakage.get(d)) for d, claimed in sorted(claims.leakage.items())]
    for name, claimed, actual in checked:
        if claimed is None:
            continue
        if actual is None and name.startswith("leakage."):
            problems.append(
                Problem(
                    where,
                    f"claimed leakage for unknown detector {name.removeprefix('leakage.')!r}",
                    f"use one of {', '.join(sorted(leakage)) or '(none)'}",
                )
            )
        elif actual is None:  # the LC fit needs preferences in both classes; the records cannot give it
            problems.append(
                Problem(where, f"claimed {name} {claimed} cannot be recomputed from the records", "drop the claim")
            )
        elif abs(claimed - actual) > CLAIM_TOLERANCE + 1e-9:
            problems.append(
                Problem(
                    where,
                    f"claimed {name} {claimed} but the records give {actual:.2f}",
                    f"set claimed.{name} to {actual:.2f} (or fix the records)",
                )
            )
    training = entry.metadata.training
    if training is not None and training.trained_parameters != "all":
        entry.flags.append(
            f"not full fine-tuning ({training.trained_parameters} trained; the study trained every parameter)"
        )
    wr, lc = recomputed["win_rate"], recomputed["lc_win_rate"]
    if isinstance(wr, float) and isinstance(lc, float) and math.isfinite(wr) and abs(lc - wr) > LC_GAP_WARNING:
        entry.flags.append(f"LC and raw win rate differ by {abs(lc - wr):.1f} points")
        problems.append(
            Problem(
                where,
                f"suspicious gap: LC win rate {lc:.1f} vs raw {wr:.1f} (more than {LC_GAP_WARNING:.0f} points)",
                "look for length gaming or a broken judge; explain it in notes",
                "warning",
            )
        )
    return problems


# Fields that must agree between seeds of one system (the weights themselves may differ).
SYSTEM_FIELDS = ("board", "adaptation", "chat_format", "decoding", "judge", "reference", "evaluation_set")


def check_across(entries: list[Entry], only: list[str] | None = None) -> list[Problem]:
    problems: list[Problem] = []

    def report(entry: Entry, message: str, fix: str) -> None:
        if only is None or entry.name in only:
            problems.append(Problem(f"{entry.name}/{safety.METADATA}", message, fix))

    seen: dict[tuple[str, int], Entry] = {}
    first_of_system: dict[str, Entry] = {}
    digests: dict[str, Entry] = {}
    for entry in sorted(entries, key=lambda e: e.name):
        meta = entry.metadata
        key = (meta.system_name, meta.seed)
        twin = seen.setdefault(key, entry)
        if twin is not entry:  # name the clash on both sides, so either folder's check shows it
            for one, other in ((entry, twin), (twin, entry)):
                report(
                    one,
                    f"system {meta.system_name!r} seed {meta.seed} is also submitted as {other.name!r}",
                    "give each seed its own seed number, or remove the duplicate",
                )
        first = first_of_system.setdefault(meta.system_name, entry)
        differing = [f for f in SYSTEM_FIELDS if getattr(first.metadata, f) != getattr(meta, f)]
        if first.metadata.model.base_model != meta.model.base_model:
            differing.insert(0, "model.base_model")
        if differing:
            for one, other in ((entry, first), (first, entry)):
                report(
                    one,
                    f"shares system {meta.system_name!r} with {other.name!r} but differs in {', '.join(differing)}",
                    "entries of one system may differ only by seed and weights; give it its own 'system'",
                )
        if entry.outputs_digest is not None:
            twin = digests.setdefault(entry.outputs_digest, entry)
            if twin is not entry:
                for one, other in ((entry, twin), (twin, entry)):
                    report(one, f"outputs.json is identical to {other.name!r}'s", "submit each run once")
    return problems
