"""GSM8K's answer style: worked steps, then a final line `#### <number>`."""

from __future__ import annotations

import re

from .text import non_empty_lines, without_fenced_blocks

# Exactly four hashes (not a fifth on either side), optional space, then a number: signed,
# with optional thousands separators and decimals, and nothing after it on the line.
FINAL_ANSWER = re.compile(r"^\s*(?<!#)####(?!#)[ \t]*[-+\u2212]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?[ \t]*$")
# The calculator annotations of GSM8K's solutions, e.g. <<4*3=12>>.
CALCULATOR_MARK = re.compile(r"<<[^<>\n]*=[^<>\n]*>>")


def gsm_final_answer(text: str) -> bool:
    """The last non-empty line outside code blocks is `####` followed by a number.

    Fires on `#### 16`, `#### -3`, `#### 1,250`, `#### 2.5`. Does not fire on markdown headings
    (`#### Step 2`), hashtags (`#blessed`), five or more hashes, a number followed by more text,
    a `####` line that is not the last one, or `#### 42` inside a fenced code block.
    """
    lines = non_empty_lines(without_fenced_blocks(text))
    return bool(lines) and FINAL_ANSWER.match(lines[-1]) is not None


def gsm_calculator_marks(text: str) -> bool:
    """GSM8K's calculator marks `<<a+b=c>>` appear (a secondary sign of the GSM style)."""
    return CALCULATOR_MARK.search(without_fenced_blocks(text)) is not None
