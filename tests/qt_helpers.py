"""Small helpers shared by the GUI tests."""
from PySide6.QtGui import QAction

from clipvae_studio.core import preset
from clipvae_studio.gui import MainWindow


def open_window(qtbot, dataset, **config) -> MainWindow:
    """A shown MainWindow on `dataset`, with the studio preset changed by `config` (if any)."""
    window = MainWindow(dataset=dataset, config=preset("studio").with_values(**config) if config else None)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    return window


def action(window, name) -> QAction:
    found = window.findChild(QAction, name)
    assert found is not None, name
    return found
