"""The fused output-layer loss accumulates gradients like the plain loss over several backward passes.

A regression test: the fused loss once returned its workspace buffer as the output matrix's gradient;
autograd adopted it as `.grad` (the parameter had none yet), so the next forward zeroed and refilled the
parameter's gradient and the next backward added it to itself. An untied output layer (Llama) then trained
on twice the last micro-batch's gradient; found by comparing FSDP2 with one process
(tests/test_train_sharded.py).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from train_fixtures import tiny_llama

from implicit_if.train.loss import WORKSPACE, fused_linear_cross_entropy
from implicit_if.train.masking import IGNORE
from implicit_if.train.modeling import FusedHead, packed_loss_sum


def test_gradients_of_an_untied_output_matrix_accumulate_over_passes_and_steps() -> None:
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(301, 24, generator=generator)
    passes = [(torch.randn(50, 24, generator=generator), torch.randint(301, (50,), generator=generator)) for _ in "abc"]
    plain, fused = weight.clone().requires_grad_(), weight.clone().requires_grad_()
    for keep_buffers in (True, False):  # zero_grad(set_to_none=False) on CPU, set_to_none=True on GPU
        for hidden, targets in passes:  # three accumulated micro-batches, as in one optimizer step
            F.cross_entropy(hidden @ plain.T, targets, reduction="sum").backward()
            fused_linear_cross_entropy(hidden, fused, targets, chunk_tokens=16).backward()
        assert fused.grad.untyped_storage().data_ptr() != WORKSPACE._buffers["grad_weight"].untyped_storage().data_ptr()
        assert torch.allclose(fused.grad, plain.grad, rtol=1e-5, atol=1e-5)
        for tensor in (plain, fused):
            if keep_buffers:
                tensor.grad.zero_()
            else:
                tensor.grad = None


@pytest.mark.parametrize("micro_batches", [1, 2])
def test_two_steps_of_a_tiny_llama_get_the_same_gradients_by_either_path(micro_batches: int) -> None:
    """The trainer's own call, on a model whose output layer is not tied to its embeddings."""
    models = [tiny_llama(), tiny_llama()]
    assert models[0].lm_head.weight is not models[0].model.embed_tokens.weight
    generator = torch.Generator().manual_seed(3)
    batches = []
    for _ in range(micro_batches):
        ids = torch.randint(97, (1, 20), generator=generator)
        targets = torch.cat([ids[0, 1:], torch.tensor([IGNORE])])
        targets[:5] = IGNORE
        batches.append({"input_ids": ids, "position_ids": torch.arange(20)[None], "targets": targets[None]})
    for _ in range(2):  # two optimizer steps; gradient buffers kept between them, as on CPU
        for model, fused in zip(models, (None, FusedHead(models[1], 8, None))):
            for batch in batches:
                packed_loss_sum(model, batch, True, fused).backward()
        for (name, a), b in zip(models[0].named_parameters(), models[1].parameters()):
            assert torch.allclose(a.grad, b.grad, rtol=1e-5, atol=1e-6), name
        for model in models:
            model.zero_grad(set_to_none=False)
