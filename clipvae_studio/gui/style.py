"""Light and dark looks: Fusion style, a palette per theme, one shared style sheet, plot colours."""
from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

from ..core.resources import resource_path

THEMES = ("light", "dark")

# Plot background / foreground (axes, text) per theme.
PLOT_COLORS = {"light": ("#ffffff", "#303030"), "dark": ("#1e1f22", "#d0d0d0")}


def _dark_palette() -> QPalette:
    p = QPalette()
    window, base, text = QColor("#2b2d31"), QColor("#1e1f22"), QColor("#e3e3e3")
    roles = {
        QPalette.ColorRole.Window: window, QPalette.ColorRole.WindowText: text,
        QPalette.ColorRole.Base: base, QPalette.ColorRole.AlternateBase: QColor("#323438"),
        QPalette.ColorRole.ToolTipBase: QColor("#3a3d42"), QPalette.ColorRole.ToolTipText: text,
        QPalette.ColorRole.Text: text, QPalette.ColorRole.Button: QColor("#383a3f"),
        QPalette.ColorRole.ButtonText: text, QPalette.ColorRole.BrightText: QColor("#ff6b6b"),
        QPalette.ColorRole.Highlight: QColor("#4e79a7"), QPalette.ColorRole.HighlightedText: QColor("#ffffff"),
        QPalette.ColorRole.Link: QColor("#7fb0ff"), QPalette.ColorRole.Mid: QColor("#4a4d52"),
        QPalette.ColorRole.Midlight: QColor("#44474c"), QPalette.ColorRole.Dark: QColor("#18191b"),
        QPalette.ColorRole.Light: QColor("#55585e"), QPalette.ColorRole.PlaceholderText: QColor("#9a9ca0"),
    }
    for role, color in roles.items():
        p.setColor(role, color)
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText, QPalette.ColorRole.WindowText):
        p.setColor(QPalette.ColorGroup.Disabled, role, QColor("#777a80"))
    return p


def _light_palette() -> QPalette:
    p = QApplication.style().standardPalette()
    p.setColor(QPalette.ColorRole.Window, QColor("#f4f5f7"))
    p.setColor(QPalette.ColorRole.AlternateBase, QColor("#eceef1"))
    p.setColor(QPalette.ColorRole.Highlight, QColor("#4e79a7"))
    p.setColor(QPalette.ColorRole.Mid, QColor("#c9ccd1"))
    p.setColor(QPalette.ColorRole.Midlight, QColor("#e1e4e8"))
    p.setColor(QPalette.ColorRole.PlaceholderText, QColor("#6b7075"))
    return p


def apply_theme(app: QApplication, theme: str = "light") -> None:
    """Set the application's style, palette and style sheet for `theme`."""
    theme = theme if theme in THEMES else "light"
    app.setStyle("Fusion")
    app.setPalette(_dark_palette() if theme == "dark" else _light_palette())
    app.setStyleSheet(resource_path("style.qss").read_text(encoding="utf-8"))
    background, foreground = PLOT_COLORS[theme]
    pg.setConfigOptions(background=background, foreground=foreground, antialias=False)
    app.setProperty("clipvaeTheme", theme)


def current_theme() -> str:
    app = QApplication.instance()
    theme = app.property("clipvaeTheme") if app is not None else None
    return theme if theme in THEMES else "light"


def plot_colors(theme: str | None = None) -> tuple[str, str]:
    return PLOT_COLORS[theme or current_theme()]


def text_color() -> QColor:
    app = QApplication.instance()
    return app.palette().color(QPalette.ColorRole.WindowText) if app else QColor("#333333")


def style_plot(plot_widget: pg.PlotWidget | pg.GraphicsLayoutWidget, theme: str | None = None) -> None:
    """Recolour an existing pyqtgraph widget (background, axes) for the current theme."""
    background, foreground = plot_colors(theme)
    plot_widget.setBackground(background)
    items = plot_widget.ci.items if isinstance(plot_widget, pg.GraphicsLayoutWidget) else [plot_widget.getPlotItem()]
    for item in items:
        if not isinstance(item, pg.PlotItem):
            continue
        for name in ("left", "bottom", "right", "top"):
            axis = item.getAxis(name)
            axis.setPen(pg.mkPen(foreground))
            axis.setTextPen(pg.mkPen(foreground))
        if item.titleLabel is not None:
            item.titleLabel.setText(item.titleLabel.text, color=foreground)


def light_grid():
    """A faint grid item with two levels of lines (pyqtgraph's default draws three, the finest
    ~100 lines a side: most of a redraw's grid cost, for lines too faint to see)."""
    grid = pg.GridItem(pen=pg.mkPen(128, 128, 128, 40), textPen=None)
    grid.setTickSpacing(x=[None, None], y=[None, None])
    return grid
