"""Toolbar and window icons from resources/icons/*.svg.

Glyphs drawn with `currentColor` are tinted with the palette's text colour, so one SVG serves
the light and the dark theme; coloured glyphs (start, stop, the app icon) keep their colours.
"""
from __future__ import annotations

from functools import lru_cache

from PySide6.QtCore import QByteArray, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPixmap
from PySide6.QtSvg import QSvgRenderer

from ..core.resources import resource_path

SIZES = (16, 20, 24, 32, 48, 64)


@lru_cache(maxsize=64)
def _svg_text(name: str) -> str:
    return resource_path("icons", f"{name}.svg").read_text(encoding="utf-8")


def _pixmap(svg: str, size: int) -> QPixmap:
    renderer = QSvgRenderer(QByteArray(svg.encode("utf-8")))
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    renderer.render(painter)
    painter.end()
    return pixmap


def icon(name: str, color: QColor | str | None = None) -> QIcon:
    """The icon `name` (file stem in resources/icons), tinted with `color` where it says currentColor."""
    svg = _svg_text(name)
    tint = QColor(color) if color is not None else QColor("#333333")
    svg = svg.replace("currentColor", tint.name())
    result = QIcon()
    for size in SIZES:
        result.addPixmap(_pixmap(svg, size))
    disabled = svg.replace(tint.name(), "#9a9a9a")
    for size in SIZES:
        faded = _pixmap(disabled, size)
        # Coloured glyphs: fade by painting at reduced opacity.
        canvas = QPixmap(size, size)
        canvas.fill(Qt.GlobalColor.transparent)
        painter = QPainter(canvas)
        painter.setOpacity(0.35)
        painter.drawPixmap(0, 0, faded)
        painter.end()
        result.addPixmap(canvas, QIcon.Mode.Disabled)
    return result


def app_icon() -> QIcon:
    return icon("app")
