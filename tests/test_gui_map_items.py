"""Issue 22's map items, each on the real window or canvas (pytest-qt, offscreen):
1. the decision map and the manifold are drawn from the current map and weights, never an older pair;
2. the picked point's marker and the Point dock describe the same latent under the current map and weights;
4. after a non-finite roll-back the map shows the rolled-back latents;
9. the hover card goes when the pointer leaves the map and is not part of an exported picture."""
import copy
import threading
from dataclasses import replace

import numpy as np
import pytest
import torch
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtWidgets import QApplication, QComboBox, QLabel

pytest.importorskip("pytestqt")

from qt_helpers import MessageRecorder, action, open_window  # noqa: E402

from clipvae_studio.core import Trainer, preset  # noqa: E402
from clipvae_studio.core.decision_map import compute_decision_map, manifold_image, reencoded_scores  # noqa: E402
from clipvae_studio.core.explore import inference_copy  # noqa: E402
from clipvae_studio.gui.explorer.canvas_layers import frozen_projection  # noqa: E402
from clipvae_studio.gui.explorer.images import to_uint8  # noqa: E402
from clipvae_studio.gui.latent_canvas import LatentCanvas  # noqa: E402

WAIT_MS = 60000


@pytest.fixture
def window(qtbot, trained_checkpoint, monkeypatch):
    from clipvae_studio.gui import MainWindow

    win = MainWindow()
    qtbot.addWidget(win)
    win.resize(1360, 860)
    win.show()
    qtbot.waitExposed(win)
    monkeypatch.setattr(win, "show_message", MessageRecorder())
    assert win.open_checkpoint(trained_checkpoint, confirm=False)
    combo = win.canvas.findChild(QComboBox, "projectionCombo")
    combo.setCurrentIndex(combo.findData("pca"))  # a plane: each new snapshot moves the map
    QApplication.processEvents()
    yield win
    win.close()


def other_snapshot(snapshot, seed=0):
    """The same test images with other latents: the PCA plane turns."""
    rng = np.random.default_rng(seed)
    mu = snapshot.mu + rng.normal(0, 1.5 * snapshot.mu.std(), size=snapshot.mu.shape[1]) * \
        rng.normal(size=(len(snapshot.mu), 1))
    return replace(snapshot, step=snapshot.step + 1, mu=mu.astype(snapshot.mu.dtype))


def other_weights(model, seed=0):
    """A copy of the model with noisy weights: it decodes and classifies differently."""
    torch.manual_seed(seed)
    changed = copy.deepcopy(model)
    with torch.no_grad():
        for p in changed.parameters():
            if p.numel() > 1:
                p.add_(torch.randn_like(p) * p.std())
    return changed


def shown_rect(layer):
    r = layer.item.mapRectToParent(layer.item.boundingRect())
    return r.x(), r.y(), r.width(), r.height()


