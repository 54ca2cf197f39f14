"""The latent explorer in the real main window, driven by real mouse events (pytest-qt, offscreen)."""
import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication, QCheckBox, QComboBox, QPushButton, QSlider

from clipvae_studio.core.explore import decode_point


@pytest.fixture
def window(qtbot, trained_checkpoint):
    from clipvae_studio.gui import MainWindow

    win = MainWindow()
    qtbot.addWidget(win)
    win.resize(1360, 860)
    win.show()
    qtbot.waitExposed(win)
    assert win.open_checkpoint(trained_checkpoint, confirm=False)
    # The label plane passes through the latents of labels 0, 1 and 2 exactly.
    combo = win.canvas.findChild(QComboBox, "projectionCombo")
    combo.setCurrentIndex(combo.findData("label-plane"))
    QApplication.processEvents()
    yield win
    win.close()


def anchors(win):
    return win.canvas.projection.project(win.canvas.snapshot.label_mu)


def view_point(canvas, u, v):
    scene = canvas.view_box.mapViewToScene(QPointF(u, v))
    return canvas.plot_widget.mapFromScene(scene)


def drag(qtbot, canvas, uv_points):
    """A left drag through the given map points, with real mouse events on the canvas viewport."""
    viewport = canvas.plot_widget.viewport()
    points = [view_point(canvas, u, v) for u, v in uv_points]
    qtbot.mousePress(viewport, Qt.MouseButton.LeftButton, pos=points[0])
    for p in points[1:]:
        # A mouse sends at most ~100 moves a second, and pyqtgraph drops moves that come less
        # than 10 ms apart (its mouseRateLimit): pace them like a hand would.
        qtbot.wait(12)
        qtbot.mouseMove(viewport, pos=p)
        # Deliver it now: Qt merges mouse moves that queue up behind a busy GUI thread (as it
        # should in use), and this test wants every one of them.
        QApplication.processEvents()
    qtbot.mouseRelease(viewport, Qt.MouseButton.LeftButton, pos=points[-1])


def click(qtbot, canvas, u, v):
    qtbot.mouseClick(canvas.plot_widget.viewport(), Qt.MouseButton.LeftButton, pos=view_point(canvas, u, v))


