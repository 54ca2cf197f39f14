"""CLIP's scores for one image as horizontal bars, one per label, in the labels' colours.

The bar is the score of the decoded image encoded again; a thin tick marks the direct score
of the latent point itself where it differs. The top label's bar is opaque and outlined.
Painted with QPainter: it repaints on every drag move, and a plot widget costs several times more.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPalette, QPen, QPixmap
from PySide6.QtWidgets import QSizePolicy, QWidget

from ..palette import label_color
from ..style import current_theme

DIM_ALPHA = 105
DARK_DIM_ALPHA = 200  # on a dark base a faint bar all but vanished: more of its colour
SHOW_DIRECT_ABOVE = 0.02  # show the direct-score ticks when any label differs by more than this
TICKS = (0.25, 0.5, 0.75)


class ScoreBars(QWidget):
    def __init__(self, object_name: str = "clipScores", parent=None):
        super().__init__(parent)
        self.setObjectName(object_name)
        self.setMinimumSize(180, 150)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.label_names: list[str] = []
        self.scores = np.zeros(0)
        self.direct_scores = np.zeros(0)
        self.show_direct = False
        self.top_label: int | None = None
        self.updates = 0
        self._colors: list[tuple[QColor, QColor]] = []
        self._background_key = None
        self._background_pixmap: QPixmap | None = None

    # --- data -----------------------------------------------------------------------------------
    def set_label_names(self, names) -> None:
        names = list(names)
        if names == self.label_names:
            return
        self.label_names = names
        self._set_colors()
        self.clear_scores()

    def _set_colors(self) -> None:
        alpha = DARK_DIM_ALPHA if current_theme() == "dark" else DIM_ALPHA
        self._colors = []
        for i in range(len(self.label_names)):
            dim = label_color(i)
            dim.setAlpha(alpha)
            self._colors.append((dim, label_color(i)))

    def clear_scores(self) -> None:
        self.scores = np.zeros(0)
        self.direct_scores = np.zeros(0)
        self.show_direct = False
        self.top_label = None
        self.update()

    def set_scores(self, scores, direct_scores=None) -> None:
        scores = np.asarray(scores, dtype=np.float64)
        if len(scores) != len(self.label_names):
            self.set_label_names(self.label_names[:len(scores)]
                                 + [str(i) for i in range(len(self.label_names), len(scores))])
        self.scores = scores
        self.top_label = int(np.argmax(scores)) if len(scores) else None
        self.direct_scores = np.asarray(direct_scores if direct_scores is not None else [], dtype=np.float64)
        self.show_direct = (len(self.direct_scores) == len(scores) and len(scores) > 0
                            and float(np.abs(self.direct_scores - scores).max()) > SHOW_DIRECT_ABOVE)
        self.updates += 1
        self.update()

    def apply_theme(self) -> None:
        self._set_colors()
        self.update()  # the other colours come from the application palette at paint time

    # --- painting ---------------------------------------------------------------------------------
    def _layout(self, metrics) -> tuple[float, float, float, float, float, float]:
        """(left, top, bottom, bar width, row height, name column width) for this size and font."""
        line = metrics.height()
        name_width = max([metrics.horizontalAdvance(s) for s in self.label_names] + [8]) + 8
        left, top = name_width + 4, line + 6
        bottom = self.height() - line - 6
        width = max(1.0, self.width() - 20 - left)
        row = (bottom - top) / max(1, len(self.label_names))
        return left, top, bottom, width, row, name_width

    def _background(self) -> QPixmap:
        """Everything but the title and the bars: the grid, the axis and the label names. Drawn
        once per size, font, palette and label set; a drag move repaints only what changes."""
        palette = self.palette()
        ratio = self.devicePixelRatioF()
        key = (self.width(), self.height(), ratio, tuple(self.label_names), self.font().key(),
               palette.color(QPalette.ColorRole.WindowText).rgba(), palette.color(QPalette.ColorRole.Base).rgba())
        if self._background_key == key:
            return self._background_pixmap
        pixmap = QPixmap(max(1, round(self.width() * ratio)), max(1, round(self.height() * ratio)))
        pixmap.setDevicePixelRatio(ratio)
        text = palette.color(QPalette.ColorRole.WindowText)
        painter = QPainter(pixmap)
        painter.setFont(self.font())
        painter.fillRect(self.rect(), palette.color(QPalette.ColorRole.Base))
        metrics = painter.fontMetrics()
        line = metrics.height()
        left, top, bottom, width, row, name_width = self._layout(metrics)
        grid = QColor(text)
        grid.setAlpha(40)
        painter.setPen(QPen(grid, 1))
        for t in TICKS + (1.0,):
            x = left + t * width
            painter.drawLine(int(x), top, int(x), bottom)
        painter.setPen(text)
        painter.drawLine(left, top, left, bottom)
        for t in (0.0,) + TICKS + (1.0,):
            x = left + t * width
            painter.drawText(QRectF(x - 30, bottom + 2, 60, line), Qt.AlignmentFlag.AlignCenter, f"{t:.0%}")
        for i, name in enumerate(self.label_names):
            painter.drawText(QRectF(0, top + i * row, name_width, row),
                             Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, name)
        painter.end()
        self._background_key, self._background_pixmap = key, pixmap
        return pixmap

    def paintEvent(self, _event) -> None:
        painter = QPainter(self)
        painter.drawPixmap(0, 0, self._background())
        if not self.label_names:
            painter.end()
            return
        text = self.palette().color(QPalette.ColorRole.WindowText)
        metrics = painter.fontMetrics()
        left, top, _, width, row, _ = self._layout(metrics)
        if self.top_label is not None:
            title = QFont(painter.font())
            title.setBold(True)
            painter.setFont(title)
            painter.setPen(text)
            painter.drawText(QRectF(0, 2, self.width(), metrics.height()), Qt.AlignmentFlag.AlignCenter,
                             f"CLIP sees {self.label_names[self.top_label]} ({self.scores[self.top_label]:.0%})")
        bar_h = max(2.0, row * 0.72)
        outline = QPen(text, 1.6)
        for i in range(min(len(self.scores), len(self.label_names))):
            y = top + i * row
            rect = QRectF(left, y + (row - bar_h) / 2, float(self.scores[i]) * width, bar_h)
            is_top = i == self.top_label
            painter.setPen(outline if is_top else Qt.PenStyle.NoPen)
            painter.setBrush(self._colors[i][1 if is_top else 0])
            painter.drawRect(rect)
            if self.show_direct:
                x = left + float(self.direct_scores[i]) * width
                painter.setPen(QPen(text, 2.5))
                painter.drawLine(int(x), int(y + 1), int(x), int(y + row - 1))
        painter.end()
