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


class MessageRecorder:
    """Stands in for MainWindow.show_message (the window's one message helper), so no box ever blocks;
    a question without a callback is answered with `answer`."""

    def __init__(self, answer=False):
        self.calls = []
        self.answer = answer

    def __call__(self, title, text, kind="info", on_answer=None):
        self.calls.append({"title": title, "text": text, "kind": kind, "on_answer": on_answer})
        return self.answer if kind == "question" and on_answer is None else None
