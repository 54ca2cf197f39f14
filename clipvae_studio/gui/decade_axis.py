"""A log-scale axis that labels only the decades once the view spans a few of them.

pyqtgraph adds the 2..9 minor ticks of every decade whenever fewer than three tick levels
fit, and labels them too: on a short axis spanning two or three decades (the first seconds
of training, when the loss terms have not spread out yet) their labels pile up on top of
each other. The minor tick marks stay; only their labels go.
"""
from __future__ import annotations

import pyqtgraph as pg

MINOR_LABELS_UNDER_DECADES = 1.5  # a narrower view keeps the 2..9 labels: it may hold no decade


class DecadeAxis(pg.AxisItem):
    def logTickStrings(self, values, scale, spacing):
        strings = super().logTickStrings(values, scale, spacing)
        low, high = sorted(self.range)
        if high - low < MINOR_LABELS_UNDER_DECADES:
            return strings
        return [text if abs(value - round(value)) < 1e-6 else "" for value, text in zip(values, strings)]