def test_drag_decodes_every_move_and_anchors_score_their_label(qtbot, window):
    canvas, explorer = window.canvas, window.explorer
    image_view = window.findChild(object, "decodedImage")
    scores_view = window.findChild(object, "clipScores")
    assert image_view is explorer.point_panel.image_view and scores_view is explorer.point_panel.scores
    a = anchors(window)
    path = np.concatenate([np.linspace(a[0], a[1], 8), np.linspace(a[1], a[2], 8)[1:]])
    shown = []
    explorer.pointShown.connect(lambda d: shown.append((d, image_view.image.copy(), scores_view.scores.copy())))
    drag(qtbot, canvas, path)
    assert len(shown) >= len(path) - 2  # every move decodes (the first press only starts the drag)
    for decoded, image, scores in shown:
        np.testing.assert_allclose(image, decoded.image)  # the widgets show what was decoded
        np.testing.assert_allclose(scores, decoded.scores)
        assert abs(scores.sum() - 1) < 1e-5
    images = np.stack([s[1] for s in shown])
    scores = np.stack([s[2] for s in shown])
    changed = np.abs(np.diff(images, axis=0)).max(axis=(1, 2)) > 1e-3
    assert changed.mean() > 0.9, "the decoded image must change along the path"
    assert np.abs(scores[-1] - scores[0]).max() > 0.05, "the scores must change along the path"
    assert int(scores_view.top_label) == int(np.argmax(scores[-1]))
    # The pixmap on screen is the decoded image, enlarged by a whole factor with sharp pixels.
    shown_image = image_view.pixmap().toImage()
    h, w = images.shape[1:]
    factor = shown_image.width() // w
    assert factor >= 2 and shown_image.height() == factor * h
    expected = np.round(np.clip(images[-1], 0, 1) * 255)
    for y, x in ((h // 2, w // 2), (h // 3, 2 * w // 3), (5, 20)):
        for dy, dx in ((0, 0), (factor - 1, factor - 1)):
            assert abs(shown_image.pixelColor(x * factor + dx, y * factor + dy).red() - expected[y, x]) <= 1
    # The marker follows the pointer; the drag ended at the label-2 anchor.
    end = canvas.marker_position()
    assert np.allclose(end, a[2], atol=0.05 * np.ptp(a, axis=0).max())
    for label in (0, 1, 2):  # a trained model: CLIP names the label at its own anchor
        click(qtbot, canvas, *a[label])
        assert scores_view.top_label == label, scores_view.scores
        image, _ = canvas.decode_at(*canvas.picked_uv)  # the pixel nearest the anchor
        np.testing.assert_allclose(image_view.image, image, atol=1e-6)


def test_decision_map_is_drawn_in_the_background_and_follows_the_weights(qtbot, window):
    explorer = window.explorer
    layer = explorer.decision_layer
    toggle = window.findChild(QCheckBox, "decisionMapToggle")
    with qtbot.waitSignal(layer.updated, timeout=20000):
        qtbot.mouseClick(toggle, Qt.MouseButton.LeftButton, pos=QPointF(8, toggle.height() / 2).toPoint())
    assert toggle.isChecked() and layer.item.isVisible()
    assert layer.item.parentItem() is not None and layer.item.zValue() < 0  # behind the scatter
    dmap = layer.last_map
    rgba = layer.item.image
    assert rgba.shape == dmap.top.shape + (4,) and rgba.dtype == np.uint8
    # Spot-check cells against single decodes through the canvas.
    x0, y0, w, h = dmap.rect
    rows, cols = dmap.top.shape
    for r, c in ((rows // 4, cols // 4), (rows // 2, cols // 2), (3 * rows // 4, cols - 2)):
        u, v = x0 + (c + 0.5) * w / cols, y0 + (r + 0.5) * h / rows
        _, scores = window.canvas.decode_at(u, v)
        assert dmap.top[r, c] == int(np.argmax(scores))
    # New weights (one training step) bring a new map, computed again off the GUI thread.
    before = layer.computations
    with qtbot.waitSignal(layer.updated, timeout=20000):
        window.findChild(object, "actionStep").trigger()
    assert layer.computations == before + 1
    qtbot.mouseClick(toggle, Qt.MouseButton.LeftButton, pos=QPointF(8, toggle.height() / 2).toPoint())
    assert not toggle.isChecked() and not layer.item.isVisible()


def test_steering_climbs_toward_the_chosen_label_and_the_mixer_decodes_blends(qtbot, window):
    explorer, canvas = window.explorer, window.canvas
    a = anchors(window)
    click(qtbot, canvas, *a[0])
    explorer.steering.findChild(QComboBox, "steerLabelCombo").setCurrentIndex(1)
    explorer.steer_dock.raise_()
    button = window.findChild(QPushButton, "steerButton")
    with qtbot.waitSignal(explorer.steering.steered, timeout=20000) as blocker:
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    path = blocker.args[0]
    assert path.label == 1 and np.all(np.diff(path.label_scores) >= -1e-6)
    assert path.label_scores[-1] > 0.9 > path.label_scores[0]
    xs, _ = explorer.steering.path_item.getData()
    assert len(xs) == len(path.z)  # the whole path is drawn on the canvas
    np.testing.assert_allclose(explorer.point_panel.scores.scores, path.scores[-1], atol=1e-5)
    assert explorer.point_panel.scores.top_label == 1

    slider = window.findChild(QSlider, "mixerSlider2")
    slider.setValue(100)
    model = window.inference_model
    mu2 = model.label_latents()[2].numpy()
    np.testing.assert_allclose(explorer.current_z, mu2, atol=1e-6)
    np.testing.assert_allclose(explorer.point_panel.image_view.image, decode_point(model, mu2).image, atol=1e-6)
    window.findChild(QSlider, "mixerSlider5").setValue(100)  # normalised: half 2, half 5
    np.testing.assert_allclose(explorer.current_z, (mu2 + model.label_latents()[5].numpy()) / 2, atol=1e-5)
    assert abs(explorer.point_panel.scores.scores.sum() - 1) < 1e-5


def test_gallery_modes_export_and_copy(qtbot, window, tmp_path):
    explorer, canvas = window.explorer, window.canvas
    gallery = window.findChild(object, "galleryView")
    explorer.gallery_dock.raise_()
    h, w = window.inference_model.image_shape[1:]
    mode = gallery.findChild(QComboBox, "galleryMode")
    sizes = {}
    for key in ("labels", "corners", "interpolate", "noise"):
        with qtbot.waitSignal(gallery.generated, timeout=5000):
            mode.setCurrentIndex(mode.findData(key))
        sizes[key] = tuple(gallery.picture.shape)
    assert sizes["noise"][1] == 10 * h + 11 * 2 and sizes["noise"][2] == 10 * w + 11 * 2
    assert sizes["labels"][1] == 10 * (h + 2) + 2  # a row per label
    assert sizes["interpolate"][1] == h + 4
    # Interpolation between two clicked map points: the first tile is the decode of point A.
    a = anchors(window)
    mode.setCurrentIndex(mode.findData("interpolate"))
    click(qtbot, canvas, *a[0])
    uv_a = canvas.picked_uv
    qtbot.mouseClick(gallery.findChild(QPushButton, "galleryEndA"), Qt.MouseButton.LeftButton)
    click(qtbot, canvas, *a[1])
    uv_b = canvas.picked_uv
    qtbot.mouseClick(gallery.findChild(QPushButton, "galleryEndB"), Qt.MouseButton.LeftButton)
    first = gallery.picture[0, 2:2 + h, 2:2 + w].numpy()
    np.testing.assert_allclose(first, canvas.decode_at(*uv_a)[0], atol=1e-5)
    last = gallery.picture[0, 2:2 + h, -2 - w:-2].numpy()
    np.testing.assert_allclose(last, canvas.decode_at(*uv_b)[0], atol=1e-5)
    # The corner blend's top-left tile is the first corner label's latent.
    mode.setCurrentIndex(mode.findData("corners"))
    gallery.set_corners((3, 1, 2, 0))
    mu3 = window.inference_model.label_latents()[3].numpy()
    np.testing.assert_allclose(gallery.picture[0, 2:2 + h, 2:2 + w].numpy(),
                               decode_point(window.inference_model, mu3).image, atol=1e-5)
    out = tmp_path / "grid.png"
    assert gallery.export_png(out)
    saved = QImage(str(out))
    assert (saved.height(), saved.width()) == tuple(gallery.picture.shape[1:])
    qtbot.mouseClick(gallery.findChild(QPushButton, "galleryCopy"), Qt.MouseButton.LeftButton)
    copied = QApplication.clipboard().image()
    assert not copied.isNull() and copied.width() == saved.width()


def test_clusters_compute_in_background_and_clicking_a_point_shows_it(qtbot, window):
    explorer = window.explorer
    view = window.findChild(object, "clusterView")
    explorer.cluster_dock.raise_()
    view.count_spin.setValue(150)
    compute = view.findChild(QPushButton, "clusterCompute")
    cancel = view.findChild(QPushButton, "clusterCancel")
    qtbot.mouseClick(compute, Qt.MouseButton.LeftButton)
    assert cancel.isEnabled() and not compute.isEnabled()
    qtbot.mouseClick(cancel, Qt.MouseButton.LeftButton)
    assert view.job is None and compute.isEnabled() and "Cancelled" in view.status.text()
    with qtbot.waitSignal(view.embedded, timeout=60000):
        qtbot.mouseClick(compute, Qt.MouseButton.LeftButton)
    assert view.progress.value() == 100 and view.embedding.image_xy.shape == (150, 2)
    # Click the first point of class 4 with the mouse.
    k = int(np.flatnonzero(view.embedding.labels == 4)[0])
    x, y = view.embedding.image_xy[k]
    vb = view.plot_item.getViewBox()
    pos = view.plot_widget.mapFromScene(vb.mapViewToScene(QPointF(float(x), float(y))))
    with qtbot.waitSignal(view.pointShown, timeout=3000) as blocker:
        qtbot.mouseClick(view.plot_widget.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    row = blocker.args[0]
    assert int(window.dataset.test_labels[row]) == 4
    np.testing.assert_allclose(view.original_view.image, window.dataset.test_images[row, 0].numpy() / 255.0,
                               atol=1e-6)
    assert view.reconstruction_view.image.shape == view.original_view.image.shape
    assert abs(view.scores.scores.sum() - 1) < 1e-5
