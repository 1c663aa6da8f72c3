"""Where in an answer a detector's style shows, for people reading the answers (the instance browser).

The detectors answer yes or no; this points at the evidence of a yes: the `#### N` line, the first
calculator mark, the run of numbered chess moves, the first unmistakable code line or fenced block.
Poems and recipes are a matter of the whole answer's shape: no span.
"""

from __future__ import annotations

import re

from .chess import NUMBERED_MOVE
from .code import STRONG_LINE
from .gsm import CALCULATOR_MARK, FINAL_ANSWER
from .text import FENCED_BLOCK

# The detectors match one line at a time; over a whole answer their patterns need re.M.
CODE_LINE_ANYWHERE = re.compile(STRONG_LINE.pattern, re.X | re.M)
GSM_LINE = re.compile(FINAL_ANSWER.pattern.replace(r"^\s*", r"^[ \t]*"), re.M)  # not across blank lines


def matched_span(detector: str, text: str) -> tuple[int, int] | None:
    """[start, end) of the evidence for `detector` in `text`, when there is one to point at."""
    if detector == "gsm":
        found = list(GSM_LINE.finditer(text))
        return (found[-1].start(), found[-1].end()) if found else None
    if detector == "gsm_calculator":
        found = CALCULATOR_MARK.search(text)
        return found.span() if found else None
    if detector == "chess":
        moves = list(NUMBERED_MOVE.finditer(text))
        return (moves[0].start(), moves[-1].end()) if moves else None
    if detector == "code":
        found = FENCED_BLOCK.search(text) or CODE_LINE_ANYWHERE.search(text)
        return found.span() if found else None
    return None
