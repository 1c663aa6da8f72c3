"""Read the per-item record files of a submission, tolerantly but never silently.

Extra fields are ignored (the records are a contract between stages that may grow), but every
field the board needs is checked against the record models of `implicit_if.records` (the one
definition of the fields), and every row that breaks a rule is reported by its row number. The exception is
leakage.jsonl: its columns are the detectors' own, so an unknown or missing column is an error. Each reader
returns `(rows, problems)`; `problems` are `(message, fix)` pairs the caller turns into lines
naming the file.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..records import FIXES, Kind, RecordError, parse_records, row_errors
from .problems import rows_text

Issue = tuple[str, str]  # (message, fix)

OUTPUTS_FIX, ANNOTATIONS_FIX, RANKING_FIX, LEAKAGE_FIX = (
    FIXES[kind] for kind in ("outputs", "annotations", "ranking", "leakage")
)
LEAKAGE_COMMAND = "implicit-if leak outputs.json --records leakage.jsonl"
# Columns a leakage record may carry besides the detectors: its pointer into outputs.json and copies
# of that output's identity (`instruction`, when present, must match the output it points at).
LEAKAGE_ID_COLUMNS = frozenset({"index", "instruction", "id", "instruction_id", "output", "generator", "dataset"})


def _parse(path: Path, kind: Kind) -> tuple[list[Any] | None, list[Issue]]:
    """The file's JSON values through the one record parser (`implicit_if.records`), its error as an issue."""
    try:
        return parse_records(path, kind)[0], []
    except RecordError as error:
        return None, [(("" if error.line is None else f"line {error.line}: ") + error.problem, error.fix)]


# A rule: (message, fix, the model fields it covers, which of their errors it counts). The board is
# more tolerant than the models where it always was: any non-null id, any preference (an unusable
# one is dropped later, with a warning).
Rule = tuple[str, str, frozenset[str], Callable[[dict[str, Any]], bool]]


def _any(error: dict[str, Any]) -> bool:
    return True


def _missing(error: dict[str, Any]) -> bool:
    return error["type"] == "missing"


def _missing_or_null(error: dict[str, Any]) -> bool:
    return error["type"] == "missing" or error["input"] is None


def _collect(rows: list[Any], kind: Kind, rules: list[Rule]) -> list[Issue]:
    """Validate the rows against `kind`'s model; one issue per rule that any row breaks."""
    errors = row_errors(rows, kind)
    if not errors:
        return []
    not_objects = sorted({e["loc"][0] for e in errors if len(e["loc"]) == 1})
    if not_objects:
        return [(f"{rows_text(not_objects)}: not a JSON object", "make every record a JSON object")]
    issues: list[Issue] = []
    for message, fix, fields, counts in rules:
        bad = sorted({e["loc"][0] for e in errors if e["loc"][1] in fields and counts(e)})
        if bad:
            issues.append((f"{rows_text(bad)}: {message}", fix))
    return issues


RULES: dict[Kind, list[Rule]] = {
    "outputs": [
        ("'instruction' is missing or not a string", OUTPUTS_FIX, frozenset({"instruction"}), _any),
        (
            "'output' is missing or not a string (an empty answer is the empty string \"\", never null)",
            'write "" for a model that answered nothing',
            frozenset({"output"}),
            _any,
        ),
    ],
    "annotations": [
        ("'instruction' is missing or not a string", ANNOTATIONS_FIX, frozenset({"instruction"}), _any),
        (
            "'output_1' (reference) or 'output_2' (model) is missing or not a string",
            ANNOTATIONS_FIX,
            frozenset({"output_1", "output_2"}),
            _any,
        ),
        (
            "'preference' is missing",
            "keep the judge's preference (NaN/null when it failed; it is then dropped)",
            frozenset({"preference"}),
            _missing,
        ),
    ],
    "ranking": [
        (
            "'instruction_id' or 'response_id' is missing",
            RANKING_FIX,
            frozenset({"instruction_id", "response_id"}),
            _missing_or_null,
        ),
        (
            "'logprob' is missing or not a finite number",
            "score every pair; a failed score must not be written",
            frozenset({"logprob"}),
            _any,
        ),
        (
            "'n_tokens' is missing or not a positive integer",
            "record the number of response tokens scored",
            frozenset({"n_tokens"}),
            _any,
        ),
        (
            "'roles' is not a list of strings",
            "keep the roles `implicit-if rank` writes, or leave the field out",
            frozenset({"roles"}),
            _any,
        ),
    ],
    "leakage": [
        (
            "'index' is missing or not a non-negative integer",
            "index is the record's position in outputs.json",
            frozenset({"index"}),
            _any,
        ),
    ],
}


