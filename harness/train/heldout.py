"""Held-out loss: a model's mean next-token loss on records a recipe did not train on.

The study chose epochs on a validation set. Our generated sets keep their last records out of
training (`data.limit`): GSM problems 500-599, chess games 200-599. This measures a checkpoint
on them with the recipe's own format, masking and truncation, in float32, one example at a time
(no packing, so nothing can leak between examples).

    python -m implicit_if.train.heldout --recipe gemma-3-270m-cpu-gsm --model DIR [--model DIR2 ...]
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from typing import Any

import torch

from .conversations import training_conversations
from .examples import tokenize_conversations
from .masking import TokenizedExample
from .packing import collate_packed
from .recipes import DataSpec, load_recipe


@dataclass(frozen=True)
class HeldoutLoss:
    model: str
    n_examples: int
    n_targets: int
    loss: float  # mean over target tokens, nats

    @property
    def perplexity(self) -> float:
        return math.exp(self.loss)


def heldout_examples(spec: DataSpec, tokenizer: Any, first: int, count: int | None) -> list[TokenizedExample]:
    """Records [first, first + count) of the recipe's dataset, tokenized as the recipe trains."""
    from ..data import load_pairs

    if spec.limit is not None and first < spec.limit:
        raise ValueError(
            f"held-out records must start at or after data.limit ({spec.limit}), not {first}: those are trained on"
        )
    records = load_pairs(spec.dataset, offline=spec.offline)
    chosen = records[first:] if count is None else records[first : first + count]
    if not chosen:
        raise ValueError(f"dataset {spec.dataset!r} has {len(records)} records: none from {first}")
    examples, _, _, _ = tokenize_conversations(
        tokenizer, training_conversations(chosen, spec.adaptation), spec.format, spec.max_length
    )
    return examples


@torch.no_grad()
def heldout_loss(model: Any, examples: list[TokenizedExample], name: str) -> HeldoutLoss:
    from .modeling import packed_loss_sum

    model.eval()
    total, targets = 0.0, 0
    for index, example in enumerate(examples):
        batch = collate_packed(examples, (index,))
        total += float(packed_loss_sum(model, batch, logits_to_keep=False))
        targets += example.n_targets
    return HeldoutLoss(name, len(examples), targets, total / targets)


def main(argv: list[str] | None = None) -> None:
    from transformers import AutoModelForCausalLM

    from ..models import resolve_model
    from .modeling import load_tokenizer

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", required=True, help="the recipe whose data, format and masking to use")
    parser.add_argument("--model", action="append", required=True, help="a model directory or embedded name (repeat)")
    parser.add_argument("--first", type=int, help="first held-out record (default: the recipe's data.limit)")
    parser.add_argument("--count", type=int, default=100, help="how many held-out records (default 100)")
    args = parser.parse_args(argv)
    recipe = load_recipe(args.recipe)
    first = recipe.data.limit if args.first is None else args.first
    if first is None:
        parser.error(f"recipe {args.recipe} trains on its whole dataset: give --first")
    tokenizer = load_tokenizer(recipe.model)
    examples = heldout_examples(recipe.data, tokenizer, first, args.count)
    for name in args.model:
        model = AutoModelForCausalLM.from_pretrained(resolve_model(name), dtype=torch.float32)
        result = heldout_loss(model, examples, name)
        print(
            json.dumps(
                {"recipe": args.recipe, "first": first, **result.__dict__, "perplexity": round(result.perplexity, 4)}
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
