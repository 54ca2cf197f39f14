"""How the main window talks to the person: message boxes, the shortcuts table and About."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox


class WindowMessages:
    """Mixin of MainWindow; `self.messages` keeps every message shown, newest last (tests read it)."""

    def show_message(self, title: str, text: str, kind: str = "info", on_answer=None):
        """The one way the window talks to the user (tests replace it).

        kind: "info", "warning", "error" or "question". Info, warning and error boxes are
        non-modal. A question without `on_answer` is modal and returns True for Yes; with
        `on_answer` it is non-modal and calls on_answer(bool) when answered.
        """
        self.messages.append((kind, title, text))
        icons = {"info": QMessageBox.Icon.Information, "warning": QMessageBox.Icon.Warning,
                 "error": QMessageBox.Icon.Critical, "question": QMessageBox.Icon.Question}
        box = QMessageBox(icons.get(kind, QMessageBox.Icon.Information), title, text, parent=self)
        box.setObjectName("messageBox")
        if kind == "question":
            box.setStandardButtons(QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No)
            box.setDefaultButton(QMessageBox.StandardButton.Yes)
            if on_answer is None:
                return box.exec() == QMessageBox.StandardButton.Yes
            box.finished.connect(lambda result: on_answer(result == QMessageBox.StandardButton.Yes))
        box.setWindowModality(Qt.WindowModality.NonModal)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.show()
        return box

    def _show_shortcuts(self) -> None:
        rows = [("Space", "start / pause"), ("F5", "start or resume"), ("F6", "pause"), ("Shift+F5", "stop"),
                ("F10", "one step"), ("Ctrl+Shift+R", "reset to fresh weights"), ("Ctrl+O", "open a checkpoint"),
                ("Ctrl+S", "save the checkpoint"), ("Ctrl+Shift+S", "save the checkpoint as…"),
                ("Ctrl+D", "open a dataset folder"), ("left click / drag", "pick a point on the latent map"),
                ("right or middle drag", "pan the map"), ("wheel", "zoom")]
        # a table: padding with spaces gave ragged columns in a proportional font
        table = "".join(f"<tr><td style='padding-right:18px'><b>{k}</b></td><td>{v}</td></tr>" for k, v in rows)
        self.show_message("Keyboard shortcuts", f"<table>{table}</table>", "info")

    def _show_about(self) -> None:
        self.show_message("About CLIP-VAE Studio", "Train a CLIP-VAE, watch it learn, and explore its latent "
                          "space by hand.", "info")

