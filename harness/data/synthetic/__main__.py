"""Write the generated training sets into `data/fixtures/` (deterministic: same bytes every run)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .chess_games import generate_pgn_rows
from .gsm import generate_problems

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
GSM_FILE, GSM_COUNT = "gsm_generated.jsonl", 600
CHESS_FILE, CHESS_COUNT = "chess_generated.jsonl", 600
SEED = 0


def rendered() -> dict[str, str]:
    """File name -> the exact text of each generated fixture."""
    gsm = [{"question": p.question, "answer": p.answer} for p in generate_problems(GSM_COUNT, SEED)]
    chess = generate_pgn_rows(CHESS_COUNT, SEED)
    as_jsonl = lambda rows: "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)  # noqa: E731
    return {GSM_FILE: as_jsonl(gsm), CHESS_FILE: as_jsonl(chess)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--out", type=Path, default=FIXTURES, help="folder to write into (default: the package's fixtures)"
    )
    args = parser.parse_args()
    for name, text in rendered().items():
        (args.out / name).write_text(text, encoding="utf-8")
        print(f"wrote {args.out / name} ({text.count(chr(10))} lines)")


if __name__ == "__main__":
    main()
