"""The File menu's work for the main window: checkpoints (open, save, recent files) and exports
(loss history as CSV, plots as PNG). A mixin of MainWindow, kept apart so each file holds one idea."""
from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtWidgets import QFileDialog

# The checkpoint and trainer modules need torch: imported where used, so the window shows first.

MAX_RECENT = 8
CHECKPOINT_FILTER = "Checkpoints (*.pt *.pth *.ckpt);;All files (*)"


class FileActions:
    """Needs the MainWindow attributes studio (core/studio.py), settings, loss_plot, metrics_plot,
    canvas and the methods show_message and confirm_discard."""

    def open_checkpoint_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open checkpoint", self._last_folder(), CHECKPOINT_FILTER)
        if path:
            self.open_checkpoint(path)

    def open_checkpoint(self, path, confirm: bool = True) -> bool:
        """Load a checkpoint (studio or reference format); on any error the current model stays."""
        from ..core.checkpoint import CheckpointError

        path = str(path)
        if confirm and not self.confirm_discard("Open a checkpoint (replaces the current model)"):
            return False
        try:
            self.studio.open(path)
        except CheckpointError as exc:
            self.show_message("Could not open the checkpoint", f"{exc}\n\nThe current model is unchanged.", "error")
            return False
        except Exception as exc:  # e.g. a trainer that cannot be built here
            self.show_message("Could not open the checkpoint", f"{Path(path).name}: {exc}\n\n"
                              "The current model is unchanged.", "error")
            return False
        self._add_recent(path)
        self.settings.setValue("paths/checkpoint", str(Path(path).parent))
        return True

    def save_checkpoint(self) -> bool:
        if not self.studio.checkpoint_path:
            return self.save_checkpoint_as()
        return self.save_checkpoint_to(self.studio.checkpoint_path)

    def save_checkpoint_as(self) -> bool:
        studio = self.studio
        suggestion = os.path.join(self._last_folder(), f"{studio.dataset.name}-{studio.trainer.step_count}.pt")
        path, _ = QFileDialog.getSaveFileName(self, "Save checkpoint", suggestion, CHECKPOINT_FILTER)
        return self.save_checkpoint_to(path) if path else False

    def save_checkpoint_to(self, path) -> bool:
        from ..core.checkpoint import CheckpointError

        path = str(path)
        try:
            self.studio.save(path)
        except CheckpointError as exc:
            self.show_message("Could not save the checkpoint", str(exc), "error")
            return False
        self._add_recent(path)
        self.settings.setValue("paths/checkpoint", str(Path(path).parent))
        self.statusBar().showMessage(f"Saved {path}", 4000)
        return True

    def export_loss_csv_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export loss history", os.path.join(self._last_folder(),
                                              "loss.csv"), "CSV (*.csv)")
        if path:
            self.export_loss_csv(path)

    def export_loss_csv(self, path) -> bool:
        try:
            self.studio.export_loss_csv(path)
        except OSError as exc:
            self.show_message("Could not export", f"{path}: {exc.strerror or exc}", "error")
            return False
        self.statusBar().showMessage(f"Wrote {path}", 4000)
        return True

    def export_png_dialog(self, which: str) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export plot", os.path.join(self._last_folder(), f"{which}.png"),
                                              "PNG image (*.png)")
        if path:
            self.export_png(which, path)

    def export_png(self, which: str, path) -> bool:
        widget = {"loss": self.loss_plot.plot_widget, "metrics": self.metrics_plot.layout_widget,
                  "canvas": self.canvas.plot_widget}[which]
        if not widget.grab().save(str(path), "PNG"):
            self.show_message("Could not export", f"Could not write {path}", "error")
            return False
        self.statusBar().showMessage(f"Wrote {path}", 4000)
        return True

    def _last_folder(self) -> str:
        return str(self.settings.value("paths/checkpoint", str(Path.home())))

    def recent_files(self) -> list[str]:
        value = self.settings.value("recent/files", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or [])]

    def _add_recent(self, path: str) -> None:
        path = str(Path(path).resolve())
        files = [path] + [p for p in self.recent_files() if p != path]
        self.settings.setValue("recent/files", files[:MAX_RECENT])

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        files = self.recent_files()
        for path in files:
            action = self.recent_menu.addAction(Path(path).name)
            action.setToolTip(path)
            action.setStatusTip(path)
            action.triggered.connect(lambda _=False, p=path: self.open_checkpoint(p))
        if not files:
            self.recent_menu.addAction("(none)").setEnabled(False)
        else:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear list", lambda: self.settings.setValue("recent/files", []))
