"""A QLabel that shows one float image enlarged by whole factors, nearest-neighbour."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QSizePolicy

from .images import as_hwc, to_pixmap


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

    def set_image(self, image) -> None:
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
        self.setPixmap(to_pixmap(self.image, self.width() - 4, self.height() - 4))
