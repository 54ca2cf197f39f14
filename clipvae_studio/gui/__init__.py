"""PySide6 views over the Qt-free core. Start-up (gui/app.py) prepares the process first
(gui/process_setup.py); importing this package changes nothing process-wide."""


def __getattr__(name):
    # Lazy so `import clipvae_studio.gui` stays cheap until the window is needed.
    if name == "MainWindow":
        from .main_window import MainWindow

        return MainWindow
    raise AttributeError(name)
