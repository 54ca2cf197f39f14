"""A QLabel that shows one float image enlarged by whole factors, nearest-neighbour."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QPainter, QPalette, QPixmap
from PySide6.QtWidgets import QLabel, QSizePolicy

from .images import as_hwc, to_pixmap

NAME_GAP_PX = 8


class PixelImageView(QLabel):
    def __init__(self, object_name: str = "", min_side: int = 112, parent=None):
        super().__init__(parent)
        if object_name:
            self.setObjectName(object_name)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setMinimumSize(min_side, min_side)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.image: np.ndarray | None = None  # the last image shown (float, [0, 1])
        self.updates = 0  # how many images were shown; tests and benchmarks read it
        self.row_names: list[str] = []  # names drawn left of the picture's rows (the gallery's label rows)

    def set_image(self, image, row_names=None) -> None:
        """Show `image`; with `row_names`, one name beside each of its equal-height rows."""
        self.row_names = [str(n) for n in row_names] if row_names else []
        self.image = None if image is None else as_hwc(image)
        self.updates += 1
        self._render()

    def clear_image(self, text: str = "") -> None:
        self.image = None
        self.clear()
        self.setText(text)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._render()

    def _render(self) -> None:
        if self.image is None:
            return
        if not self.row_names:
            self.setPixmap(to_pixmap(self.image, self.width() - 4, self.height() - 4))
            return
        metrics = self.fontMetrics()
        names_w = max(metrics.horizontalAdvance(n) for n in self.row_names) + NAME_GAP_PX
        picture = to_pixmap(self.image, max(1, self.width() - 4 - names_w), self.height() - 4)
        pixmap = QPixmap(picture.width() + names_w, picture.height())
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        painter.drawPixmap(names_w, 0, picture)
        painter.setPen(self.palette().color(QPalette.ColorRole.WindowText))
        row_h = picture.height() / len(self.row_names)
        for i, name in enumerate(self.row_names):
            painter.drawText(QRectF(0, i * row_h, names_w - NAME_GAP_PX / 2, row_h),
                             Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, name)
        painter.end()
        self.setPixmap(pixmap)
