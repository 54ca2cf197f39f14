"""The latent explorer: decoded image, CLIP scores, decision map, steering, gallery, clusters."""


def install_explorer(window) -> None:
    """Add the explorer's docks to a MainWindow and connect them (filled in by the explorer)."""
