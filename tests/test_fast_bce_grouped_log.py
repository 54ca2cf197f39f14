"""The fast BCE takes one logarithm per 64 values (core/fast_losses.py): its value stays within
float32 rounding of PyTorch's in double precision, with or without a whole number of groups."""
import pytest
import torch
import torch.nn.functional as F

from clipvae_studio.core.fast_losses import LOG_GROUP, bce_with_logits


@pytest.mark.parametrize("shape", [(8, 3, 16, 16), (5, 3, 7, 7)])  # 6,144 values = 96 groups; 735: no whole groups
def test_grouped_logarithm_keeps_the_value_and_the_gradient(shape):
    torch.manual_seed(0)
    logits = (torch.randn(shape) * 20).requires_grad_()  # confident pixels: factors near 1 and near 0.5
    target = (torch.rand(shape) > 0.5).float()
    ours = bce_with_logits(logits, target, "batch_sum")
    exact = F.binary_cross_entropy_with_logits(logits.double(), target.double(), reduction="none").flatten(1).sum(1).mean()
    assert abs(ours.item() - exact.item()) <= 2e-6 * exact.item()
    (grad,) = torch.autograd.grad(ours, logits)
    (exact_grad,) = torch.autograd.grad(exact, logits)
    assert torch.allclose(grad, exact_grad, rtol=1e-5, atol=1e-7)  # float32 rounding of s near 0 or 1, x 1/8
    assert (logits.numel() % LOG_GROUP == 0) == (shape[0] == 8)
