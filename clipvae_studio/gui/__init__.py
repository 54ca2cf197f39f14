"""PySide6 views over the Qt-free core."""
from . import refcount_guard  # noqa: F401  (before any Qt use: PySide6 6.12 on Python < 3.12, see there)


def __getattr__(name):
    # Lazy so `import clipvae_studio.gui` stays cheap until the window is needed.
    if name == "MainWindow":
        from .main_window import MainWindow

        return MainWindow
    raise AttributeError(name)
