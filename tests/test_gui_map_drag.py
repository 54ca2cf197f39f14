"""The default latent map (the neighbourhood map) on the real canvas: PCA until the background fit
lands, then a left drag with real mouse events from one label's region to another's turns the
decoded image from the first label into the second; the picked point stays on its latent when the
map refits; the canvas shades where the map extrapolates."""
import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

pytest.importorskip("pytestqt")

from clipvae_studio.core import Trainer, preset  # noqa: E402
from clipvae_studio.core.checkpoint import load_checkpoint  # noqa: E402
from clipvae_studio.core.explore import inference_copy  # noqa: E402
from clipvae_studio.core.neighbourhood_map import NeighbourhoodMap  # noqa: E402
from clipvae_studio.gui.latent_canvas import LatentCanvas  # noqa: E402

FIT_TIMEOUT_MS = 120_000  # a cold t-SNE fit of the snapshot on a busy 2-core machine


@pytest.fixture(scope="module")
def snapshot(mnist5k, trained_checkpoint):
    ckpt = load_checkpoint(trained_checkpoint)
    trainer = Trainer(preset("studio").with_values(snapshot_size=600), mnist5k, model=ckpt.model)
    return trainer.latent_snapshot(), inference_copy(ckpt.model)


FITTED = {}  # the first canvas's cold fit; later canvases warm-start from it (a fraction of the time)


@pytest.fixture
def canvas(qtbot, mnist5k, snapshot):
    latents, model = snapshot
    canvas = LatentCanvas()
    qtbot.addWidget(canvas)
    canvas.resize(700, 560)
    canvas.set_dataset(mnist5k)
    canvas.set_model(model)
    if "map" in FITTED:
        canvas.fitter.seed(FITTED["map"])
    with qtbot.waitSignal(canvas.fitter.fitted, timeout=FIT_TIMEOUT_MS) as landed:
        canvas.set_snapshot(latents)
        assert canvas.mode == "neighbourhood"  # the default for a latent of more than 2 dimensions
        assert canvas.info_label.text().startswith("PCA until")  # says what it shows meanwhile
    FITTED.setdefault("map", landed.args[0])
    assert np.array_equal(landed.args[1], latents.indices)  # the map says which snapshot rows it placed
    canvas.show()
    qtbot.waitExposed(canvas)
    QApplication.processEvents()
    return canvas


def send_mouse(widget, kind, pos: QPoint, button, buttons):
    event = QMouseEvent(kind, QPointF(pos), QPointF(widget.mapToGlobal(pos)), button, buttons,
                        Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, event)


def drag(qtbot, widget, start: QPoint, end: QPoint, steps=12):
    button = Qt.MouseButton.LeftButton
    send_mouse(widget, QEvent.Type.MouseButtonPress, start, button, button)
    for i in range(1, steps + 1):
        qtbot.wait(25)  # pyqtgraph drops mouse moves closer than 10 ms apart (mouseRateLimit)
        p = start + (end - start) * (i / steps)
        send_mouse(widget, QEvent.Type.MouseMove, QPoint(round(p.x()), round(p.y())), Qt.MouseButton.NoButton, button)
    send_mouse(widget, QEvent.Type.MouseButtonRelease, end, button, Qt.MouseButton.NoButton)


def pixel_of(canvas, uv) -> QPoint:
    scene = canvas.view_box.mapViewToScene(QPointF(float(uv[0]), float(uv[1])))
    return canvas.plot_widget.mapFromScene(scene)  # viewport coordinates


def region_point(canvas, label: int):
    """The map point of a test image of `label` that decodes, lifted from the map, as `label`,
    and that is at least as far as most from the points of other labels (inside its region)."""
    snap, uv = canvas.snapshot, canvas.points_uv()
    others = uv[snap.labels != label]
    for i in np.argsort(-np.min(np.linalg.norm(uv[:, None] - others[None], axis=2), axis=1)):
        if snap.labels[i] != label:
            continue
        _, scores = canvas.decode_at(*uv[i])
        if int(np.argmax(scores)) == label:
            return uv[i]
    return None


def test_drag_from_one_label_to_another_changes_the_decoded_label(qtbot, canvas):
    assert isinstance(canvas.projection, NeighbourhoodMap) and canvas.info_label.text().startswith("t-SNE")
    assert np.allclose(canvas.points_uv(), canvas.projection.uv)  # the snapshot's points sit at their fitted places
    start_label, end_label = 3, 8
    start_uv, end_uv = region_point(canvas, start_label), region_point(canvas, end_label)
    assert start_uv is not None and end_uv is not None
    viewport = canvas.plot_widget.viewport()
    start, end = pixel_of(canvas, start_uv), pixel_of(canvas, end_uv)
    assert viewport.rect().contains(start) and viewport.rect().contains(end)
    decoded = []
    canvas.decoded.connect(decoded.append)
    drag(qtbot, viewport, start, end)
    labels = [int(np.argmax(d.scores)) for d in decoded]
    assert len(labels) >= 10
    assert labels[0] == start_label and labels[-1] == end_label, labels


def test_the_picked_point_keeps_its_latent_when_the_map_refits(qtbot, canvas):
    viewport = canvas.plot_widget.viewport()
    uv = canvas.points_uv()
    target = 0.5 * (uv[10] + uv[11])  # between two points: a mixture of their latents
    qtbot.mouseClick(viewport, Qt.MouseButton.LeftButton, pos=pixel_of(canvas, target))
    picked = canvas.latent_at(*canvas.picked_uv)
    old_map = canvas.projection
    with qtbot.waitSignal(canvas.fitter.fitted, timeout=FIT_TIMEOUT_MS):
        canvas.set_snapshot(canvas.snapshot)  # the same latents again: a warm refit
    qtbot.waitUntil(lambda: canvas.projection is not old_map)
    now = canvas.latent_at(*canvas.picked_uv)
    spread = np.ptp(canvas.snapshot.mu, axis=0).max()
    assert np.linalg.norm(now - picked) < 0.05 * spread
    assert canvas.marker_position() == pytest.approx(canvas.picked_uv)


def test_the_canvas_shades_where_the_map_extrapolates(qtbot, canvas):
    canvas.plot_widget.viewport().repaint()  # the view fits the map's points
    canvas.view_box.disableAutoRange()
    drawn = canvas.shade.updates
    canvas.view_box.scaleBy((3, 3))  # zoomed out: wide empty margins around the data
    qtbot.waitUntil(lambda: canvas.shade.updates > drawn)
    alpha = canvas.shade.last_alpha
    assert canvas.shade.item.isVisible() and alpha.min() == 0.0  # clear over the data
    rows, cols = alpha.shape
    assert alpha[0, 0] == 1.0 and alpha[rows - 1, cols - 1] == 1.0  # the corners are far from any point
    canvas.set_projection_mode("pca")  # a plane does not extrapolate: no shade
    qtbot.waitUntil(lambda: not canvas.shade.item.isVisible())
