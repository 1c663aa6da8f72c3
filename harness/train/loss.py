"""Next-token cross-entropy of the output layer without ever holding the full logits.

A vocabulary of 262k entries (Gemma 3) makes the logits of a packed row [tokens, 262k]: about
1 GB per thousand target tokens in float32, allocated and freed every micro-batch. The fused
loss here takes the final hidden states of the target positions and the output matrix, and
works through the targets in chunks: logits of one chunk, their log-sum-exp and loss in
float32, and at once the gradient of the loss with respect to the chunk's logits
(softmax - one-hot), turned into the gradients of the hidden states and of the output matrix
before the next chunk. So the forward pass does the backward's work; backward only scales the
stored gradients by the incoming one. This is the idea of Liger-Kernel's fused linear
cross-entropy, written here in plain PyTorch because Liger's kernels need Triton (GPUs).

The matrix products run in the autocast dtype when autocast is on (as the unfused model's
output layer would), every reduction in float32; `tests/test_train_loss.py` checks loss and
gradients against the plain computation within 1e-5 in float32.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

DEFAULT_CHUNK_TOKENS = 512


def _matmul_dtype(hidden: torch.Tensor) -> torch.dtype:
    device = hidden.device.type
    if torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return hidden.dtype


class Workspace:
    """Named buffers kept between calls.

    On CPU, every large tensor is fresh memory from the operating system and each of its pages
    faults on first touch; a step of Gemma 3 270M spent a third of its time in the kernel that
    way. Reusing the chunk buffers (about 1.5 GB for Gemma at 512 tokens a chunk) removes that.
    """

    def __init__(self) -> None:
        self._buffers: dict[str, torch.Tensor] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        numel = 1
        for size in shape:
            numel *= size
        buffer = self._buffers.get(name)
        if buffer is None or buffer.dtype != dtype or buffer.device != device or buffer.numel() < numel:
            self._buffers.pop(name, None)
            buffer = self._buffers[name] = torch.empty(numel, dtype=dtype, device=device)
        return buffer[:numel].view(shape)

    def clear(self) -> None:
        self._buffers.clear()


WORKSPACE = Workspace()


class FusedLinearCrossEntropy(torch.autograd.Function):
    """sum_t CE(softcap(hidden[t] @ weight.T), targets[t]); gradients computed in the forward pass."""

    @staticmethod
    def forward(
        ctx: Any,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        targets: torch.Tensor,
        chunk_tokens: int,
        softcap: float | None,
        matmul_dtype: torch.dtype,
    ) -> torch.Tensor:
        n, (vocab, width), device = hidden.shape[0], weight.shape, hidden.device
        rows_max = min(chunk_tokens, n)
        if weight.dtype == matmul_dtype:
            w = weight.detach()
        else:
            w = WORKSPACE.get("weight", (vocab, width), matmul_dtype, device)
            w.copy_(weight.detach())
        logits_all = WORKSPACE.get("logits", (rows_max, vocab), torch.float32, device)
        low_all = (
            logits_all
            if matmul_dtype == torch.float32
            else WORKSPACE.get("logits_low", (rows_max, vocab), matmul_dtype, device)
        )
        squash_all = WORKSPACE.get("squash", (rows_max, vocab), torch.float32, device) if softcap is not None else None
        grad_hidden = torch.empty((n, width), dtype=torch.float32, device=device)
        grad_weight = None
        if weight.requires_grad:  # backward hands autograd a scaled copy of it, never the workspace buffer itself
            grad_weight = WORKSPACE.get("grad_weight", (vocab, width), torch.float32, device).zero_()
            partial = (
                grad_weight
                if matmul_dtype == torch.float32
                else WORKSPACE.get("grad_weight_low", (vocab, width), matmul_dtype, device)
            )
        total = torch.zeros((), dtype=torch.float32, device=device)
        for start in range(0, n, chunk_tokens):
            stop = min(n, start + chunk_tokens)
            rows = torch.arange(stop - start, device=device)
            h = hidden[start:stop].detach().to(matmul_dtype)
            target = targets[start:stop]
            logits, low = logits_all[: stop - start], low_all[: stop - start]
            torch.mm(h, w.T, out=low)
            if low is not logits:
                logits.copy_(low)
            if squash_all is not None:  # logits = softcap * tanh(z / softcap)
                squash = squash_all[: stop - start]
                torch.tanh(logits.div_(softcap), out=squash)
                torch.mul(squash, softcap, out=logits)
            picked = logits[rows, target]
            peak = logits.amax(dim=-1, keepdim=True)
            probabilities = logits.sub_(peak).exp_()  # in place: logits become exp(z - max)
            norm = probabilities.sum(dim=-1, keepdim=True)
            total += (peak.squeeze(-1) + norm.log().squeeze(-1) - picked).sum()
            gradient = probabilities.div_(norm)  # softmax - one-hot: d loss / d logits
            gradient[rows, target] -= 1.0
            if squash_all is not None:
                gradient.mul_(1.0 - squash * squash)
            if low is not logits:
                low.copy_(gradient)
            grad_hidden[start:stop] = low @ w
            if grad_weight is not None:
                if partial is grad_weight:
                    grad_weight.addmm_(low.T, h)
                else:
                    torch.mm(low.T, h, out=partial)
                    grad_weight += partial
        ctx.save_for_backward(grad_hidden, grad_weight if grad_weight is not None else torch.empty(0))
        ctx.weight_needs_grad = grad_weight is not None
        ctx.hidden_dtype = hidden.dtype
        return total

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[Any, ...]:
        grad_hidden, grad_weight = ctx.saved_tensors
        scale = grad_output.float()
        # A new tensor for the weight: autograd adopts a returned gradient as the parameter's .grad when it has
        # none yet, and a workspace view adopted so would be zeroed and refilled by the next forward, then added
        # to itself (an untied output layer's accumulated gradient came out as twice the last micro-batch's).
        return (
            grad_hidden.mul_(scale).to(ctx.hidden_dtype),
            grad_weight * scale if ctx.weight_needs_grad else None,
            None,
            None,
            None,
            None,
        )


def fused_linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    *,
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
    softcap: float | None = None,
) -> torch.Tensor:
    """Summed cross-entropy of `hidden @ weight.T` (optionally soft-capped) against `targets`, chunked over tokens."""
    if hidden.shape[0] == 0:
        return (hidden.sum() + weight.sum()) * 0.0  # keeps both in the graph: every device must join the backward
    return FusedLinearCrossEntropy.apply(hidden, weight, targets, chunk_tokens, softcap, _matmul_dtype(hidden))


def _identity(hidden: torch.Tensor) -> torch.Tensor:
    return hidden


@contextmanager
def output_layer_skipped(model: Any) -> Iterator[Any]:
    """Inside: the model's output layer returns its input, so `.logits` are the final hidden states.

    Only the layer's `forward` is replaced (an instance attribute), so parameter names, tied
    weights and wrappers (DDP) are untouched. Yields the output layer.
    """
    head = model.get_output_embeddings()
    head.forward = _identity
    try:
        yield head
    finally:
        del head.forward


def fused_loss_unsupported(model: Any) -> str | None:
    """Why the fused loss cannot serve this (unwrapped) model, or None when it can.

    The fused loss needs the output layer to be a plain bias-free matrix held whole on this
    device; `check_fused_loss` then proves on the model itself that nothing else (a logit
    scale) sits between that matrix and the logits.
    """
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if not isinstance(head, torch.nn.Linear):
        return "the output layer is not a plain Linear layer"
    if head.bias is not None:
        return "the output layer has a bias"
    weight = head.weight
    if hasattr(weight, "ds_id") or type(weight.data) is not torch.Tensor:  # ZeRO-3 placeholder, FSDP2 DTensor
        return "the output layer's weight is sharded"
    return None
