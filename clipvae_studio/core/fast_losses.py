"""Three loss pieces computed in fewer passes over memory than autograd takes; same values.

1. Binary cross-entropy with logits, reduced to a scalar, without log1p, one log per 64 values.
F.binary_cross_entropy_with_logits goes through log_sigmoid, whose CPU kernel evaluates
log1p element by element: on the reference model it was the single most expensive op of a
training step (~1.2 ms of a ~7 ms step at batch 64, more than both big matrix products).
The same value comes from the sigmoid, which the gradient needs anyway:

    bce(l, x) = max(l, 0) - x * l + log(1 + exp(-|l|))
    1 + exp(-|l|) = 1 / max(sigmoid(l), 1 - sigmoid(l))
    d bce / d l   = sigmoid(l) - x

Values agree with PyTorch's to float32 rounding (about 1e-7 per element); gradients are the
textbook sigmoid(l) - x, as in PyTorch's own backward.

2. CLIP's symmetric InfoNCE with arange targets (the reference's CLIP loss), in one node.

3. The inverse multiquadratic kernel of the prior MMD, every width in one node.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


LOG_GROUP = 64  # values whose product takes one logarithm in the BCE's forward pass


class _BCEWithLogitsSum(torch.autograd.Function):
    """sum(bce(logits, target)) / divisor; the target gets no gradient.

    Fewer passes over the pixels than the formula written out (at 64 x 64 RGB, batch 256:
    25 -> 16 ms forward and backward on one core): sum(target * logits) is one dot product, and
    the logarithm, the dearest element-wise op here, is taken of products of LOG_GROUP values
    instead of each value. Every factor max(s, 1 - s) lies in [0.5, 1], so a product of 64 stays
    above 0.5^64 ~ 5e-20, far from float32's underflow, and rounds at ~64 x 6e-8 of itself: the
    logged loss moves by ~1e-7 of its value; the gradient (from s alone) does not move."""

    @staticmethod
    def forward(ctx, logits, target, divisor: float):
        s = torch.sigmoid(logits)
        norm = torch.maximum(s, torch.sub(1.0, s))  # = 1 / (1 + exp(-|l|))
        norm = norm.view(-1, LOG_GROUP).prod(1) if norm.numel() % LOG_GROUP == 0 else norm
        dot = torch.dot(target.reshape(-1), logits.reshape(-1))
        total = (logits.clamp(min=0).sum() - dot - norm.log_().sum()) / divisor
        ctx.save_for_backward(s, target)
        ctx.divisor = divisor
        return total

    @staticmethod
    def backward(ctx, grad):
        s, target = ctx.saved_tensors
        return torch.sub(s, target).mul_(grad / ctx.divisor), None, None


def bce_with_logits(logits: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """"mean": over every element; "batch_sum": summed per sample, averaged over the batch."""
    if target.requires_grad or logits.shape != target.shape:  # rare: keep PyTorch's general op
        per_element = F.binary_cross_entropy_with_logits(logits, target.expand_as(logits), reduction="none")
        return per_element.flatten(1).sum(1).mean() if reduction == "batch_sum" else per_element.mean()
    divisor = float(logits.numel() if reduction == "mean" else max(1, logits.shape[0]))
    return _BCEWithLogitsSum.apply(logits, target, divisor)


class _SymmetricInfoNCE(torch.autograd.Function):
    """0.5 * (cross_entropy(L, arange) + cross_entropy(L.t(), arange)) for a square L.

    Autograd's version builds a one-hot gradient, two log-softmax backwards and a transposed
    copy, each a pass over the B x B matrix; at batch 1,024 that was the largest cost of a
    reference-preset step. Here: two logsumexps forward, two softmaxes backward."""

    @staticmethod
    def forward(ctx, logits):
        n = logits.shape[0]
        row_lse, col_lse = torch.logsumexp(logits, 1), torch.logsumexp(logits, 0)
        loss = (row_lse.sum() + col_lse.sum() - 2 * logits.diagonal().sum()) * (0.5 / n)
        ctx.save_for_backward(logits)
        return loss

    @staticmethod
    def backward(ctx, grad):
        (logits,) = ctx.saved_tensors
        n = logits.shape[0]
        g = torch.softmax(logits, 1).add_(torch.softmax(logits, 0))
        g.diagonal().sub_(2.0)
        return g.mul_(grad * (0.5 / n))


def symmetric_infonce(logits: torch.Tensor) -> torch.Tensor:
    """CLIP's loss with row i matching column i (arange targets), as the reference computes it."""
    if logits.dim() != 2 or logits.shape[0] != logits.shape[1]:
        target = torch.arange(len(logits), device=logits.device)
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))
    return _SymmetricInfoNCE.apply(logits)


class _InverseMultiquadraticSum(torch.autograd.Function):
    """sum over widths c of c / (c + d2), elementwise; the gradient is kept from the forward pass.

    Autograd's version (one add, one divide and their backwards per width, a cdist and its
    backward) was ~4 ms of a ~30 ms studio step at batch 256, for a 256 x 20 input: all scales at
    once here, one S x N x M pass each way."""

    @staticmethod
    def forward(ctx, d2, widths):
        c = torch.tensor(widths, dtype=d2.dtype, device=d2.device).view(-1, 1, 1)
        r = (d2.unsqueeze(0) + c).reciprocal_()  # S x N x M
        weighted = r * c
        total = weighted.sum(0)
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(weighted.mul_(r).sum(0).neg_())  # d/d d2 = -sum c / (c + d2)^2
        return total

    @staticmethod
    def backward(ctx, grad):
        (slope,) = ctx.saved_tensors
        return grad * slope, None


def squared_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """|a_i - b_j|^2 for every pair, from one matrix product (cdist's backward is slow on the CPU)."""
    return (a.pow(2).sum(1, keepdim=True) + b.pow(2).sum(1) - 2 * a @ b.t()).clamp(min=0)


def inverse_multiquadratic(a: torch.Tensor, b: torch.Tensor, widths) -> torch.Tensor:
    """Kernel matrix sum_c c / (c + |a_i - b_j|^2)."""
    return _InverseMultiquadraticSum.apply(squared_distances(a, b), tuple(float(c) for c in widths))
