"""Load a dataset off the GUI thread, with a progress dialog (folders of images take a while,
torchvision sets may download)."""
from __future__ import annotations

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QProgressDialog

DATASET_TITLES = {"mnist5k": "MNIST 5k (bundled)", "mnist": "MNIST", "fashion-mnist": "Fashion-MNIST",
                  "kmnist": "KMNIST", "idx": "IDX folder", "folder": "Image folder"}


def detect_folder_kind(path) -> str:
    """'idx' when the folder holds IDX files, else 'folder' (one sub-folder of images per class)."""
    from pathlib import Path

    from ..core.data import IDX_FILE_NAME

    folder = Path(path)
    has_idx = folder.is_dir() and any(p.is_file() and IDX_FILE_NAME.search(p.name) for p in folder.iterdir())
    return "idx" if has_idx else "folder"


class DatasetLoad(QObject):
    """One load as a background job (gui/background_jobs.py), with a progress dialog;
    `finished(dataset, error_text)` arrives on the GUI thread."""

    finished = Signal(object, object)

    def __init__(self, kind: str, path=None, parent=None):
        super().__init__(parent)
        self.kind, self.path = kind, path
        self.dialog: QProgressDialog | None = None
        self.job = None

    def start(self, jobs, parent_widget=None, show_progress: bool = True) -> None:
        if show_progress:
            where = f" from {self.path}" if self.path else ""
            self.dialog = QProgressDialog(f"Loading {DATASET_TITLES.get(self.kind, self.kind)}{where} ...",
                                          None, 0, 0, parent_widget)
            self.dialog.setWindowTitle("Loading dataset")
            self.dialog.setWindowModality(Qt.WindowModality.WindowModal)
            self.dialog.setMinimumDuration(300)
            self.dialog.setAutoClose(False)
        kind, path = self.kind, self.path

        def work(_should_stop, progress):
            from ..core.data import DatasetError, load_dataset  # torch: not needed to show the window

            options = {"progress": progress} if kind == "folder" else {}
            try:
                return load_dataset(kind, path, **options), None
            except DatasetError as exc:
                return None, str(exc)

        self.job = jobs.submit(work, self._loaded, self._failed, self._progress, name=f"load-{kind}")

    def _loaded(self, result) -> None:
        self._close_dialog()
        self.finished.emit(*result)

    def _failed(self, message: str) -> None:  # an unexpected failure still ends the dialog with a message
        self._close_dialog()
        self.finished.emit(None, message.split("\n")[0])

    def _close_dialog(self) -> None:
        if self.dialog is not None:
            self.dialog.close()

    def _progress(self, done: int, total: int) -> None:
        if self.dialog is not None:
            self.dialog.setMaximum(total)
            self.dialog.setValue(done)
