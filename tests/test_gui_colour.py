"""Colour everywhere: with an RGB dataset each view shows colour, with a grey one grey (real window,
offscreen): the Point dock's decoded image, the hover thumbnail, the gallery and its PNG export,
the manifold layer, and the `sample` command's PNG grid."""
import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QImage

pytest.importorskip("pytestqt")

from clipvae_studio.core.synthetic import coloured_digits  # noqa: E402
from qt_helpers import action, open_window  # noqa: E402

WAIT_MS = 60_000


def pixels(qimage: QImage) -> np.ndarray:
    """A QImage as H x W x 3 uint8."""
    image = qimage.convertToFormat(QImage.Format.Format_RGB888)
    rows = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), image.bytesPerLine())
    return rows[:, :image.width() * 3].reshape(image.height(), image.width(), 3).copy()  # before `image` goes


def colour_spread(rgb: np.ndarray) -> float:
    """How far the channels differ, at most over the pixels (0 for a grey picture)."""
    rgb = np.asarray(rgb, dtype=np.float64)
    return float(np.abs(rgb - rgb.mean(axis=-1, keepdims=True)).max())


def view_point(canvas, u, v):
    return canvas.plot_widget.mapFromScene(canvas.view_box.mapViewToScene(QPointF(u, v)))


@pytest.mark.parametrize("channels", [3, 1], ids=["rgb", "grey"])
def test_every_view_shows_rgb_as_colour_and_grey_as_grey(qtbot, mnist5k, tmp_path, channels):
    data = coloured_digits(size=20, channels=channels, num_labels=10, train_per_label=20, test_per_label=10)
    window = open_window(qtbot, mnist5k, batch_size=64)
    window.resize(1360, 860)
    window.set_dataset(data, ("synthetic", None))
    action(window, "actionStep").trigger()
    qtbot.waitUntil(lambda: window.canvas.snapshot is not None and window.inference_model is not None
                    and window.inference_model.image_shape[0] == channels, timeout=WAIT_MS)
    is_colour = (lambda spread: spread > 2) if channels == 3 else (lambda spread: spread == 0)
    canvas, explorer = window.canvas, window.explorer
    # The Settings dock names what "auto" picked: conv for 20 x 20 RGB, the mlp for small grey images.
    assert window.settings_panel.config().arch == "auto"
    assert window.settings_panel.editors["arch"].currentText() == ("auto (conv)" if channels == 3 else "auto (mlp)")

    # Hover thumbnail of a test image (the data's own colours: clearly coloured for RGB), before
    # any click (a click holds hover back for a moment, as a drag does).
    # (the canvas's move handler, as tests/test_gui_latent_canvas.py drives it: offscreen, Qt
    # delivers no hover move to the plot's scene)
    qtbot.waitUntil(lambda: canvas.view_box.viewRect().contains(QPointF(*canvas.points_uv()[0])), timeout=WAIT_MS)
    canvas._mouse_moved(canvas.view_box.mapViewToScene(QPointF(*canvas.points_uv()[0])))
    assert canvas.hovered_index is not None, canvas.view_box.sceneBoundingRect()
    thumb = pixels(canvas.inset_image.pixmap().toImage())
    assert is_colour(colour_spread(thumb)) and (channels == 1 or colour_spread(thumb) > 40)

    # Point dock: the decoded image (float) and what is painted (the pixmap).
    u, v = canvas.projection.project(canvas.snapshot.mu[:1])[0]
    view = explorer.point_panel.image_view
    shown = view.updates
    qtbot.mouseClick(canvas.plot_widget.viewport(), Qt.MouseButton.LeftButton, pos=view_point(canvas, u, v))
    qtbot.waitUntil(lambda: view.updates > shown, timeout=WAIT_MS)
    assert view.image.ndim == (3 if channels == 3 else 2)
    assert is_colour(colour_spread(pixels(view.pixmap().toImage())))
    if channels == 3:
        assert colour_spread(view.image * 255) > 2  # the decoded channels differ

    # Gallery picture, what it shows, and its PNG export.
    gallery = explorer.gallery
    gallery.refresh()
    assert gallery.picture.shape[0] == 3  # make_grid: 3 channels, equal for grey
    assert is_colour(colour_spread(gallery.picture.permute(1, 2, 0).numpy() * 255))
    assert is_colour(colour_spread(pixels(gallery.image_view.pixmap().toImage())))
    assert gallery.export_png(tmp_path / "gallery.png")
    assert is_colour(colour_spread(np.asarray(Image.open(tmp_path / "gallery.png").convert("RGB"))))

    # Manifold layer: decoded tiles over the map.
    layer = explorer.manifold_layer
    with qtbot.waitSignal(layer.updated, timeout=WAIT_MS):
        explorer.point_panel.manifold_box.setChecked(True)
    tiles = layer.item.image
    assert tiles.ndim == (3 if channels == 3 else 2)
    if channels == 3:
        assert colour_spread(tiles) > 2
    window.close()


@pytest.mark.parametrize("channels", [3, 1], ids=["rgb", "grey"])
def test_sample_command_writes_colour_grids_for_rgb_and_grey_for_grey(tmp_path, channels):
    from clipvae_studio.cli import main
    from clipvae_studio.core import preset
    from clipvae_studio.core.checkpoint import save_checkpoint
    from clipvae_studio.core.model import CLIPVAE

    config = preset("studio").with_values(arch="mlp", width=32, depth=1, z_dim=4)
    model = CLIPVAE((channels, 12, 12), 3, arch="mlp", z_dim=4, width=32, depth=1,
                    label_names=["a", "b", "c"])
    path = save_checkpoint(tmp_path / "m.pt", model, config)
    out = tmp_path / "grid.png"
    assert main(["sample", str(path), "--noise", "--n", "4", "--out", str(out)]) == 0
    picture = np.asarray(Image.open(out).convert("RGB"))
    spread = colour_spread(picture)
    assert spread > 2 if channels == 3 else spread == 0
