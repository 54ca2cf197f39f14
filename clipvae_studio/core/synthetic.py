"""Coloured digits at any size and label count, made from the bundled MNIST subset (offline).

For benchmarks and tests of shapes the studio was not tuned on: each digit is resized to the
requested side, drawn in a colour on a darker background of another colour, and labelled by
digit, or by (digit, colour family) when more than ten labels are asked for, so colour then
carries part of the class. Deterministic for a seed; nothing is downloaded.
"""
from __future__ import annotations

import colorsys

import numpy as np
import torch
import torch.nn.functional as F

from .data import ImageDataset, _as_dataset, load_mnist5k


def _hue_rgb(hue: np.ndarray, saturation: float, value: np.ndarray) -> np.ndarray:
    """N hues (0..1) -> N x 3 RGB in 0..1."""
    return np.array([colorsys.hsv_to_rgb(float(h), saturation, float(v)) for h, v in zip(hue, value)],
                    dtype=np.float32)


def coloured_digits(size: int = 32, channels: int = 3, num_labels: int = 10, seed: int = 0,
                    train_per_label: int | None = None, test_per_label: int | None = None) -> ImageDataset:
    """Digits at `size` x `size`, RGB (`channels` 3) or grey (1), with `num_labels` labels (2..).

    Labels below 10 keep the first `num_labels` digits. Above 10, label = digit + 10 * family:
    the family is a hue band (RGB) or a brightness band (grey), so label k needs both the digit
    and the colour right. Each base image is reused once per family it is drawn in.
    """
    if num_labels < 2:
        raise ValueError(f"num_labels must be at least 2, not {num_labels}")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, not {channels}")
    base = load_mnist5k()
    rng = np.random.default_rng(seed)
    families = max(1, -(-num_labels // 10))

    def split(images: torch.Tensor, labels: torch.Tensor, per_label: int | None):
        out_x, out_y = [], []
        for label in range(num_labels):
            digit, family = label % 10, label // 10
            rows = np.flatnonzero(labels.numpy() == digit)
            if per_label is not None:
                rows = rng.choice(rows, size=per_label, replace=per_label > len(rows))
            x = images[torch.as_tensor(rows)].float().div(255.0)
            out_x.append(_paint(x, size, channels, family, families, rng))
            out_y.append(np.full(len(rows), label))
        return np.concatenate(out_x), np.concatenate(out_y)

    train_x, train_y = split(base.train_images, base.train_labels, train_per_label)
    test_x, test_y = split(base.test_images, base.test_labels, test_per_label)
    kind = "rgb" if channels == 3 else "grey"
    names = [str(k) if families == 1 else f"{k % 10}-{kind[0]}{k // 10}" for k in range(num_labels)]
    return _as_dataset(f"coloured-digits-{kind}{size}-{num_labels}", train_x, train_y, test_x, test_y, names)


def _paint(x: torch.Tensor, size: int, channels: int, family: int, families: int, rng) -> np.ndarray:
    """x: N x 1 x 28 x 28 in 0..1 -> N x C x size x size uint8, coloured within `family`."""
    n = len(x)
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).clamp_(0, 1) if size != 28 else x
    band = (family + rng.uniform(0.1, 0.9, n)) / families  # this family's slice of 0..1
    if channels == 1:
        ink = 0.45 + 0.55 * band  # brighter strokes for higher families
        paper = rng.uniform(0.0, 0.2, n)
        grey = paper[:, None, None, None] + (ink - paper)[:, None, None, None] * x.numpy()
        return np.rint(grey * 255).astype(np.uint8)
    ink = _hue_rgb(band, 0.85, rng.uniform(0.75, 1.0, n))
    paper = _hue_rgb((band + rng.uniform(0.3, 0.7, n)) % 1.0, 0.6, rng.uniform(0.05, 0.3, n))
    a = x.numpy()  # N x 1 x H x W: stroke coverage
    rgb = paper[:, :, None, None] * (1 - a) + ink[:, :, None, None] * a
    return np.rint(np.clip(rgb, 0, 1) * 255).astype(np.uint8)
