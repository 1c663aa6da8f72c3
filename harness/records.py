"""Per-item records, typed: the contract between stages (CONTRIBUTING.md, "How data flows").

Four kinds, one schema each (a TypedDict validated by pydantic: the records stay plain dicts,
typed, and a list of them validates in one pydantic-core call):

| kind | file | schema |
| --- | --- | --- |
| `outputs` | JSON list (AlpacaEval model_outputs) | `OutputRecord` |
| `annotations` | JSON list (AlpacaEval annotations) | `AnnotationRecord` |
| `ranking` | JSONL | `RankingRecord` |
| `leakage` | JSONL | `LeakageRecord` |

The schemas declare what every reader may rely on and allow anything else (`extra="allow"`): the
contract may grow, and AlpacaEval's own fields pass through. They are strict (no coercion), so a
record that validates is used as it was written: `read_records` returns the file's own dicts,
checked, and `write_records` writes dicts unchanged, which keeps every number and every byte of
a round trip. One reader and one writer: JSON list or JSONL by the file's suffix; a bad record
raises `RecordError`, one line naming the file, the line (JSONL) or item (JSON list), the field
and the fix. The leaderboard parses hostile submissions with the same parser (`parse_records`) and
validates them against these same schemas, reporting every broken row (`leaderboard/records.py`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, with_config
from typing_extensions import NotRequired, TypedDict

from .io import JSONLinesError, atomic_write_json, atomic_write_jsonl, parse_jsonl

Kind = Literal["outputs", "annotations", "ranking", "leakage"]


_CONFIG = ConfigDict(extra="allow", strict=True)


@with_config(_CONFIG)
class OutputRecord(TypedDict):
    """AlpacaEval model_outputs: `instruction`, `output` ("" for no answer, never null); `implicit-if
    generate` adds `generator`, `dataset` and `instruction_id`, which pass through unchecked."""

    instruction: str
    output: str


@with_config(_CONFIG)
class AnnotationRecord(TypedDict):
    """AlpacaEval annotations: `output_1` is the reference, `output_2` the model; `preference` in [1, 2]
    (0 a draw), None or NaN when the judge failed. Judge fields (`annotator`, `judge_config`, ...) pass."""

    instruction: str
    output_1: str
    output_2: str
    preference: float | None


@with_config(_CONFIG)
class RankingRecord(TypedDict):
    """One scored (instruction, response) pair: ids (positions in the ranked set; `instruction_key` and
    `response_key` carry the dataset's own ids when known), the response's log-prob sum and token count."""

    instruction_id: int | str
    response_id: int | str
    logprob: Annotated[float, Field(allow_inf_nan=False)]
    n_tokens: Annotated[int, Field(gt=0)]
    roles: NotRequired[list[str]]  # absent: a true pair when the ids are equal, else a distractor


@with_config(_CONFIG)
class LeakageRecord(TypedDict):
    """One output's detector verdicts: `index` (its position in outputs.json) and one boolean per detector."""

    index: Annotated[int, Field(ge=0)]


MODELS: dict[str, type] = {
    "outputs": OutputRecord,
    "annotations": AnnotationRecord,
    "ranking": RankingRecord,
    "leakage": LeakageRecord,
}
# The fix each kind's errors name (the leaderboard's messages use the same words).
FIXES = {
    "outputs": "write AlpacaEval model_outputs: a JSON list of {instruction, output, generator}",
    "annotations": "write AlpacaEval annotations: a JSON list of {instruction, output_1, output_2, preference}",
    "ranking": "one JSON object per line: {instruction_id, response_id, logprob, n_tokens}",
    "leakage": "one JSON object per line: {index, <detector>: true|false, ...}",
}
_ADAPTERS = {kind: TypeAdapter(list[model]) for kind, model in MODELS.items()}  # type: ignore[valid-type]


def row_errors(rows: list[Any], kind: Kind) -> list[dict[str, Any]]:
    """Every way `rows` break `kind`'s model, as pydantic error dicts whose `loc` starts with the row index
    (a `loc` of just the index: the row is not an object). Empty when every row is valid."""
    try:
        _ADAPTERS[kind].validate_python(rows)
    except ValidationError as error:
        return error.errors(include_url=False, include_context=False)  # type: ignore[return-value]
    return []


class RecordError(ValueError):
    """A record file that breaks the contract: one line, "<file>[:<line>]: <problem>; <fix>".

    The parts stay apart (`path`, `line`, `problem`, `fix`) for callers that report it in their own
    terms, such as the leaderboard's per-file problem lines.
    """

    def __init__(self, path: str | Path, problem: str, fix: str, line: int | None = None):
        self.path, self.problem, self.fix, self.line = str(path), problem, fix, line
        super().__init__(f"{self.path}{'' if line is None else f':{line}'}: {problem}; {fix}")


def _problem(error: Mapping[str, Any]) -> str:
    """One pydantic error (loc relative to the record) as "field 'x': what is wrong"."""
    loc = [part for part in error["loc"] if part not in ("int", "str", "float", "none", "list[str]")]
    if not loc:
        return f"not a JSON object (got {_shown(error.get('input'))})"
    field = ".".join(str(part) for part in loc)
    if error["type"] == "missing":
        return f"field '{field}' is missing"
    if error.get("input", 0) is None:
        return f"field '{field}' is null"
    message = error["msg"].removeprefix("Value error, ")
    return f"field '{field}': {message[:1].lower()}{message[1:]} (got {_shown(error.get('input'))})"


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str) if not isinstance(value, float) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def validate_records(records: list[Any], kind: Kind, source: str, lines: list[int] | None = None) -> list[Any]:
    """Check `records` against `kind`'s model; return them unchanged, or raise RecordError for the first bad one.

    `source` names the file (or the stage) in the message; `lines` maps each record to its line (JSONL).
    """
    errors = row_errors(records, kind)
    if errors:
        first = errors[0]
        index, rest = first["loc"][0], first["loc"][1:]
        problem = _problem({**first, "loc": rest})
        if lines is None:
            raise RecordError(source, f"item {index}: {problem}", FIXES[kind])
        raise RecordError(source, problem, FIXES[kind], line=lines[index])
    return records


