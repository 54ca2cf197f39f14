"""Held-out metrics over training (from EvalEvent): zero-shot accuracy on top, reconstruction
and KL divergence in nats below, x axes linked."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtGui import QFontMetrics
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from .palette import metric_color
from .style import style_plot

SERIES = {  # key: (plot, name, colour); short names: the dock is narrow, the axes say the unit.
    # Each metric has the colour of the loss term it measures (palette.py), as in the loss plot.
    "zero_shot_accuracy": ("accuracy", "zero-shot", metric_color("zero_shot_accuracy")),
    "label_decoder_accuracy": ("accuracy", "label decoder", metric_color("label_decoder_accuracy")),
    "recon_nats": ("nats", "rec. image", metric_color("recon_nats")),
    "kld_nats": ("nats", "KLD image", metric_color("kld_nats")),
}
AXIS_TITLE_ROOM_PX = 16  # space around a rotated axis title inside its plot
BOTTOM_AXIS_PX = 40  # the step axis under the lower plot
MIN_WIDTH_PX = 170  # the legend in at most three lines, the dock title readable


class MetricsPlot(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("metricsPlotPanel")
        self.rows: list[dict] = []
        self.layout_widget = pg.GraphicsLayoutWidget()
        self.layout_widget.setObjectName("metricsPlot")
        self.accuracy_plot = self.layout_widget.addPlot(row=0, col=0)
        self.nats_plot = self.layout_widget.addPlot(row=1, col=0)
        self.nats_plot.setXLink(self.accuracy_plot)
        self.accuracy_plot.setLabel("left", "accuracy")
        self.accuracy_plot.setYRange(0, 1, padding=0.02)
        self.accuracy_plot.enableAutoRange(y=False)
        self.nats_plot.setLabel("left", "nats / image")
        self.nats_plot.setLabel("bottom", "step")
        plots = {"accuracy": self.accuracy_plot, "nats": self.nats_plot}
        self.curves = {}
        for key, (where, name, color) in SERIES.items():
            self.curves[key] = plots[where].plot(pen=pg.mkPen(color, width=2), name=name,
                                                 symbol="o", symbolSize=4, symbolPen=None, symbolBrush=color)
        for plot in plots.values():
            plot.showGrid(x=True, y=True, alpha=0.15)
            plot.getAxis("left").setWidth(46)  # equal axis widths keep the two linked step axes aligned
        # The curves are named in a wrapping line above the plots, in their colours: the dock is
        # often only ~200 px wide, and an in-plot legend there covers the curves and is cut off.
        self.legend = QLabel("&nbsp;&nbsp; ".join(f"<span style='color:{color}'>&#9644;</span>&nbsp;{name.replace(' ', '&nbsp;')}"
                                                   for _where, name, color in SERIES.values()))
        self.legend.setObjectName("metricsLegend")
        self.legend.setWordWrap(True)
        self.legend.setContentsMargins(6, 2, 6, 0)
        # Each plot stays as tall as its rotated axis title is long: shorter, "accuracy" and
        # "nats / image" ran into each other.
        title_px = QFontMetrics(self.font()).horizontalAdvance("nats / image")
        self.layout_widget.setMinimumHeight(2 * (title_px + AXIS_TITLE_ROOM_PX) + BOTTOM_AXIS_PX)
        self.setMinimumWidth(MIN_WIDTH_PX)
        # the legend's lines at that width count in the minimum height (a wrapped label's do not)
        self.legend.setMinimumHeight(self.legend.heightForWidth(MIN_WIDTH_PX))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.legend)
        layout.addWidget(self.layout_widget)
        self._show_axis_values(False)

    def add_metrics(self, metrics: dict) -> None:
        if self.rows and metrics.get("step", 0) <= self.rows[-1].get("step", 0):
            # a rolled-back or restarted run: drop the points it replaced
            self.rows = [r for r in self.rows if r.get("step", 0) < metrics.get("step", 0)]
        self.rows.append(dict(metrics))
        self._redraw()

    def set_rows(self, rows: list[dict]) -> None:
        self.rows = [dict(r) for r in rows]
        self._redraw()

    def clear(self) -> None:
        self.set_rows([])

    def _redraw(self) -> None:
        self._show_axis_values(bool(self.rows))
        steps = np.array([r.get("step", 0) for r in self.rows], dtype=np.float64)
        for key, curve in self.curves.items():
            curve.setData(steps, np.array([r.get(key, np.nan) for r in self.rows], dtype=np.float64))
        if len(steps) == 1:  # one evaluation: show it from step 0, not as a lone dot in a 1-step-wide window
            self.accuracy_plot.setXRange(0, steps[0] * 1.05, padding=0)
        else:
            self.accuracy_plot.enableAutoRange(x=True)

    def _show_axis_values(self, shown: bool) -> None:
        """Before the first evaluation the step and nats axes have no scale to show: pyqtgraph's
        default 0-1 range drew 0.2 ... 0.8 there, crowded into one another in a narrow dock."""
        for axis in (self.accuracy_plot.getAxis("bottom"), self.nats_plot.getAxis("bottom"),
                     self.nats_plot.getAxis("left")):
            if axis.style["showValues"] != shown:
                axis.setStyle(showValues=shown)

    def apply_theme(self) -> None:
        style_plot(self.layout_widget)
