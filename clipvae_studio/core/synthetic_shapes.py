"""Drawn shapes in ten classes: a third family of images, neither digits nor clothes (offline).

The studio preset is tuned on digits and checked on Fashion-MNIST; this set is kept aside to
check, never to tune, that what was learnt there carries over (docs/quality.md). Each image is
one shape (circle, triangle, square, pentagon, hexagon, star, plus, crescent, heart, arrow) at a
random place, size and angle, filled or drawn as an outline with a random stroke, on a faintly
noisy background. Drawn at 4x and reduced, so edges are anti-aliased. Deterministic for a seed.
"""
from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from .data import ImageDataset, _as_dataset

SHAPE_NAMES = ("circle", "triangle", "square", "pentagon", "hexagon", "star", "plus", "crescent", "heart", "arrow")
_SUPER = 4  # drawn at this many times the size, then reduced (anti-aliasing)


def _polygon(points: np.ndarray, cx: float, cy: float, radius: float, angle: float) -> list[tuple]:
    c, s = math.cos(angle), math.sin(angle)
    rot = points @ np.array([[c, s], [-s, c]])
    return [(cx + radius * x, cy + radius * y) for x, y in rot]


def _regular(n: int) -> np.ndarray:
    t = np.arange(n) * 2 * math.pi / n
    return np.stack([np.cos(t), np.sin(t)], 1)


def _outline(kind: str) -> np.ndarray | None:
    """The shape's outline on the unit disc (None for the round shapes drawn as ellipses)."""
    if kind in ("triangle", "square", "pentagon", "hexagon"):
        return _regular({"triangle": 3, "square": 4, "pentagon": 5, "hexagon": 6}[kind])
    if kind == "star":
        radii = np.where(np.arange(10) % 2 == 0, 1.0, 0.42)
        return _regular(10) * radii[:, None]
    if kind == "plus":
        a, b = 1.0, 0.33
        return np.array([(b, a), (b, b), (a, b), (a, -b), (b, -b), (b, -a), (-b, -a), (-b, -b), (-a, -b),
                         (-a, b), (-b, b), (-b, a)]) / 1.05
    if kind == "heart":
        t = np.linspace(0, 2 * math.pi, 40, endpoint=False)
        x, y = 16 * np.sin(t) ** 3, -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
        return np.stack([x, y], 1) / 17.0
    if kind == "arrow":
        return np.array([(1.0, 0.0), (0.2, 0.75), (0.2, 0.3), (-1.0, 0.3), (-1.0, -0.3), (0.2, -0.3), (0.2, -0.75)])
    return None


def _draw(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    big = size * _SUPER
    image = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(image)
    radius = big * rng.uniform(0.24, 0.42)
    cx, cy = (big / 2 + rng.uniform(-1, 1, 2) * (big / 2 - radius - _SUPER)).tolist()
    angle = rng.uniform(0, 2 * math.pi)
    filled = rng.random() < 0.5
    stroke = max(_SUPER, int(big * rng.uniform(0.04, 0.09)))
    ink = int(rng.uniform(170, 255))
    box = [cx - radius, cy - radius, cx + radius, cy + radius]
    outline = _outline(kind)
    if kind == "circle":
        draw.ellipse(box, fill=ink if filled else None, outline=ink, width=stroke)
    elif kind == "crescent":
        draw.ellipse(box, fill=ink)
        dx, dy = 0.55 * radius * math.cos(angle), 0.55 * radius * math.sin(angle)
        draw.ellipse([box[0] + dx, box[1] + dy, box[2] + dx, box[3] + dy], fill=0)
    elif filled:
        draw.polygon(_polygon(outline, cx, cy, radius, angle), fill=ink)
    else:
        points = _polygon(outline, cx, cy, radius, angle)
        draw.line(points + points[:1], fill=ink, width=stroke, joint="curve")
    small = np.asarray(image.resize((size, size), Image.BILINEAR), dtype=np.float32)
    noise = rng.normal(0, 8, small.shape)
    return np.clip(small + noise * (small < 40), 0, 255).astype(np.uint8)


def drawn_shapes(size: int = 28, train_per_label: int = 500, test_per_label: int = 100, seed: int = 0,
                 num_labels: int = 10) -> ImageDataset:
    """`num_labels` (2..10) classes of drawn shapes, grey, `size` x `size`."""
    if not 2 <= num_labels <= len(SHAPE_NAMES):
        raise ValueError(f"num_labels must be between 2 and {len(SHAPE_NAMES)}, not {num_labels}")
    rng = np.random.default_rng(seed)

    def split(per_label: int):
        labels = np.repeat(np.arange(num_labels), per_label)
        rng.shuffle(labels)
        return np.stack([_draw(SHAPE_NAMES[k], size, rng) for k in labels]), labels

    train_x, train_y = split(train_per_label)
    test_x, test_y = split(test_per_label)
    return _as_dataset(f"drawn-shapes-{size}", train_x, train_y, test_x, test_y, SHAPE_NAMES[:num_labels])
