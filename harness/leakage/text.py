"""Small text helpers shared by the detectors."""

from __future__ import annotations

import re

# A fenced markdown code block: ``` or ~~~ (three or more), optional info string, up to the
# matching closing fence or the end of the text (an unclosed fence runs to the end, as markdown).
FENCED_BLOCK = re.compile(
    r"^[ \t]*(?P<fence>`{3,}|~{3,})(?P<info>[^\n]*)\n(?P<body>.*?)(?:^[ \t]*(?P=fence)[ \t]*$|\Z)", re.M | re.S
)


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(info string, body) of every fenced code block."""
    return [(m.group("info").strip(), m.group("body")) for m in FENCED_BLOCK.finditer(text)]


def without_fenced_blocks(text: str) -> str:
    """The text with its fenced code blocks removed (their content is code, not prose layout)."""
    return FENCED_BLOCK.sub("", text)


def non_empty_lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines() if line.strip()]
