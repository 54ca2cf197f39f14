"""The main window's size and dock layout: a minimum size at which nothing is cut, the default
dock sizes, and saving and restoring the layout without ever keeping one that crushes a dock."""
from __future__ import annotations

from PySide6.QtCore import QByteArray, Qt, QTimer
from PySide6.QtWidgets import QDockWidget


class WindowLayout:
    """Mixin of MainWindow: needs `settings`, `training_toolbar`, the docks and `preset_name`."""

    def _apply_minimum_size(self) -> None:
        """The smallest window in which nothing is cut: every dock at its content's minimum and the
        whole training toolbar (Qt lets a toolbar hide its last buttons behind a >> menu)."""
        hint = self.minimumSizeHint()
        toolbar = self.training_toolbar.sizeHint().width() + 2 * self.training_toolbar.contentsMargins().left()
        self.setMinimumSize(max(hint.width(), toolbar), hint.height())

    def docks_cut(self) -> list[str]:
        """Visible docks (not floating) smaller than their content's minimum size: a layout to
        neither save nor keep."""
        cut = []
        for dock in self.findChildren(QDockWidget):
            widget = dock.widget()
            if dock.isHidden() or dock.isFloating() or widget is None or widget.visibleRegion().isEmpty():
                continue
            need = widget.minimumSizeHint().expandedTo(widget.minimumSize())
            if widget.width() < need.width() or widget.height() < need.height():
                cut.append(dock.objectName())
        return cut

    def _restore_layout(self) -> None:
        geometry = self.settings.value("window/geometry")
        if isinstance(geometry, QByteArray) and not geometry.isEmpty():
            self.restoreGeometry(geometry)
        state = self.settings.value("window/state")
        self._layout_restored = isinstance(state, QByteArray) and not state.isEmpty() and self.restoreState(state)

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not getattr(self, "_default_sizes_applied", False):
            self._default_sizes_applied = True
            if not getattr(self, "_layout_restored", True):
                QTimer.singleShot(0, self._apply_default_dock_sizes)
            else:  # a saved layout that cuts a dock's content is replaced by the default one
                QTimer.singleShot(0, lambda: self.docks_cut() and self._apply_default_dock_sizes())

    def _apply_default_dock_sizes(self) -> None:
        """First start (no saved layout): room for the plots under the map, settings at the left."""
        self.resizeDocks([self.settings_dock], [300], Qt.Orientation.Horizontal)
        # one dock per orientation: the two plots sit side by side in one row of the bottom area
        self.resizeDocks([self.loss_dock], [max(240, self.height() // 3)], Qt.Orientation.Vertical)
        self.resizeDocks([self.loss_dock, self.metrics_dock], [self.width() // 4, self.width() // 6],
                         Qt.Orientation.Horizontal)

    def save_layout(self) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        if not self.docks_cut():  # a crushed layout is not kept: the next start lays the docks out afresh
            self.settings.setValue("window/state", self.saveState())
        else:
            self.settings.remove("window/state")
        self.settings.setValue("training/preset", self.preset_name)
        self.settings.sync()

