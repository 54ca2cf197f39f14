"""Random whole-pixel shifts of training images.

With 4,000 training images a CLIP-VAE overfits within seconds (training reconstruction
far below test); shifted copies are new plausible digits, so both the encoder (zero-shot
accuracy) and the decoder (held-out reconstruction) generalise better.

Whole pixels only: a shift by a fraction of a pixel, a rotation or a scaling resamples the
image, which blurs every stroke, and a VAE learns to draw what it is trained on. Measured at
1,742 steps of the studio preset: bilinear jitter (shifts up to 2 px, rotations up to 8 degrees,
scalings up to 8 %) gave 87.0 nats held-out reconstruction and 68.9 % confident noise samples;
whole-pixel shifts up to 2 px gave 84.0 nats and 71.5 %, zero-shot 96.6 -> 97.0 %.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def jitter(x: torch.Tensor, shift_px: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """x: N x C x H x W. Each image moved by its own whole-pixel offset, drawn uniformly from
    -k..k in each direction (k = shift_px rounded); pixels moved in from outside are 0."""
    k = int(round(shift_px))
    if k <= 0:
        return x
    n, c, h, w = x.shape
    dx, dy = (torch.randint(-k, k + 1, (2, n, 1, 1), generator=generator).to(x.device))
    # Pad by k and read each image's window at its offset: one gather, no resampling.
    padded = F.pad(x, (k, k, k, k)).flatten(2)  # N x C x (H+2k)(W+2k)
    rows = torch.arange(h, device=x.device).view(1, h, 1) + k + dy
    cols = torch.arange(w, device=x.device).view(1, 1, w) + k + dx
    index = (rows * (w + 2 * k) + cols).view(n, 1, h * w).expand(n, c, h * w)
    return padded.gather(2, index).view(n, c, h, w)