def _is_jsonl(path: Path) -> bool:
    return path.suffix.lower() == ".jsonl"


def parse_records(path: str | Path, kind: Kind) -> tuple[list[Any], list[int] | None]:
    """A `kind` file's JSON values, unchecked: (values, the line of each value for JSONL, else None).

    JSON list or JSONL by suffix; raises RecordError on a missing file, text that is not UTF-8, or JSON
    that does not parse. The leaderboard validates the values itself (every bad row, not the first).
    """
    path = Path(path)
    fix = FIXES[kind]
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecordError(path, "does not exist", f"give the path of a {kind} file") from None
    except IsADirectoryError:
        raise RecordError(path, "is a directory", f"give the path of a {kind} file") from None
    except UnicodeDecodeError:
        raise RecordError(path, "is not UTF-8 text", f"save it as UTF-8 ({fix})") from None
    if not _is_jsonl(path):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as error:
            raise RecordError(path, f"not valid JSON ({error.msg})", fix, line=error.lineno) from None
        except RecursionError:
            raise RecordError(path, f"nests JSON too deeply to be {kind} records", fix) from None
        if not isinstance(records, list):
            raise RecordError(path, f"holds a JSON {type(records).__name__}, not a list", fix)
        return records, None
    try:
        return parse_jsonl(text, path)
    except JSONLinesError as error:
        raise RecordError(path, error.problem, fix, line=error.line) from None


def read_records(path: str | Path, kind: Kind) -> list[dict[str, Any]]:
    """The records of a `kind` file, JSON list or JSONL by suffix, checked against the kind's model.

    Returns the file's own dicts (nothing coerced or added); raises RecordError (one line) on a missing
    file, text that is not UTF-8 or JSON, or a record that breaks the model.
    """
    records, lines = parse_records(path, kind)
    return validate_records(records, kind, str(path), lines)


def write_records(path: str | Path, records: Iterable[Mapping[str, Any]], kind: Kind | None = None) -> None:
    """Write records atomically: JSONL for a `.jsonl` path, else a JSON list (indent 2), as `implicit_if.io`
    always has. With `kind`, every record is checked first, so nothing breaking the contract is written."""
    path = Path(path)
    rows = [dict(record) for record in records]
    if kind is not None:
        validate_records(rows, kind, f"records for {path}")
    if _is_jsonl(path):
        atomic_write_jsonl(path, rows)
    else:
        atomic_write_json(path, rows)
