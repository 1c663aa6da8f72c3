"""The fused output-layer loss equals the plain loss on full logits, gradients included (float32)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from train_fixtures import tiny_gemma3, tiny_llama

from implicit_if.train.loss import WORKSPACE, fused_linear_cross_entropy, fused_loss_unsupported, output_layer_skipped
from implicit_if.train.masking import IGNORE
from implicit_if.train.modeling import FusedHead, fused_loss_plan, packed_loss_sum


def plain(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, softcap: float | None) -> torch.Tensor:
    logits = hidden @ weight.T
    if softcap is not None:
        logits = softcap * torch.tanh(logits / softcap)
    return F.cross_entropy(logits, targets, reduction="sum")


@pytest.mark.parametrize("chunk", [1, 7, 64, 1000])
@pytest.mark.parametrize("softcap", [None, 5.0])
def test_loss_and_both_gradients_match_the_full_logits_within_1e_5(chunk: int, softcap: float | None) -> None:
    generator = torch.Generator().manual_seed(chunk)
    hidden = torch.randn(50, 24, generator=generator) * 3
    weight = torch.randn(301, 24, generator=generator)
    targets = torch.randint(301, (50,), generator=generator)
    results = []
    for function in (plain, lambda h, w, t, c: fused_linear_cross_entropy(h, w, t, chunk_tokens=chunk, softcap=c)):
        h, w = hidden.clone().requires_grad_(), weight.clone().requires_grad_()
        loss = function(h, w, targets, softcap)
        (loss * 0.37).backward()  # a scale on the way back, as the trainer applies one
        results.append((loss.detach(), h.grad, w.grad))
    (loss_a, gh_a, gw_a), (loss_b, gh_b, gw_b) = results
    assert torch.allclose(loss_a, loss_b, rtol=1e-5, atol=1e-5)
    assert torch.allclose(gh_a, gh_b, rtol=1e-5, atol=1e-5)
    assert torch.allclose(gw_a, gw_b, rtol=1e-5, atol=1e-5)


def test_a_frozen_weight_gets_no_gradient_and_hidden_states_still_do() -> None:
    hidden = torch.randn(10, 8, requires_grad=True)
    weight = torch.randn(40, 8)
    fused_linear_cross_entropy(hidden, weight, torch.randint(40, (10,))).backward()
    assert hidden.grad is not None and weight.grad is None


def test_reused_buffers_do_not_leak_between_calls_of_different_sizes() -> None:
    WORKSPACE.clear()
    generator = torch.Generator().manual_seed(1)
    for n, vocab in ((30, 500), (5, 50), (30, 500)):
        hidden, weight = torch.randn(n, 16, generator=generator), torch.randn(vocab, 16, generator=generator)
        targets = torch.randint(vocab, (n,), generator=generator)
        assert torch.allclose(
            fused_linear_cross_entropy(hidden, weight, targets, chunk_tokens=8),
            plain(hidden, weight, targets, None),
            rtol=1e-5,
        )


def test_output_layer_skipped_returns_hidden_states_and_restores_the_layer() -> None:
    model = tiny_llama()
    ids = torch.randint(97, (1, 9))
    with torch.no_grad():
        logits = model(input_ids=ids).logits
        with output_layer_skipped(model) as head:
            hidden = model(input_ids=ids).logits
        assert torch.allclose(hidden @ head.weight.T, logits, atol=1e-5)
        assert torch.equal(model(input_ids=ids).logits, logits)
    assert "forward" not in vars(model.get_output_embeddings())


@pytest.mark.parametrize("make", [tiny_llama, tiny_gemma3])
def test_packed_loss_and_gradients_are_the_same_by_either_path(make) -> None:
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(97, (1, 20), generator=generator)
    targets = ids.roll(-1, dims=1).clone()
    targets[0, :6] = IGNORE
    targets[0, -1] = IGNORE
    batch = {
        "input_ids": ids,
        "position_ids": torch.cat([torch.arange(10), torch.arange(10)])[None],
        "targets": targets,
    }
    grads = []
    for fused in (False, True):
        model = make().train()
        loss = packed_loss_sum(model, batch, True, FusedHead(model, 4, None) if fused else None)
        loss.backward()
        grads.append((loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
    (loss_a, ga), (loss_b, gb) = grads
    assert torch.allclose(loss_a, loss_b, rtol=1e-5, atol=1e-5)
    assert ga.keys() == gb.keys()
    for name in ga:
        assert torch.allclose(ga[name], gb[name], rtol=1e-4, atol=1e-5), name


def test_the_plan_uses_the_fused_loss_only_where_it_is_exact() -> None:
    model = tiny_llama()
    fused, note = fused_loss_plan(model, 16, torch.device("cpu"), True)
    assert fused is not None and note.startswith("fused")
    assert fused_loss_plan(model, 0, torch.device("cpu"), True)[0] is None

    class Capped(torch.nn.Module):  # logits squashed after the output layer, and the config does not say so
        def __init__(self) -> None:
            super().__init__()
            self.inner, self.config = tiny_llama(), tiny_llama().config

        def get_output_embeddings(self):
            return self.inner.get_output_embeddings()

        def get_input_embeddings(self):
            return self.inner.get_input_embeddings()

        def forward(self, **kwargs):
            out = self.inner(**kwargs)
            out.logits = 3.0 * torch.tanh(out.logits / 3.0)
            return out

    fused, note = fused_loss_plan(Capped(), 16, torch.device("cpu"), True)
    assert fused is None and "fused loss gave" in note


def test_a_biased_output_layer_is_not_fused() -> None:
    model = tiny_llama()
    model.lm_head = torch.nn.Linear(32, 97, bias=True)
    assert fused_loss_unsupported(model) == "the output layer has a bias"
