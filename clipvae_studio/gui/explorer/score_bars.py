"""CLIP's scores for one image as horizontal bars, one per label, in the labels' colours.

The bar is the score of the decoded image encoded again; a thin tick marks the direct score
of the latent point itself where it differs. The top label's bar is opaque and outlined.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg

from ..palette import label_color
from ..style import current_theme, style_plot

DIM_ALPHA = 105
SHOW_DIRECT_ABOVE = 0.02  # show the direct-score ticks when any label differs by more than this


class ScoreBars(pg.PlotWidget):
    def __init__(self, object_name: str = "clipScores", parent=None):
        super().__init__(parent)
        self.setObjectName(object_name)
        self.setMinimumSize(180, 190)
        self.label_names: list[str] = []
        self.scores = np.zeros(0)
        self.direct_scores = np.zeros(0)
        self.top_label: int | None = None
        self.updates = 0
        item = self.getPlotItem()
        item.setMenuEnabled(False)
        item.hideButtons()
        item.setMouseEnabled(x=False, y=False)
        item.getViewBox().invertY(True)  # first label on top
        item.setXRange(0, 1, padding=0.02)
        item.showGrid(x=True, alpha=0.15)
        item.getAxis("bottom").setTicks([[(t, f"{t:.0%}") for t in (0, 0.25, 0.5, 0.75, 1.0)]])
        self.bars = pg.BarGraphItem(x0=[], y=[], height=0.72, width=[])
        self.direct = pg.ScatterPlotItem(symbol="|", size=16, pxMode=True)
        self.direct.setZValue(5)
        item.addItem(self.bars)
        item.addItem(self.direct)
        self.apply_theme()

    def set_label_names(self, names) -> None:
        names = list(names)
        if names == self.label_names:
            return
        self.label_names = names
        n = len(names)
        axis = self.getPlotItem().getAxis("left")
        axis.setTicks([[(i, name) for i, name in enumerate(names)]])
        self.getPlotItem().setYRange(-0.5, n - 0.5, padding=0.02)
        self._brushes = []
        self._pens = []
        for i in range(n):
            dim = label_color(i)
            dim.setAlpha(DIM_ALPHA)
            self._brushes.append((pg.mkBrush(dim), pg.mkBrush(label_color(i))))
        self._plain_pen = pg.mkPen(None)
        self.clear_scores()

    def clear_scores(self) -> None:
        self.scores = np.zeros(0)
        self.direct_scores = np.zeros(0)
        self.top_label = None
        self.bars.setOpts(x0=[], y=[], width=[])
        self.direct.setData(x=[], y=[])
        self.getPlotItem().setTitle("")

    def set_scores(self, scores, direct_scores=None) -> None:
        scores = np.asarray(scores, dtype=np.float64)
        n = len(scores)
        if n != len(self.label_names):
            self.set_label_names(self.label_names[:n] + [str(i) for i in range(len(self.label_names), n)])
        top = int(np.argmax(scores)) if n else None
        self.scores, self.top_label = scores, top
        brushes = [self._brushes[i][1 if i == top else 0] for i in range(n)]
        pens = [self._top_pen if i == top else self._plain_pen for i in range(n)]
        self.bars.setOpts(x0=np.zeros(n), y=np.arange(n), width=scores, brushes=brushes, pens=pens)
        if direct_scores is not None and n and np.abs(np.asarray(direct_scores) - scores).max() > SHOW_DIRECT_ABOVE:
            self.direct_scores = np.asarray(direct_scores, dtype=np.float64)
            self.direct.setData(x=self.direct_scores, y=np.arange(n))
        else:
            self.direct_scores = np.asarray(direct_scores if direct_scores is not None else [], dtype=np.float64)
            self.direct.setData(x=[], y=[])
        if top is not None:
            self.getPlotItem().setTitle(f"CLIP sees <b>{self.label_names[top]}</b> ({scores[top]:.0%})", size="9pt")
        self.updates += 1

    def apply_theme(self) -> None:
        style_plot(self)
        dark = current_theme() == "dark"
        self._top_pen = pg.mkPen("#ffffff" if dark else "#111111", width=1.6)
        self.direct.setPen(None)
        self.direct.setBrush(pg.mkBrush("#ffffff" if dark else "#111111"))
        if len(self.scores):
            self.set_scores(self.scores, self.direct_scores if len(self.direct_scores) else None)
