"""Leaderboards: third-party submissions, their checks, and boards with bootstrap intervals.

    submission folder --check--> Entry (per-instruction values) --board--> data --render--> md/csv/json/html/png

- `schema`: metadata.json (versioned pydantic models, exported as JSON Schema);
- `safety`, `records`, `check`: what a submission may hold and how it is validated;
- `metrics`: per-instruction values recomputed from the records;
- `board`: systems, seed aggregation, paired bootstrap intervals, upper-bound ranks;
- `render_*`, `build`: the board files, written all-or-nothing;
- `submit`, `lm_eval_results`: assemble a submission from CLI outputs or lm_eval results.
"""

from .board import BootstrapSettings, build_board_data
from .build import BOARD_FILES, BoardWriteError, build_boards, check_out, stale_files, write_boards
from .check import Entry, check_submissions
from .problems import Problem, SubmissionError
from .schema import SCHEMA_VERSION, SubmissionMetadata

__all__ = [
    "BOARD_FILES",
    "BoardWriteError",
    "BootstrapSettings",
    "Entry",
    "Problem",
    "SCHEMA_VERSION",
    "SubmissionError",
    "SubmissionMetadata",
    "build_board_data",
    "build_boards",
    "check_out",
    "check_submissions",
    "stale_files",
    "write_boards",
]
