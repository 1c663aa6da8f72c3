"""Chess notation leaking into answers: PGN move text (`1. e4 e5 2. Nf3 Nc6 ...`)."""

from __future__ import annotations

import re

# One move in standard algebraic notation: piece moves, pawn moves, captures, promotion,
# castling, check or mate marks, optional annotation (!, ?).
SAN = r"(?:O-O(?:-O)?|0-0(?:-0)?|[KQRBN][a-h]?[1-8]?x?[a-h][1-8]|[a-h](?:x[a-h])?[1-8](?:=?[QRBN])?)[+#]?[!?]{0,2}"
# A numbered move: "12. Nf3 Nc6", "12.Nf3", or black's move alone "12... Nc6".
NUMBERED_MOVE = re.compile(rf"(?<![\w.])(\d{{1,3}})\.(?:\.\.)?\s*({SAN})(?:\s+({SAN}))?(?![\w-])")
HEADER_TAG = re.compile(
    r'^\s*\[(?:Event|Site|Date|Round|White|Black|Result|WhiteElo|BlackElo|ECO|Opening|TimeControl|Termination)\s+"[^"\n]*"\]\s*$',
    re.M,
)
MIN_CONSECUTIVE_NUMBERS = 3


def chess(text: str) -> bool:
    """PGN: consecutively numbered moves in algebraic notation (three numbers, or two numbers
    holding three moves, as in `1. f3 e5 2. g4 Qh4#`), or two PGN header tags.

    Fires on `1. e4 e5 2. Nf3 Nc6 3. Bb5 a6` and on `[White "..."]` / `[WhiteElo "1500"]` header
    lines. Does not fire on numbered lists (`1. Eat well 2. Sleep`), a single move mentioned in
    prose (`1. e4 is popular`), grid references (`cell a1`), or version numbers.
    """
    if len(HEADER_TAG.findall(text)) >= 2:
        return True
    run, moves, previous = 0, 0, None
    for match in NUMBERED_MOVE.finditer(text):
        number = int(match.group(1))
        if previous is not None and number in (previous, previous + 1):
            run += 1
        else:
            run, moves = 1, 0
        moves += 1 + (match.group(3) is not None)
        previous = number
        if run >= MIN_CONSECUTIVE_NUMBERS or (run >= 2 and moves >= 3):
            return True
    return False
