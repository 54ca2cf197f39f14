"""The colours every view shares: one per label (scatter, anchors, scores, gallery) and one per
loss term (the loss plot, and the metrics plot's series that measure a term).

Tableau 10 for the first ten labels (distinct in light and dark themes and for most colour-blind
viewers); past ten, colours chosen one by one as far as possible (in CIELAB, where distance follows
what the eye sees) from all chosen before, the idea of Glasbey et al.'s categorical palettes, so
40 or 200 labels stay apart. A label's colour depends on its index only: label 3 looks the same in
a 10-label and a 200-label dataset. The loss terms use Tableau 10 too.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from PySide6.QtGui import QBrush, QColor, QPen

TABLEAU10 = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
             "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac")
MAX_LABELS = 256  # colours precomputed; past this they repeat (no dataset here has more)
# The lightness band the extra colours are taken from: readable on the light and the dark theme.
LIGHTNESS = (35.0, 85.0)

# One colour per loss term in every view ("total" follows the theme's text colour).
TERM_COLORS = {"clip": "#b07aa1", "kld_image": "#4e79a7", "kld_label": "#76b7b2",
               "rec_image": "#e15759", "ce_label": "#59a14f", "label_match": "#f28e2b",
               "prior_mmd": "#9c755f"}
TERM_NAMES = {"total": "total", "clip": "CLIP", "kld_image": "KLD image", "kld_label": "KLD label",
              "rec_image": "rec. image", "ce_label": "CE label", "label_match": "label match",
              "prior_mmd": "prior MMD"}
# The held-out metrics, each drawn in the colour of the loss term it measures.
METRIC_TERMS = {"zero_shot_accuracy": "clip", "label_decoder_accuracy": "ce_label",
                "recon_nats": "rec_image", "kld_nats": "kld_image"}


def term_color(term: str) -> str:
    return TERM_COLORS[term]


def metric_color(metric: str) -> str:
    return TERM_COLORS[METRIC_TERMS[metric]]


def label_color(i: int) -> QColor:
    """The colour of label `i` (a new QColor each call; callers may change it)."""
    i = int(i) % MAX_LABELS
    # Tableau 10 directly: the extra colours are computed only when a dataset has more labels
    return QColor(TABLEAU10[i] if i < len(TABLEAU10) else _categorical().colour(i))


def label_hex(i: int) -> str:
    return label_color(i).name()


def label_rgb(i: int) -> tuple[int, int, int]:
    c = label_color(i)
    return c.red(), c.green(), c.blue()


@lru_cache(maxsize=16)
def _brushes(n: int, alpha: int) -> tuple:
    out = []
    for i in range(n):
        c = label_color(i)
        c.setAlpha(alpha)
        out.append(QBrush(c))
    return tuple(out)


def label_brushes(n: int, alpha: int = 200) -> list[QBrush]:
    """Prebuilt brushes for labels 0..n-1 (cached: build once, reuse on every scatter update)."""
    return list(_brushes(int(n), int(alpha)))


def label_pen(i: int, width: float = 2.0) -> QPen:
    pen = QPen(label_color(i))
    pen.setWidthF(width)
    pen.setCosmetic(True)
    return pen


def _srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """N x 3 sRGB in [0, 1] -> N x 3 CIELAB (D65)."""
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = linear @ np.array([[0.4124, 0.2126, 0.0193], [0.3576, 0.7152, 0.1192], [0.1805, 0.0722, 0.9505]])
    xyz /= np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], axis=1)


def _squared_distances(points: np.ndarray, point: np.ndarray) -> np.ndarray:
    d = points - point
    return np.einsum("ij,ij->i", d, d)


class _Categorical:
    """The greedy choice below, kept between calls: each colour depends only on those before it,
    so a dataset with 40 labels computes 30 extra colours, not MAX_LABELS (~1 ms each), and a
    later dataset with more labels goes on from there."""

    def __init__(self):
        steps = np.linspace(0.0, 1.0, 20)
        rgb = np.stack(np.meshgrid(steps, steps, steps, indexing="ij"), -1).reshape(-1, 3)
        lab = _srgb_to_lab(rgb)
        chroma = np.hypot(lab[:, 1], lab[:, 2])
        keep = (lab[:, 0] >= LIGHTNESS[0]) & (lab[:, 0] <= LIGHTNESS[1]) & (chroma >= 20)
        self.rgb, self.lab = rgb[keep], lab[keep]
        seeds = np.array([[int(h[k:k + 2], 16) / 255 for k in (1, 3, 5)] for h in TABLEAU10])
        # each candidate's squared distance to the nearest colour chosen (squared: the same order)
        self.nearest = np.full(len(self.lab), np.inf)
        for seed in _srgb_to_lab(seeds):
            np.minimum(self.nearest, _squared_distances(self.lab, seed), out=self.nearest)
        self.colours = list(TABLEAU10)

    def colour(self, i: int) -> str:
        self.up_to(i + 1)
        return self.colours[i]

    def up_to(self, count: int) -> tuple[str, ...]:
        while len(self.colours) < count:
            k = int(np.argmax(self.nearest))
            self.colours.append("#%02x%02x%02x" % tuple(int(round(c * 255)) for c in self.rgb[k]))
            np.minimum(self.nearest, _squared_distances(self.lab, self.lab[k]), out=self.nearest)
        return tuple(self.colours[:count])


@lru_cache(maxsize=1)
def _categorical() -> _Categorical:
    return _Categorical()


def categorical_hex(count: int = MAX_LABELS) -> tuple[str, ...]:
    """The first `count` (at most MAX_LABELS) colours: Tableau 10, then each next colour the sRGB
    candidate (a 20-step cube, kept to LIGHTNESS and away from greys) farthest in CIELAB from every
    colour before it."""
    return _categorical().up_to(min(int(count), MAX_LABELS))
