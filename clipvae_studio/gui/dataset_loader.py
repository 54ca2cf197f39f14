"""Load a dataset off the GUI thread, with a progress dialog (folders of images take a while,
torchvision sets may download)."""
from __future__ import annotations

import threading

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QProgressDialog

DATASET_TITLES = {"mnist5k": "MNIST 5k (bundled)", "mnist": "MNIST", "fashion-mnist": "Fashion-MNIST",
                  "kmnist": "KMNIST", "idx": "IDX folder", "folder": "Image folder"}


def detect_folder_kind(path) -> str:
    """'idx' when the folder holds IDX files, else 'folder' (one sub-folder of images per class)."""
    from pathlib import Path

    from ..core.data import _IDX_NAME

    folder = Path(path)
    has_idx = folder.is_dir() and any(p.is_file() and _IDX_NAME.search(p.name) for p in folder.iterdir())
    return "idx" if has_idx else "folder"


class DatasetLoad(QObject):
    """One load in a Python thread; `finished(dataset, error_text)` arrives on the GUI thread."""

    progressed = Signal(int, int)
    finished = Signal(object, object)

    def __init__(self, kind: str, path=None, parent=None):
        super().__init__(parent)
        self.kind, self.path = kind, path
        self.dialog: QProgressDialog | None = None

    def start(self, parent_widget=None, show_progress: bool = True) -> None:
        if show_progress:
            where = f" from {self.path}" if self.path else ""
            self.dialog = QProgressDialog(f"Loading {DATASET_TITLES.get(self.kind, self.kind)}{where} ...",
                                          None, 0, 0, parent_widget)
            self.dialog.setWindowTitle("Loading dataset")
            self.dialog.setWindowModality(Qt.WindowModality.WindowModal)
            self.dialog.setMinimumDuration(300)
            self.dialog.setAutoClose(False)
            self.progressed.connect(self._progress)
            self.finished.connect(self._close_dialog)
        threading.Thread(target=self._load, name=f"load-{self.kind}", daemon=True).start()

    # Bound methods of this QObject (it lives in the GUI thread), never lambdas: signals emitted
    # from the loading thread then queue to the GUI thread.
    def _close_dialog(self, *_args) -> None:
        if self.dialog is not None:
            self.dialog.close()

    def _progress(self, done: int, total: int) -> None:
        if self.dialog is not None:
            self.dialog.setMaximum(total)
            self.dialog.setValue(done)

    def _load(self) -> None:
        from ..core.data import DatasetError, load_dataset  # torch: not needed to show the window

        options = {"progress": lambda done, total: self.progressed.emit(done, total)} if self.kind == "folder" else {}
        try:
            dataset = load_dataset(self.kind, self.path, **options)
        except DatasetError as exc:
            self.finished.emit(None, str(exc))
            return
        except Exception as exc:  # an unexpected failure still ends the progress dialog with a message
            self.finished.emit(None, f"{type(exc).__name__}: {exc}")
            return
        self.finished.emit(dataset, None)
