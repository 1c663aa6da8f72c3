"""Padding-free packing: which examples go into which forward pass, and the tensors for one.

An optimizer step takes the next `batch_size` examples of a seeded per-epoch shuffle, splits
them across devices with balanced token counts, and packs each device's share first-fit
decreasing into micro-batches of at most `micro_batch_tokens` tokens: one row, examples end to
end, position ids restarting at 0 for each example (the model turns the restarts into a
block-diagonal mask, so attention never crosses examples; see modeling.check_packing_isolation).

The whole plan is a pure function of the example lengths, the seed and the world size, so every
device computes the same plan without talking, the exact number of target tokens of each step
is known in advance (the loss divisor), and a resumed run continues at exactly the same place.
Every device runs the same number of micro-batches per step (gradient accumulation needs a fixed
count); a device with less work runs empty one-token micro-batches that carry no loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .masking import IGNORE, TokenizedExample

MicroBatch = tuple[int, ...]  # indices into the example list; () is an empty (no-loss) micro-batch


@dataclass(frozen=True)
class StepPlan:
    epoch: int
    micro_batches: tuple[tuple[MicroBatch, ...], ...]  # [rank][micro-batch]
    n_examples: int
    n_tokens: int
    n_targets: int  # target tokens in this step, over all devices: the loss divisor


@dataclass(frozen=True)
class TrainingPlan:
    steps: tuple[StepPlan, ...]
    accumulation: int  # micro-batches per device per step
    steps_per_epoch: int


def assign_to_ranks(indices: Sequence[int], lengths: Sequence[int], world_size: int) -> list[list[int]]:
    """Longest first, each to the device with the fewest tokens so far (ties: lowest rank)."""
    loads = [0] * world_size
    shares: list[list[int]] = [[] for _ in range(world_size)]
    for index in sorted(indices, key=lambda i: (-lengths[i], i)):
        rank = min(range(world_size), key=lambda r: (loads[r], r))
        shares[rank].append(index)
        loads[rank] += lengths[index]
    return shares


def pack_first_fit(indices: Sequence[int], lengths: Sequence[int], capacity: int) -> list[MicroBatch]:
    """First-fit decreasing bin packing of examples into micro-batches of at most `capacity` tokens."""
    bins: list[list[int]] = []
    room: list[int] = []
    for index in sorted(indices, key=lambda i: (-lengths[i], i)):
        if lengths[index] > capacity:
            raise ValueError(f"example {index} has {lengths[index]} tokens, more than micro_batch_tokens={capacity}")
        for b, free in enumerate(room):
            if lengths[index] <= free:
                bins[b].append(index)
                room[b] -= lengths[index]
                break
        else:
            bins.append([index])
            room.append(capacity - lengths[index])
    return [tuple(b) for b in bins]


def plan_training(
    lengths: Sequence[int],
    n_targets: Sequence[int],
    *,
    batch_size: int,
    micro_batch_tokens: int,
    epochs: int,
    seed: int,
    world_size: int = 1,
    max_steps: int | None = None,
) -> TrainingPlan:
    """Every optimizer step of the run, in order (pure)."""
    if not lengths:
        raise ValueError("no training examples: the dataset is empty or every example lost its targets")
    steps_per_epoch = -(-len(lengths) // batch_size)
    wanted = max_steps if max_steps is not None else epochs * steps_per_epoch
    raw: list[tuple[int, list[list[MicroBatch]], list[int]]] = []
    epoch = 0
    while len(raw) < wanted:
        order = np.random.default_rng([seed, epoch]).permutation(len(lengths)).tolist()
        for start in range(0, len(order), batch_size):
            chosen = order[start : start + batch_size]
            shares = assign_to_ranks(chosen, lengths, world_size)
            raw.append((epoch, [pack_first_fit(share, lengths, micro_batch_tokens) for share in shares], chosen))
            if len(raw) == wanted:
                break
        epoch += 1
    accumulation = max(len(per_rank) for _, ranks, _ in raw for per_rank in ranks)
    steps = tuple(
        StepPlan(
            epoch=ep,
            micro_batches=tuple(tuple(per_rank) + ((),) * (accumulation - len(per_rank)) for per_rank in ranks),
            n_examples=len(chosen),
            n_tokens=sum(lengths[i] for i in chosen),
            n_targets=sum(n_targets[i] for i in chosen),
        )
        for ep, ranks, chosen in raw
    )
    return TrainingPlan(steps, accumulation, steps_per_epoch)


def collate_packed(
    examples: Sequence[TokenizedExample], micro_batch: MicroBatch, filler_id: int = 0
) -> dict[str, torch.Tensor]:
    """One row of packed examples: input ids, position ids restarting per example, and next-token targets.

    `targets[t]` is the token that position t must predict (IGNORE where none): shifting here,
    inside each example, means the last token of one example never predicts the first of the next.
    An empty micro-batch becomes a single filler token with no target.
    """
    ids: list[int] = []
    positions: list[int] = []
    targets: list[int] = []
    for index in micro_batch:
        example = examples[index]
        ids.extend(example.input_ids)
        positions.extend(range(len(example.input_ids)))
        targets.extend([*example.labels[1:], IGNORE])
    if not ids:
        ids, positions, targets = [filler_id], [0], [IGNORE]
    as_row = lambda values: torch.tensor([values], dtype=torch.long)  # noqa: E731
    return {"input_ids": as_row(ids), "position_ids": as_row(positions), "targets": as_row(targets)}