def read_rows(path: Path, kind: Kind) -> tuple[list[dict[str, Any]] | None, list[Issue]]:
    """A record file's rows when every row keeps `kind`'s rules; else None and one issue per broken rule."""
    rows, issues = _parse(path, kind)
    if rows is not None:
        issues = _collect(rows, kind, RULES[kind])
    return (rows if not issues else None), issues


def read_outputs(path: Path) -> tuple[list[dict[str, Any]] | None, list[Issue]]:
    return read_rows(path, "outputs")


def read_annotations(path: Path) -> tuple[list[dict[str, Any]] | None, list[Issue]]:
    return read_rows(path, "annotations")


@dataclass(frozen=True)
class RankingColumns:
    """Scored pairs as parallel arrays (one element per JSONL line); ids are codes into `ids`."""

    ids: list[str]  # every instruction/response id (the dataset key when the records carry one)
    instruction: np.ndarray  # int code of the instruction
    response: np.ndarray  # int code of the response
    logprob: np.ndarray  # float, finite
    n_tokens: np.ndarray  # int, > 0
    is_distractor: np.ndarray  # bool: the pair compares a distractor response with the instruction
    # (instruction_id, response_id) as integers, the positions in the ranked set, when every row has them
    positions: tuple[np.ndarray, np.ndarray] | None = None


# A ranking record opens two containers (the object and its roles list); the fast reader takes a
# few more and leaves anything else to the careful path, whose parser has a depth limit.
MAX_FAST_OPENERS = 8


def max_openers_per_line(raw: bytes) -> int:
    """The most `[` and `{` on one line: a bound on nesting depth that strings can only raise."""
    if not raw:
        return 0
    data = np.frombuffer(raw, dtype=np.uint8)
    line = np.cumsum(data == ord("\n"))
    opener = (data == ord("[")) | (data == ord("{"))
    return int(np.bincount(line, weights=opener).max())


def _ranking_columns_fast(path: Path) -> RankingColumns | None:
    """Columnar read with pyarrow for the common, valid case; None means 'use the careful path'."""
    try:
        raw = path.read_bytes()
        raw.decode("utf-8")  # strict: pyarrow would take invalid UTF-8
    except (OSError, UnicodeDecodeError):
        return None
    if max_openers_per_line(raw) > MAX_FAST_OPENERS:  # pyarrow has no depth limit (deep nesting crashes it)
        return None
    try:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.json as pa_json

        table = pa_json.read_json(pa.BufferReader(raw))
    except Exception:  # missing pyarrow, or anything it cannot read: the careful path explains
        return None
    names = set(table.column_names)
    if not {"instruction_id", "response_id", "logprob", "n_tokens"} <= names:
        return None
    use_keys = {"instruction_key", "response_key"} <= names
    id_names = ("instruction_key", "response_key") if use_keys else ("instruction_id", "response_id")
    wanted = (*id_names, "logprob", "n_tokens", *(["roles"] if "roles" in names else []))
    columns = {name: table.column(name) for name in wanted}
    if any(column.null_count for column in columns.values()):
        return None
    if not (
        pa.types.is_integer(columns["n_tokens"].type)
        and (pa.types.is_floating(columns["logprob"].type) or pa.types.is_integer(columns["logprob"].type))
    ):
        return None
    if not all(pa.types.is_string(columns[n].type) or pa.types.is_integer(columns[n].type) for n in id_names):
        return None
    # Both id columns through one dictionary, so equal ids get equal codes.
    both = pa.chunked_array(
        [*columns[id_names[0]].cast(pa.string()).chunks, *columns[id_names[1]].cast(pa.string()).chunks],
        type=pa.string(),
    )
    encoded = both.combine_chunks().dictionary_encode()
    codes = encoded.indices.to_numpy().astype(np.int64)
    logprob = columns["logprob"].to_numpy().astype(float)
    n_tokens = columns["n_tokens"].to_numpy()
    if not (np.isfinite(logprob).all() and (n_tokens > 0).all()):
        return None
    rows = len(logprob)
    instruction, response = codes[:rows], codes[rows:]
    if "roles" in columns:
        roles = columns["roles"].combine_chunks()
        if not (pa.types.is_list(roles.type) and pa.types.is_string(roles.type.value_type)):
            return None
        is_distractor = np.zeros(rows, dtype=bool)
        hits = pc.equal(pc.list_flatten(roles), "distractor").to_numpy(zero_copy_only=False)
        is_distractor[pc.list_parent_indices(roles).to_numpy()[hits]] = True
    else:
        is_distractor = instruction != response
    positions = None
    if all(
        pa.types.is_integer(table.column(n).type) and not table.column(n).null_count
        for n in ("instruction_id", "response_id")
    ):
        positions = (
            table.column("instruction_id").to_numpy().astype(np.int64),
            table.column("response_id").to_numpy().astype(np.int64),
        )
    return RankingColumns(
        encoded.dictionary.to_pylist(), instruction, response, logprob, n_tokens, is_distractor, positions
    )