def test_layers_are_drawn_from_the_current_map_and_weights(qtbot, window, monkeypatch):
    canvas, explorer = window.canvas, window.explorer
    dmap_layer, manifold_layer = explorer.decision_layer, explorer.manifold_layer
    explorer.point_panel.decision_box.setChecked(True)
    explorer.point_panel.manifold_box.setChecked(True)
    qtbot.waitUntil(lambda: dmap_layer.computations and manifold_layer.computations, timeout=WAIT_MS)

    # The next job is held in the pool until a new map and new weights have arrived: its result
    # is for an older pair. The view stays where it is (a person panned it), so that the view
    # moving is not what throws the old job away.
    canvas.view_box.disableAutoRange()
    gate, submit = threading.Event(), explorer.runner.submit
    held = []

    def hold_first(fn, *args, **kwargs):
        if not held:
            held.append(fn)
            return submit(lambda should_stop, progress: (gate.wait(30), fn(should_stop, progress))[1], *args, **kwargs)
        return submit(fn, *args, **kwargs)

    monkeypatch.setattr(explorer.runner, "submit", hold_first)
    shown = []  # each picture as it is put on the canvas, with the map and weights current then

    def record(layer):
        picture = layer.last_map if layer is dmap_layer else layer.item.image.copy()
        shown.append((layer, picture, shown_rect(layer), canvas.model, frozen_projection(canvas.projection)))

    dmap_layer.updated.connect(lambda: record(dmap_layer))
    manifold_layer.updated.connect(lambda: record(manifold_layer))
    dmap_layer.request(geometry=True)
    qtbot.waitUntil(lambda: bool(held), timeout=WAIT_MS)
    window.signals.snapshotReady.emit(other_snapshot(canvas.snapshot))
    window.studio._set_model(other_weights(window.inference_model))
    gate.set()
    qtbot.waitUntil(lambda: {dmap_layer, manifold_layer} <= {r[0] for r in shown}, timeout=WAIT_MS)
    for layer, picture, rect, model, projection in shown:  # every picture shown fits the map and weights of then
        if layer is dmap_layer:
            rows, cols = picture.top.shape
            fresh = compute_decision_map(model, projection, picture.rect, cols, rows)
            assert np.allclose(rect, picture.rect, rtol=1e-4)
            assert (fresh.top == picture.top).mean() > 0.99, "a decision map of an older map or older weights"
        else:
            h, w = model.image_shape[1:]
            expected = to_uint8(manifold_image(model, projection, rect, picture.shape[1] // w, picture.shape[0] // h))
            assert np.abs(expected.astype(int) - picture.astype(int)).max() <= 1, "a manifold of an older pair"

    model, projection = window.inference_model, canvas.projection
    assert canvas.model is model
    dmap = dmap_layer.last_map
    rows, cols = dmap.top.shape
    fresh = compute_decision_map(model, projection, dmap.rect, cols, rows)
    assert np.allclose(shown_rect(dmap_layer), dmap.rect, rtol=1e-4)
    assert (fresh.top == dmap.top).mean() > 0.99, "the decision map shows an older map or older weights"
    picture = manifold_layer.item.image
    rect = shown_rect(manifold_layer)
    h, w = model.image_shape[1:]
    tiles_down, tiles_across = picture.shape[0] // h, picture.shape[1] // w
    expected = to_uint8(manifold_image(model, projection, rect, tiles_across, tiles_down))
    assert np.abs(expected.astype(int) - picture.astype(int)).max() <= 1, "the manifold shows an older pair"
    # So they agree: the label the decision map gives each tile's place is CLIP's label of the tile.
    centres = np.array([[rect[0] + (c + 0.5) * rect[2] / tiles_across, rect[1] + (r + 0.5) * rect[3] / tiles_down]
                        for r in range(tiles_down) for c in range(tiles_across)])
    at_centres = reencoded_scores(model, projection.lift(centres).astype(np.float32)).argmax(1)
    top_first = np.asarray(picture, dtype=np.float32)[::-1] / 255  # the picture's row 0 is its bottom
    images = [top_first[(tiles_down - 1 - r) * h:(tiles_down - r) * h, c * w:(c + 1) * w]
              for r in range(tiles_down) for c in range(tiles_across)]  # in the order of the centres
    with torch.no_grad():
        mu = model.encode_image(torch.as_tensor(np.stack(images))[:, None])[0]
        tile_labels = model.clip_scores(mu).argmax(1).numpy()
    assert (tile_labels == at_centres).mean() > 0.9
    assert dmap_layer.shown_tag == manifold_layer.shown_tag == (canvas.map_version, model)


def dock_matches_marker(window):
    canvas, panel = window.canvas, window.explorer.point_panel
    u, v = canvas.marker_position()
    image, scores = canvas.decode_at(u, v)  # what a click at the marker would show
    np.testing.assert_allclose(panel.image_view.image, image, atol=1e-5)
    np.testing.assert_allclose(panel.scores.scores, scores, atol=1e-5)


def test_the_picked_point_and_the_point_dock_stay_one_point(qtbot, window):
    canvas = window.canvas
    a = canvas.projection.project(canvas.snapshot.label_mu)
    scene = canvas.view_box.mapViewToScene(QPointF(*(0.6 * a[0] + 0.4 * a[1])))
    viewport = canvas.plot_widget.viewport()
    qtbot.mouseClick(viewport, Qt.MouseButton.LeftButton, pos=canvas.plot_widget.mapFromScene(scene))
    assert canvas.marker_position() is not None
    dock_matches_marker(window)
    # A new map (the plane turns) and new weights: the marker moves, the dock follows both.
    before = canvas.marker_position()
    window.signals.snapshotReady.emit(other_snapshot(canvas.snapshot))
    assert canvas.marker_position() != before
    dock_matches_marker(window)
    window.studio._set_model(other_weights(window.inference_model))
    dock_matches_marker(window)
    # And with real training, while it runs and after Pause.
    models = []
    window.signals.inferenceModelChanged.connect(models.append)
    action(window, "actionStart").trigger()
    qtbot.waitUntil(lambda: len(models) >= 2, timeout=WAIT_MS)
    dock_matches_marker(window)
    action(window, "actionPause").trigger()
    qtbot.waitUntil(lambda: window.studio.state == "paused", timeout=WAIT_MS)
    count = len(models)
    window.studio.step()  # the paused trainer publishes the weights of one more step
    qtbot.waitUntil(lambda: len(models) > count, timeout=WAIT_MS)
    dock_matches_marker(window)


def test_a_roll_back_shows_the_rolled_back_latents(qtbot, mnist5k, monkeypatch):
    # A huge learning rate: the loss is non-finite within a few steps and the weights roll back.
    window = open_window(qtbot, mnist5k, width=32, depth=1, snapshot_size=200, eval_every_steps=10, lr=1e3,
                         snapshot_every_s=1e-3)
    monkeypatch.setattr(window, "show_message", MessageRecorder())
    window.canvas.set_projection_mode("pca")
    errors = []
    window.signals.errorOccurred.connect(errors.append)
    action(window, "actionStart").trigger()
    qtbot.waitUntil(lambda: bool(errors) and window.studio.state == "error", timeout=WAIT_MS)
    assert errors[-1].restored_step is not None and errors[-1].restored_step < errors[-1].step
    window.studio.wait_idle(30)
    trainer = window.trainer
    rolled_back = trainer.latent_snapshot()
    qtbot.waitUntil(lambda: window.canvas.snapshot.step == rolled_back.step, timeout=WAIT_MS)
    canvas = window.canvas
    np.testing.assert_allclose(canvas.snapshot.mu, rolled_back.mu, rtol=1e-5, atol=1e-5)
    # The plane is fitted on these latents (not turned from the diverged ones' basis).
    fresh = type(canvas.projection)(rolled_back.mu.astype(np.float64))
    np.testing.assert_allclose(canvas.projection.origin, fresh.origin, atol=1e-6)
    np.testing.assert_allclose(np.abs(canvas.projection.axes @ fresh.axes.T), np.eye(2), atol=1e-4)
    np.testing.assert_allclose(canvas.points_uv(), canvas.projection.project(rolled_back.mu), atol=1e-5)


@pytest.fixture
def canvas(qtbot, mnist5k):
    trainer = Trainer(preset("studio").with_values(width=32, depth=1, snapshot_size=200), mnist5k)
    canvas = LatentCanvas()
    qtbot.addWidget(canvas)
    canvas.resize(700, 560)
    canvas.set_dataset(mnist5k)
    canvas.set_model(inference_copy(trainer.model))
    canvas.set_projection_mode("pca")
    canvas.set_snapshot(trainer.latent_snapshot())
    canvas.show()
    qtbot.waitExposed(canvas)
    QApplication.processEvents()
    return canvas


def test_the_hover_card_goes_when_the_pointer_leaves_and_stays_out_of_exports(qtbot, canvas):
    viewport = canvas.plot_widget.viewport()
    u, v = canvas.points_uv()[0]
    point = canvas.plot_widget.mapFromScene(canvas.view_box.mapViewToScene(QPointF(u, v)))
    qtbot.mouseMove(viewport, pos=point + QPoint(40, 40))
    qtbot.wait(20)
    qtbot.mouseMove(viewport, pos=point)  # onto a point: the card shows its image
    qtbot.waitUntil(lambda: canvas.inset.isVisible())
    # An export while the card is up: the picture is the plot's alone.
    with_card = canvas.plot_widget.grab().toImage()
    canvas.inset.hide()
    without_card = canvas.plot_widget.grab().toImage()
    canvas.inset.show()
    assert with_card == without_card, "the hover card is baked into the exported picture"
    # The pointer leaves the map for another widget of the canvas: the card goes.
    qtbot.mouseMove(canvas.findChild(QLabel, "canvasInfo"))
    qtbot.waitUntil(lambda: not canvas.inset.isVisible())
