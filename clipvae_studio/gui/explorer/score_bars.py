"""CLIP's scores for one image as horizontal bars, one per label, in the labels' colours.

The bar is the score of the decoded image encoded again; a thin tick marks the direct score
of the latent point itself where it differs. The top label's bar is opaque and outlined.
With more labels than rows fit (or than MAX_ROWS), the best-scored labels get rows, in score order,
and a last row folds the rest ("+ 37 more", their summed score); long names are elided, and the
tooltip over a row gives the full name and score.
Painted with QPainter: it repaints on every drag move, and a plot widget costs several times more.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QEvent, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPalette, QPen, QPixmap
from PySide6.QtWidgets import QSizePolicy, QToolTip, QWidget

from ..palette import label_color
from ..style import current_theme

DIM_ALPHA = 105
DARK_DIM_ALPHA = 200  # on a dark base a faint bar all but vanished: more of its colour
SHOW_DIRECT_ABOVE = 0.02  # show the direct-score ticks when any label differs by more than this
TICKS = (0.25, 0.5, 0.75)
MAX_ROWS = 12  # rows of bars at most; more labels than this are folded into the last row
NAME_SHARE = 0.4  # the name column takes at most this share of the width; longer names are elided


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
    # --- which labels get a row -------------------------------------------------------------------
    def row_capacity(self, metrics=None) -> int:
        """How many rows fit: MAX_ROWS at most, and none shorter than one line of text."""
        metrics = metrics or self.fontMetrics()
        line = metrics.height()
        return max(2, min(MAX_ROWS, int((self.height() - 2 * line - 12) // line)))

    def rows(self, metrics=None) -> tuple[list[int], int]:
        """(label indices shown, top first when folded; how many labels the last row folds)."""
        n = len(self.label_names)
        capacity = self.row_capacity(metrics)
        if n <= capacity:
            return list(range(n)), 0
        if len(self.scores) == n:
            order = np.argsort(-self.scores, kind="stable")[:capacity - 1]
        else:
            order = np.arange(capacity - 1)
        return [int(i) for i in order], n - (capacity - 1)

    def _layout(self, metrics) -> tuple[float, float, float, float, float, float]:
        """(left, top, bottom, bar width, row height, name column width) for this size and font."""
        line = metrics.height()
        shown, folded = self.rows(metrics)
        widest = max([metrics.horizontalAdvance(self.label_names[i]) for i in shown] + [8])
        if folded:
            widest = max(widest, metrics.horizontalAdvance(f"+ {folded} more"))
        name_width = min(widest, int(self.width() * NAME_SHARE)) + 8
        left, top = name_width + 4, line + 6
        bottom = self.height() - line - 6
        width = max(1.0, self.width() - 20 - left)
        row = (bottom - top) / max(1, len(shown) + (1 if folded else 0))
        return left, top, bottom, width, row, name_width

    def _draw_names(self, painter, shown, folded, top, row, name_width) -> None:
        metrics = painter.fontMetrics()
        align = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
        for k, i in enumerate(shown):
            name = metrics.elidedText(self.label_names[i], Qt.TextElideMode.ElideMiddle, int(name_width - 6))
            painter.drawText(QRectF(0, top + k * row, name_width, row), align, name)
        if folded:
            painter.drawText(QRectF(0, top + len(shown) * row, name_width, row), align, f"+ {folded} more")

    def row_at(self, y: float) -> int | None:
        """The label index of the row at height y (-1 for the folded row; None outside the rows)."""
        metrics = self.fontMetrics()
        _, top, _, _, row, _ = self._layout(metrics)
        shown, folded = self.rows(metrics)
        k = int((y - top) // row) if row > 0 and y >= top else -1
        if 0 <= k < len(shown):
            return shown[k]
        return -1 if folded and k == len(shown) else None

    def event(self, event) -> bool:
        if event.type() == QEvent.Type.ToolTip:
            i = self.row_at(event.pos().y())
            if i is None:
                QToolTip.hideText()
            else:
                QToolTip.showText(event.globalPos(), self.row_tooltip(i), self)
            return True
        return super().event(event)

    def row_tooltip(self, i: int) -> str:
        """The full name and score of row label i; for the folded row (-1), its labels' summed score."""
        has_scores = len(self.scores) == len(self.label_names)
        if i >= 0:
            return self.label_names[i] + (f": {self.scores[i]:.1%}" if has_scores else "")
        shown, folded = self.rows()
        rest = sorted(set(range(len(self.label_names))) - set(shown))
        text = f"{folded} more labels"
        if has_scores:
            text += f", {float(self.scores[rest].sum()):.1%} together"
        return text

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
        shown, folded = self.rows(metrics)
        if not folded:  # folded rows follow the scores: their names are drawn with the bars
            self._draw_names(painter, shown, folded, top, row, name_width)
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
        left, top, _, width, row, name_width = self._layout(metrics)
        shown, folded = self.rows(metrics)
        if folded:
            painter.setPen(text)
            self._draw_names(painter, shown, folded, top, row, name_width)
        if self.top_label is not None:
            title = QFont(painter.font())
            title.setBold(True)
            painter.setFont(title)
            painter.setPen(text)
            painter.drawText(QRectF(0, 2, self.width(), metrics.height()), Qt.AlignmentFlag.AlignCenter,
                             painter.fontMetrics().elidedText(
                                 f"CLIP sees {self.label_names[self.top_label]} ({self.scores[self.top_label]:.0%})",
                                 Qt.TextElideMode.ElideMiddle, self.width() - 4))
            painter.setFont(self.font())
        bar_h = max(2.0, row * 0.72)
        outline = QPen(text, 1.6)
        has_scores = len(self.scores) == len(self.label_names)
        for k, i in enumerate(shown if has_scores else []):
            y = top + k * row
            rect = QRectF(left, y + (row - bar_h) / 2, float(self.scores[i]) * width, bar_h)
            is_top = i == self.top_label
            painter.setPen(outline if is_top else Qt.PenStyle.NoPen)
            painter.setBrush(self._colors[i][1 if is_top else 0])
            painter.drawRect(rect)
            if self.show_direct:
                x = left + float(self.direct_scores[i]) * width
                painter.setPen(QPen(text, 2.5))
                painter.drawLine(int(x), int(y + 1), int(x), int(y + row - 1))
        if folded and has_scores:  # the folded labels' summed score, in the text colour, faint
            rest = np.ones(len(self.scores), bool)
            rest[shown] = False
            y = top + len(shown) * row
            faint = QColor(text)
            faint.setAlpha(70)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(faint)
            painter.drawRect(QRectF(left, y + (row - bar_h) / 2, float(self.scores[rest].sum()) * width, bar_h))
        painter.end()
