"""LatentCanvas: the interaction contract (left = pick, right/middle drag = pan), decoding, palette."""
from dataclasses import replace

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

pytest.importorskip("pytestqt")

from clipvae_studio.core import Trainer, preset  # noqa: E402
from clipvae_studio.core.explore import Decoded, inference_copy  # noqa: E402
from clipvae_studio.gui.latent_canvas import FIT_MIN_FILL, LatentCanvas  # noqa: E402
from clipvae_studio.gui.palette import label_brushes, label_color  # noqa: E402


@pytest.fixture(scope="module")
def trainer(mnist5k):
    trainer = Trainer(preset("studio").with_values(eval_every_steps=10**6), mnist5k)
    trainer.run(max_steps=60)
    return trainer


@pytest.fixture
def canvas(qtbot, mnist5k, trainer):
    canvas = LatentCanvas()
    qtbot.addWidget(canvas)
    canvas.resize(700, 560)
    canvas.set_dataset(mnist5k)
    canvas.set_model(inference_copy(trainer.model))
    canvas.set_projection_mode("pca")  # these tests check the planes; tests/test_gui_map_drag.py the default map
    canvas.set_snapshot(trainer.latent_snapshot())
    canvas.show()
    qtbot.waitExposed(canvas)
    QApplication.processEvents()
    return canvas


def send_mouse(widget, kind, pos: QPoint, button, buttons):
    event = QMouseEvent(kind, QPointF(pos), QPointF(widget.mapToGlobal(pos)), button, buttons,
                        Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, event)


def drag(qtbot, widget, start: QPoint, end: QPoint, button, steps=6):
    send_mouse(widget, QEvent.Type.MouseButtonPress, start, button, button)
    for i in range(1, steps + 1):
        qtbot.wait(25)  # pyqtgraph drops mouse moves closer than 10 ms apart (mouseRateLimit)
        p = start + (end - start) * (i / steps)
        send_mouse(widget, QEvent.Type.MouseMove, p, Qt.MouseButton.NoButton, button)
    send_mouse(widget, QEvent.Type.MouseButtonRelease, end, button, Qt.MouseButton.NoButton)


def view_coords(canvas, pos: QPoint):
    scene = canvas.plot_widget.mapToScene(pos)
    p = canvas.view_box.mapSceneToView(scene)
    return p.x(), p.y()


def test_scatter_shows_the_snapshot_coloured_by_label(canvas):
    assert canvas.objectName() == "latentCanvas"
    snapshot = canvas.snapshot
    scatter = canvas.scatter
    assert len(scatter.data) == len(snapshot.mu)
    brushes = label_brushes(10)
    # every point coloured by its own label
    colours = [b.color().name() for b in scatter.data["brush"]]
    assert colours == [brushes[k].color().name() for k in snapshot.labels]
    assert scatter.opts["pen"].style() == Qt.PenStyle.NoPen and scatter.opts["pxMode"]
    assert label_color(3).name() == brushes[3].color().name()
    # anchors: one per label, named
    assert len(canvas.anchor_item.data) == 10
    assert [t.textItem.toPlainText() for t in canvas.anchor_texts] == [str(i) for i in range(10)]
    uv = canvas.points_uv()
    assert np.allclose(uv, canvas.projection.project(snapshot.mu))


