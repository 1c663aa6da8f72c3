"""Verse layout leaking into answers: several short lines, grouped in stanzas, not a list."""

from __future__ import annotations

import re

from .text import without_fenced_blocks

CODE_MARKS = re.compile(r"[=_{}\[\]<>\\]|\w\(|^\s*(?:def|class|import|return|from)\b")
LIST_MARKER = re.compile(r"^\s*(?:[-*+\u2022]\s|\d+[.)]\s|[a-zA-Z][.)]\s|#|>|\|)")
MIN_VERSE_LINES = 4
MAX_VERSE_CHARS = 70
MIN_VERSE_SHARE = 0.8
# Refrains repeat a line or two; a decoding loop repeats one line over and over. Verse needs most
# of its lines to be different.
MIN_DISTINCT_SHARE = 0.5


def _is_verse_line(line: str) -> bool:
    stripped = line.strip()
    if not stripped or len(stripped) > MAX_VERSE_CHARS or LIST_MARKER.match(line) or CODE_MARKS.search(stripped):
        return False
    words = stripped.split()
    letters = sum(ch.isalpha() for ch in stripped)
    return 2 <= len(words) <= 14 and letters >= 0.6 * len(stripped)


def poem(text: str) -> bool:
    """Verse: at least four short lines of words, making up most of the text's lines.

    Fires on poems with or without a title and stanza breaks. Does not fire on prose
    paragraphs (long lines), bulleted or numbered lists, markdown headings or tables, code,
    or a short address block (fewer than four lines), or a repetition loop (the same line again
    and again, a degenerate decoding mode of base models).
    """
    lines = [line for line in without_fenced_blocks(text).splitlines() if line.strip()]
    if len(lines) < MIN_VERSE_LINES:
        return False
    verse = [line for line in lines if _is_verse_line(line)]
    distinct = {" ".join(line.lower().split()) for line in verse}
    return (
        len(verse) >= MIN_VERSE_LINES
        and len(verse) >= MIN_VERSE_SHARE * len(lines)
        and len(distinct) >= MIN_VERSE_LINES
        and len(distinct) >= MIN_DISTINCT_SHARE * len(verse)
    )
