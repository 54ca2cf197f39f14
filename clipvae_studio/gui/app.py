"""`clipvae-studio` (no sub-command) and `python main.py` land here."""
from __future__ import annotations

import sys


def create_application():
    """The QApplication (made once) with names, icon and the saved theme applied, after the
    process-wide settings (gui/process_setup.py)."""
    from .process_setup import collect_garbage_in_gui_thread, prepare_process

    prepare_process()  # before any other Qt use: the reference-count guard, thread tuning
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from . import style
    from .icons import app_icon
    from .main_window import settings_file

    app = QApplication.instance() or QApplication(sys.argv[:1])
    collect_garbage_in_gui_thread()
    app.setApplicationName("CLIP-VAE Studio")
    app.setOrganizationName("clipvae-studio")
    app.setDesktopFileName("clipvae-studio")
    app.setWindowIcon(app_icon())
    theme = QSettings(str(settings_file()), QSettings.Format.IniFormat).value("view/theme", "light")
    style.apply_theme(app, str(theme))
    return app


def run_gui(checkpoint_path=None) -> int:
    """Open the main window (optionally with a checkpoint) and run the event loop; returns the exit code."""
    from .platform_check import platform_problem
    if problem := platform_problem():  # say what is missing before Qt aborts on it
        print(problem, file=sys.stderr)
        return 1
    app = create_application()
    from .main_window import MainWindow

    window = MainWindow(defer_model=True)  # shown before torch is imported; the model loads once it is on screen
    window.show()
    window.load_model_when_shown(then=(lambda: window.open_checkpoint(checkpoint_path, confirm=False))
                                 if checkpoint_path else None)
    return app.exec()
