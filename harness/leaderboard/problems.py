"""What `leaderboard check` reports: one line per problem, naming the file and the fix."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, NoReturn

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")


def one_line(text: str) -> str:
    """Control characters (newlines above all) shown escaped: a name from a submission cannot forge a line."""
    return _CONTROL.sub(
        lambda m: repr(m.group())[1:-1] if m.group() not in "\u2028\u2029" else f"\\u{ord(m.group()):04x}", text
    )


@dataclass(frozen=True, order=True)
class Problem:
    file: str  # relative to the submissions folder, e.g. "gemma-base/outputs.json"
    message: str
    fix: str
    severity: Literal["error", "warning"] = "error"

    def __post_init__(self) -> None:
        for name in ("file", "message", "fix"):
            object.__setattr__(self, name, one_line(str(getattr(self, name))))

    def line(self) -> str:
        return f"{self.severity}: {self.file}: {self.message} (fix: {self.fix})"


class SubmissionError(Exception):
    """Raised when a submission cannot be used; carries every problem found."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(p.line() for p in problems))


def refuse(file: str, message: str, fix: str) -> NoReturn:
    """Stop with one problem: a submission that cannot be assembled or used."""
    raise SubmissionError([Problem(file, message, fix)])


def errors(problems: list[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "error"]


def rows_text(rows: list[int], limit: int = 5) -> str:
    """'rows 3, 7, 9' or 'rows 3, 7, 9, 10, 12 (+4 more)': concise pointers into a file (1-based)."""
    shown = ", ".join(str(r + 1) for r in rows[:limit])
    more = f" (+{len(rows) - limit} more)" if len(rows) > limit else ""
    return f"{'row' if len(rows) == 1 else 'rows'} {shown}{more}"


def row_problems(where: str, rows: list[int], message: str, fix: str) -> list[Problem]:
    """One problem naming the rows that break a rule ('rows 3, 7: <message>'), or none when no row does."""
    return [Problem(where, f"{rows_text(rows)}: {message}", fix)] if rows else []