def test_left_click_picks_and_decodes(qtbot, canvas):
    viewport = canvas.plot_widget.viewport()
    picks, decoded = [], []
    canvas.pointPicked.connect(lambda u, v: picks.append((u, v)))
    canvas.decoded.connect(decoded.append)
    pos = QPoint(viewport.width() // 2 + 20, viewport.height() // 2 - 15)
    before = canvas.view_box.viewRange()
    qtbot.mouseClick(viewport, Qt.MouseButton.LeftButton, pos=pos)
    assert len(picks) == 1 and len(decoded) == 1
    u, v = view_coords(canvas, pos)
    assert picks[0] == pytest.approx((u, v), abs=1e-6)
    d = decoded[0]
    assert isinstance(d, Decoded)
    assert d.image.shape == (28, 28) and d.image.min() >= 0 and d.image.max() <= 1
    assert d.scores.sum() == pytest.approx(1, abs=1e-5) and d.direct_scores.sum() == pytest.approx(1, abs=1e-5)
    image, scores = canvas.decode_at(u, v)
    assert np.allclose(image, d.image, atol=1e-6) and np.allclose(scores, d.scores, atol=1e-6)
    assert canvas.marker_position() == pytest.approx((u, v))
    assert np.allclose(canvas.view_box.viewRange(), before, rtol=1e-9)  # a pick never pans


def test_left_drag_picks_every_move_right_drag_pans(qtbot, canvas):
    viewport = canvas.plot_widget.viewport()
    picks, decoded = [], []
    canvas.pointPicked.connect(lambda u, v: picks.append((u, v)))
    canvas.decoded.connect(decoded.append)
    center = QPoint(viewport.width() // 2, viewport.height() // 2)
    before = canvas.view_box.viewRange()
    drag(qtbot, viewport, center, center + QPoint(80, 40), Qt.MouseButton.LeftButton)
    assert len(picks) >= 5 and len(decoded) == len(picks)
    assert picks[-1][0] > picks[0][0] and picks[-1][1] < picks[0][1]  # right and down on screen
    assert np.allclose(canvas.view_box.viewRange(), before, rtol=1e-9)  # a left drag never pans

    picks.clear()
    drag(qtbot, viewport, center, center + QPoint(100, 0), Qt.MouseButton.RightButton)
    after = canvas.view_box.viewRange()
    assert not picks
    assert after[0][0] < before[0][0]  # dragging right moves the view to smaller u
    assert after[0][1] - after[0][0] == pytest.approx(before[0][1] - before[0][0], rel=1e-6)  # pan, not zoom
    drag(qtbot, viewport, center, center + QPoint(0, 60), Qt.MouseButton.MiddleButton)
    assert canvas.view_box.viewRange()[1] != after[1] and not picks


def test_projection_modes_and_signal(qtbot, canvas, trainer):
    changed = []
    canvas.projectionChanged.connect(lambda: changed.append(True))
    combo = canvas.projection_combo
    combo.setCurrentIndex(combo.findData("label-plane"))
    assert canvas.mode == "label-plane" and changed
    label_uv = canvas.projection.project(canvas.snapshot.label_mu)
    assert np.allclose(label_uv[0], 0, atol=1e-9) and abs(label_uv[1][1]) < 1e-9  # label 0 at origin, 1 on u
    # exact 2D is offered only for a 2-dimensional latent space
    assert not combo.model().item(combo.findData("exact-2d")).isEnabled()
    canvas.set_projection_mode("exact-2d")
    assert canvas.mode == "neighbourhood"  # the default map
    canvas.set_projection_mode("pca")
    # PCA refits on each snapshot without flipping
    first = canvas.projection.axes.copy()
    snapshot = trainer.latent_snapshot()
    snapshot.mu = snapshot.mu + 0.5  # moved points: the scatter must follow (drawn in place, same count)
    canvas.set_snapshot(snapshot)
    assert np.all(np.sum(first * canvas.projection.axes, axis=1) > 0.99)
    uv = canvas.projection.project(snapshot.mu)
    scatter = canvas.scatter
    assert np.allclose(scatter.data["x"], uv[:, 0]) and np.allclose(scatter.data["y"], uv[:, 1])
    x0, x1 = scatter.dataBounds(0)
    assert x0 == pytest.approx(uv[:, 0].min()) and x1 == pytest.approx(uv[:, 0].max())
    assert scatter.boundingRect().left() < x0  # the cached bounding box followed the move


def test_hover_shows_the_source_image(qtbot, canvas, mnist5k):
    uv = canvas.points_uv()
    i = 7
    scene = canvas.view_box.mapViewToScene(QPointF(*uv[i]))
    canvas._mouse_moved(scene)
    assert canvas.hovered_index is not None and canvas.inset.isVisible()
    j = canvas.hovered_index
    label = mnist5k.label_names[int(canvas.snapshot.labels[j])]
    assert f"<b>{label}</b>" in canvas.inset_caption.text()
    assert canvas.inset_image.pixmap().width() == 28 * 3


def fill_of_view(canvas) -> float:
    """Share of the view the points span in the tighter direction; 0 if any point is outside."""
    uv = canvas.points_uv()
    fill = 0.0
    for axis, (lo, hi) in enumerate(canvas.view_box.viewRange()):
        if uv[:, axis].min() < lo or uv[:, axis].max() > hi:
            return 0.0
        fill = max(fill, np.ptp(uv[:, axis]) / (hi - lo))
    return fill


def test_view_holds_still_while_the_points_stay_in_it(qtbot, canvas):
    snapshot = canvas.snapshot
    viewport = canvas.plot_widget.viewport()

    def show(scale):
        # scaling every latent scales the PCA map about the origin of the latent space
        canvas.set_snapshot(replace(snapshot, mu=snapshot.mu * scale, label_mu=snapshot.label_mu * scale))
        viewport.repaint()  # the view fits itself to its items when it paints
        return canvas.view_box.viewRange()

    first = show(1.0)
    assert fill_of_view(canvas) >= FIT_MIN_FILL
    assert np.allclose(show(1.04), first)  # points moved a little: the map does not twitch
    assert fill_of_view(canvas) > 0
    grown = show(1.8)  # points left the view: it fits them again
    assert not np.allclose(grown, first) and fill_of_view(canvas) >= FIT_MIN_FILL
    show(0.6)  # points shrank to a corner of the view: it fits them again
    assert fill_of_view(canvas) >= FIT_MIN_FILL

    canvas.view_box.scaleBy((5, 5))  # zoomed far out by hand: the view stops following
    canvas.view_box.disableAutoRange()
    zoomed = show(0.6)
    assert fill_of_view(canvas) < 0.3
    assert np.allclose(show(0.65), zoomed)
    qtbot.mouseClick(canvas.fit_button, Qt.MouseButton.LeftButton)
    viewport.repaint()
    assert fill_of_view(canvas) >= FIT_MIN_FILL


def test_label_names_do_not_cover_each_other(qtbot, canvas):
    snapshot = canvas.snapshot
    label_mu = snapshot.label_mu.copy()
    across = canvas.projection.axes[0]  # the map's horizontal direction in the latent space
    label_mu[1] = label_mu[0] + 0.01 * across  # three label latents a pixel or two apart on the map
    label_mu[2] = label_mu[0] - 0.01 * across
    canvas.set_snapshot(replace(snapshot, label_mu=label_mu))
    viewport = canvas.plot_widget.viewport()
    viewport.repaint()
    texts = canvas.anchor_texts

    def rects():
        return [t.mapRectToScene(t.boundingRect()) for t in texts]

    for i, rect in enumerate(rects()):
        assert not any(rect.intersects(other) for other in rects()[:i]), i
    star_uv = canvas.projection.project(label_mu[:1])[0]
    star = canvas.view_box.mapViewToScene(QPointF(*star_uv))
    for rect in rects()[:3]:  # each of the three names stays next to the shared spot
        assert abs(rect.center().x() - star.x()) < 2 * rect.width()
        assert abs(rect.center().y() - star.y()) < 2 * rect.height()
    assert {tuple(t.anchor) for t in texts[:3]} != {(0.5, 1.25)}
    canvas.view_box.disableAutoRange()
    canvas.view_box.scaleBy((0.005, 0.005), center=QPointF(*star_uv))  # zoomed in: the stars part
    viewport.repaint()
    assert all(tuple(t.anchor) == (0.5, 1.25) for t in texts[:3])  # every name above its star again
