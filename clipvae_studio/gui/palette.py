"""The colours every view shares: one per label (scatter, anchors, scores, gallery) and one per
loss term (the loss plot, and the metrics plot's series that measure a term).

Tableau 10 for the first ten labels (distinct in light and dark themes and for most colour-blind
viewers), then evenly spread hues for datasets with more classes. The loss terms use Tableau 10 too.
"""
from __future__ import annotations

from functools import lru_cache

from PySide6.QtGui import QBrush, QColor, QPen

TABLEAU10 = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
             "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac")
_GOLDEN = 0.618033988749895

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
    i = int(i)
    if 0 <= i < len(TABLEAU10):
        return QColor(TABLEAU10[i])
    hue = ((i - len(TABLEAU10)) * _GOLDEN) % 1.0
    return QColor.fromHsvF(hue, 0.55, 0.85)


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