def read_ranking(path: Path) -> tuple[RankingColumns | None, list[Issue]]:
    fast = _ranking_columns_fast(path)
    if fast is not None:
        return fast, []
    rows, issues = read_rows(path, "ranking")
    if rows is None:
        return None, issues
    use_keys = all("instruction_key" in r and "response_key" in r for r in rows)
    first, second = ("instruction_key", "response_key") if use_keys else ("instruction_id", "response_id")
    code: dict[str, int] = {}
    instruction = np.array([code.setdefault(str(r[first]), len(code)) for r in rows], dtype=np.int64)
    response = np.array([code.setdefault(str(r[second]), len(code)) for r in rows], dtype=np.int64)
    is_distractor = np.array(
        [("distractor" in r["roles"]) if "roles" in r else (i != j) for r, i, j in zip(rows, instruction, response)],
        dtype=bool,
    )
    is_position = lambda value: isinstance(value, int) and not isinstance(value, bool)  # noqa: E731
    positions = None
    if all(is_position(r["instruction_id"]) and is_position(r["response_id"]) for r in rows):
        positions = (
            np.array([r["instruction_id"] for r in rows], dtype=np.int64),
            np.array([r["response_id"] for r in rows], dtype=np.int64),
        )
    return RankingColumns(
        list(code),
        instruction,
        response,
        np.array([r["logprob"] for r in rows], dtype=float),
        np.array([r["n_tokens"] for r in rows], dtype=np.int64),
        is_distractor,
        positions,
    ), []


def read_leakage(path: Path, detectors: Sequence[str]) -> tuple[list[dict[str, Any]] | None, list[Issue]]:
    """Leakage records, strictly: `index`, every one of `detectors` as true/false, and nothing else
    but identifier columns. A column the harness does not compute cannot be checked, so it is refused
    rather than shown on the board (and a dropped detector column would hide that detector's hits)."""
    rows, issues = read_rows(path, "leakage")
    if not rows:
        return rows, issues
    regenerate = f"regenerate the file: {LEAKAGE_COMMAND}"
    unknown = sorted({key for row in rows for key in row} - set(detectors) - LEAKAGE_ID_COLUMNS)
    if unknown:
        shown = ", ".join(repr(name[:40]) for name in unknown[:5])  # repr: hostile names print inert
        shown += f" (+{len(unknown) - 5} more)" if len(unknown) > 5 else ""
        issues.append(
            (
                f"unknown column(s) {shown}: not a detector this harness runs (it runs {', '.join(detectors)})",
                regenerate,
            )
        )
    missing = [d for d in detectors if any(d not in row for row in rows)]
    if missing:
        lacking = [i for i, row in enumerate(rows) if any(d not in row for d in missing)]
        issues.append((f"{rows_text(lacking)}: detector column(s) {', '.join(missing)} missing", regenerate))
    bad = [i for i, row in enumerate(rows) if any(d in row and not isinstance(row[d], bool) for d in detectors)]
    if bad:
        issues.append((f"{rows_text(bad)}: a detector value is not true/false", regenerate))
    return (rows if not issues else None), issues
