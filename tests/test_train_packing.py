"""Padding-free packing: the plan is complete and deterministic, and packing never changes the loss."""

from __future__ import annotations

import random

import pytest
import torch
from train_fixtures import tiny_gemma3, tiny_llama

from implicit_if.train.masking import IGNORE, TokenizedExample
from implicit_if.train.modeling import check_packing_isolation, packed_loss_sum
from implicit_if.train.packing import collate_packed, plan_training


def make_examples(n: int, vocab: int = 97, seed: int = 0) -> list[TokenizedExample]:
    """Random token ids, each with a masked prompt and a target response (like a Tulu example)."""
    rng = random.Random(seed)
    examples = []
    for _ in range(n):
        prompt, response = rng.randint(2, 9), rng.randint(2, 14)
        tokens = [rng.randrange(vocab) for _ in range(prompt + response)]
        examples.append(TokenizedExample(tokens, [IGNORE] * prompt + tokens[prompt:]))
    return examples


def plan_for(examples, **options):
    settings = {"batch_size": 8, "micro_batch_tokens": 40, "epochs": 2, "seed": 0, **options}
    return plan_training([len(e.input_ids) for e in examples], [e.n_targets for e in examples], **settings)


def test_each_epoch_uses_every_example_once_within_the_token_budget() -> None:
    examples = make_examples(21)
    plan = plan_for(examples, world_size=2)
    assert plan.steps_per_epoch == 3 and len(plan.steps) == 6
    for epoch in (0, 1):
        used = [i for s in plan.steps if s.epoch == epoch for rank in s.micro_batches for mb in rank for i in mb]
        assert sorted(used) == list(range(21))
    for step in plan.steps:
        assert all(len(rank) == plan.accumulation for rank in step.micro_batches)  # same count on every device
        members = [i for rank in step.micro_batches for mb in rank for i in mb]
        assert step.n_targets == sum(examples[i].n_targets for i in members)
        assert step.n_tokens == sum(len(examples[i].input_ids) for i in members)
        for rank in step.micro_batches:
            assert all(sum(len(examples[i].input_ids) for i in mb) <= 40 for mb in rank)
    assert any(mb == () for s in plan.steps for rank in s.micro_batches for mb in rank)  # padding runs exist here


def test_the_plan_is_a_pure_function_of_the_seed() -> None:
    examples = make_examples(21)
    assert plan_for(examples) == plan_for(examples)
    assert plan_for(examples) != plan_for(examples, seed=1)
    first_epochs = [[i for mb in s.micro_batches[0] for i in mb] for s in plan_for(examples).steps]
    assert sorted(first_epochs[0] + first_epochs[1] + first_epochs[2]) == list(range(21))
    assert plan_for(examples, max_steps=4).steps == plan_for(examples).steps[:4]


def test_an_example_longer_than_the_budget_is_refused() -> None:
    with pytest.raises(ValueError, match="more than micro_batch_tokens"):
        plan_for(make_examples(3), micro_batch_tokens=5)


def test_collate_restarts_positions_and_never_predicts_across_examples() -> None:
    a = TokenizedExample([5, 6, 7, 8], [IGNORE, IGNORE, 7, 8])
    b = TokenizedExample([9, 10, 11], [IGNORE, 10, 11])
    batch = collate_packed([a, b], (0, 1))
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8, 9, 10, 11]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 3, 0, 1, 2]]
    # position t predicts token t+1 of the same example; the last token of `a` predicts nothing
    assert batch["targets"].tolist() == [[IGNORE, 7, 8, IGNORE, 10, 11, IGNORE]]
    empty = collate_packed([a, b], (), filler_id=3)
    assert empty["input_ids"].tolist() == [[3]] and empty["targets"].tolist() == [[IGNORE]]


def unpacked_loss_sum(model, examples) -> torch.Tensor:
    """Reference: each example alone, full logits, the model's own shift."""
    total = torch.zeros((), dtype=torch.float64)
    for example in examples:
        ids = torch.tensor([example.input_ids])
        logits = model(input_ids=ids).logits[0, :-1].double()
        labels = torch.tensor(example.labels[1:])
        total += torch.nn.functional.cross_entropy(logits, labels, ignore_index=IGNORE, reduction="sum")
    return total


def padded_loss_sum(model, examples) -> torch.Tensor:
    """Reference: the usual right-padded batch with an attention mask."""
    width = max(len(e.input_ids) for e in examples)
    ids = torch.zeros((len(examples), width), dtype=torch.long)
    mask = torch.zeros_like(ids)
    labels = torch.full_like(ids, IGNORE)
    for row, e in enumerate(examples):
        ids[row, : len(e.input_ids)] = torch.tensor(e.input_ids)
        mask[row, : len(e.input_ids)] = 1
        labels[row, : len(e.labels)] = torch.tensor(e.labels)
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].double()
    return torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=IGNORE, reduction="sum"
    )


@pytest.mark.parametrize("build", [tiny_llama, tiny_gemma3], ids=["llama", "gemma3-sliding-window"])
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_and_unpacked_batches_give_the_same_loss(build, attn: str) -> None:
    model = build(attn=attn)
    examples = make_examples(6, seed=3)
    n_targets = sum(e.n_targets for e in examples)
    batch = collate_packed(examples, tuple(range(6)))
    with torch.no_grad():
        packed = packed_loss_sum(model, batch).double() / n_targets
        packed_full_logits = packed_loss_sum(model, batch, logits_to_keep=False).double() / n_targets
        unpacked = unpacked_loss_sum(model, examples) / n_targets
        padded = padded_loss_sum(model, examples) / n_targets
        # negative control: the same row with continuous positions lets attention cross examples
        leaky = model(input_ids=batch["input_ids"], use_cache=False).logits[0].double()
        keep = batch["targets"][0] != IGNORE
        crossed = torch.nn.functional.cross_entropy(leaky[keep], batch["targets"][0][keep], reduction="sum") / n_targets
    assert abs(packed - unpacked) < 1e-5 and abs(packed_full_logits - unpacked) < 1e-5 and abs(padded - unpacked) < 1e-5
    assert abs(crossed - unpacked) > 1e-3  # the comparison above would have caught a leak


def test_packed_gradients_match_unpacked_gradients() -> None:
    examples = make_examples(5, seed=4)
    packed_model, reference = tiny_llama(seed=1), tiny_llama(seed=1)
    packed_loss_sum(packed_model, collate_packed(examples, tuple(range(5)))).backward()
    unpacked_loss_sum(reference, examples).backward()
    for (name, p), q in zip(packed_model.named_parameters(), reference.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-5, rtol=1e-4), name


def test_isolation_check_passes_on_real_models_and_catches_a_leak() -> None:
    assert check_packing_isolation(tiny_llama(), 97, torch.device("cpu")) == 0.0
    assert check_packing_isolation(tiny_gemma3(attn="eager"), 97, torch.device("cpu")) == 0.0

    class IgnoresRestarts(torch.nn.Module):  # what older transformers did with position ids alone
        def __init__(self) -> None:
            super().__init__()
            self.inner = tiny_llama()

        def forward(self, input_ids, position_ids, use_cache=False, **kwargs):
            return self.inner(input_ids=input_ids, position_ids=torch.arange(input_ids.shape[1])[None], use_cache=False)

    with pytest.raises(RuntimeError, match="attend to each other"):
        check_packing_isolation(IgnoresRestarts(), 97, torch.device("cpu"))
