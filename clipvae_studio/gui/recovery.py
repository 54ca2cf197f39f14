"""Autosave while training and the offer to restore after a crash (filled in by the reliability work)."""


def install_recovery(window) -> None:
    """Attach autosave and crash recovery to a MainWindow."""
