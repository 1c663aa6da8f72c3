"""Learning-rate schedules as pure functions of the step (nothing to save in a checkpoint)."""

from __future__ import annotations

import math


def warmup_steps_for(total_steps: int, warmup_ratio: float, warmup_steps: int | None = None) -> int:
    """Explicit warmup steps win; otherwise a ratio of the run, rounded up (as transformers does)."""
    if warmup_steps is not None:
        return min(warmup_steps, total_steps)
    return min(math.ceil(total_steps * warmup_ratio), total_steps)


def lr_at(
    step: int, *, base_lr: float, total_steps: int, warmup: int, schedule: str = "linear", min_lr_ratio: float = 0.0
) -> float:
    """Learning rate of optimizer step `step` (0-based).

    Warmup rises linearly to `base_lr` and reaches it on step `warmup - 1` (unlike transformers'
    schedules, the first step does not run at lr 0); then linear or cosine decay towards
    `min_lr_ratio * base_lr`, or constant.
    """
    if step < warmup:
        return base_lr * (step + 1) / warmup
    if schedule == "constant":
        return base_lr
    progress = (step - warmup) / max(1, total_steps - warmup)
    if schedule == "linear":
        factor = 1.0 - progress
    elif schedule == "cosine":
        factor = 0.5 * (1.0 + math.cos(math.pi * progress))
    else:
        raise ValueError(f"unknown schedule {schedule!r}: use linear, cosine or constant")
    return base_lr * (min_lr_ratio + (1.0 - min_lr_ratio) * factor)
