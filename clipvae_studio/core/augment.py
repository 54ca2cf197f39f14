"""Random whole-pixel shifts of training images.

With 4,000 training images a CLIP-VAE overfits within seconds (training reconstruction
far below test); shifted copies are new plausible digits, so both the encoder (zero-shot
accuracy) and the decoder (held-out reconstruction) generalise better.

Whole pixels only: a shift by a fraction of a pixel, a rotation or a scaling resamples the
image, which blurs every stroke, and a VAE learns to draw what it is trained on. Measured at
1,742 steps of the studio preset: bilinear jitter (shifts up to 2 px, rotations up to 8 degrees,
scalings up to 8 %) gave 87.0 nats held-out reconstruction and 68.9 % confident noise samples;
whole-pixel shifts up to 2 px gave 84.0 nats and 71.5 %, zero-shot 96.6 -> 97.0 %.

Only for small training sets (`augment_max_per_label`): measured on the same family at two
sizes, shifts help a small set and slow a large one down (docs/quality.md, "Quality that
transfers").

Never past the content: each image moves at most as far as it has background on that side.
Shifts that cut into the object (a sleeve, a shoe's toe on Fashion-MNIST, whose items fill the
frame) make images unlike any real one and cost the model accuracy (docs/quality.md: zero-shot
-1.9 points on Fashion-MNIST with plain shifts); on centred digits with a blank border nothing
changes.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

# A pixel this far (0..1) from the image's background colour is content, not background.
INK_TOLERANCE = 0.1


def shift_for(config, n_train: int, num_labels: int) -> float:
    """The shift this run trains with: config.augment_px, or 0 when the training split is larger
    than config.augment_max_per_label images per label (0 there: shifts at any size)."""
    limit = getattr(config, "augment_max_per_label", 0)
    if limit > 0 and n_train > limit * max(num_labels, 1):
        return 0.0
    return config.augment_px


def shift_note(config, n_train: int, num_labels: int) -> str | None:
    """A sentence saying that the configured shifts are off for this training split, or None."""
    if config.augment_px <= 0 or shift_for(config, n_train, num_labels) > 0:
        return None
    return (f"image shifts off: {n_train / max(num_labels, 1):,.0f} training images per label, more than "
            f"augment_max_per_label={config.augment_max_per_label:,} (--set augment_max_per_label=0 keeps them)")


def background(x: torch.Tensor) -> torch.Tensor:
    """N x C x 1 x 1: each image's background colour, the median of its outer ring of pixels."""
    ring = torch.cat([x[..., 0, :], x[..., -1, :], x[..., :, 0], x[..., :, -1]], dim=-1)
    return ring.median(dim=-1).values[..., None, None]


def content_margins(x: torch.Tensor, tolerance: float = INK_TOLERANCE, fill: torch.Tensor | None = None) -> torch.Tensor:
    """x: N x C x H x W in [0, 1] -> N x 4 (top, bottom, left, right): each image's rows and
    columns of background on each side. Background is the median of the image's outer ring, per
    channel (or `fill`); content is any pixel further than `tolerance` from it in some channel. An image with
    no content gets its full height and width (any shift keeps it as it is)."""
    n, c, h, w = x.shape
    fill = background(x) if fill is None else fill
    ink = (x - fill).abs().amax(1) > tolerance  # N x H x W
    rows, cols = ink.any(2), ink.any(1)

    def leading(mask, size):  # background lines before the first content line (size if none)
        first = mask.to(torch.uint8).argmax(1)
        return torch.where(mask.any(1), first, torch.full_like(first, size))

    return torch.stack([leading(rows, h), leading(rows.flip(1), h), leading(cols, w), leading(cols.flip(1), w)], 1)


def jitter(x: torch.Tensor, shift_px: float, generator: torch.Generator | None = None,
           fill: torch.Tensor | None = None, margins: torch.Tensor | None = None) -> torch.Tensor:
    """x: N x C x H x W in [0, 1]. Each image moved by its own whole-pixel offset, drawn uniformly
    from -k..k in each direction (k = shift_px rounded) but never further than its background
    margin on that side, so no content leaves the frame; pixels moved in take the image's
    background colour. fill / margins: background(x) and content_margins(x), when the caller
    already has them (the trainer keeps them per training image)."""
    k = int(round(shift_px))
    if k <= 0:
        return x
    n, c, h, w = x.shape
    fill = background(x) if fill is None else fill
    margins = content_margins(x, fill=fill) if margins is None else margins
    top, bottom, left, right = margins.clamp(max=k).t()
    # output row r reads input row r + dy: content moves up by dy, so dy may not exceed the top
    # margin nor fall below minus the bottom one (columns likewise)
    u = torch.rand((2, n), generator=generator, device=generator.device if generator else None).to(x.device)
    dy = -bottom + (u[0] * (top + bottom + 1)).long().clamp(max=top + bottom)
    dx = -right + (u[1] * (left + right + 1)).long().clamp(max=left + right)
    # Pad by k and read each image's window at its offset: one gather, no resampling.
    padded = (F.pad(x - fill, (k, k, k, k)) + fill).flatten(2)  # N x C x (H+2k)(W+2k)
    rows = torch.arange(h, device=x.device).view(1, h, 1) + k + dy.view(n, 1, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w) + k + dx.view(n, 1, 1)
    index = (rows * (w + 2 * k) + cols).view(n, 1, h * w).expand(n, c, h * w)
    return padded.gather(2, index).view(n, c, h, w)
