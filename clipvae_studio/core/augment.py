"""Random affine jitter of training images (small shifts, rotations, scalings).

With 4,000 training images a CLIP-VAE overfits within seconds (training reconstruction
far below test); jittered copies are new plausible digits, so both the encoder (zero-shot
accuracy) and the decoder (held-out reconstruction) generalise better. One affine grid per
batch: a few percent of a training step.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def jitter(x: torch.Tensor, shift_px: float, rotate_deg: float | None = None, scale: float | None = None,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """x: N x C x H x W in [0, 1]. Shifts up to +-shift_px pixels, rotations up to +-rotate_deg
    (default 4 * shift_px degrees), scalings up to +-scale (default 0.04 * shift_px)."""
    if shift_px <= 0:
        return x
    n, device = len(x), x.device
    rotate_deg = 4.0 * shift_px if rotate_deg is None else rotate_deg
    scale = 0.04 * shift_px if scale is None else scale

    def uniform(*shape):
        return (torch.rand(*shape, generator=generator) * 2 - 1).to(device)

    angle = uniform(n) * math.radians(rotate_deg)
    zoom = 1 + uniform(n) * scale
    shift = uniform(n, 2) * (2 * shift_px / torch.tensor([x.shape[-1], x.shape[-2]], device=device))
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
