"""Leaderboards: third-party submissions, their checks, and boards with bootstrap intervals.

    submission folder --check--> Entry (per-instruction values) --board--> data --render--> md/csv/json/html/png

- `schema`: metadata.json (versioned pydantic models, exported as JSON Schema);
- `safety`, `records`, `check`: what a submission may hold and how it is validated;
- `metrics`: per-instruction values recomputed from the records;
- `board`: systems, seed aggregation, paired bootstrap intervals, upper-bound ranks;
- `render_*`, `build`: the board files, written all-or-nothing;
- `submit`, `lm_eval_results`: assemble a submission from CLI outputs or lm_eval results.

Callers import the module they need (`from implicit_if.leaderboard.build import build_boards`), so
reading a schema never loads the statistics.
"""
