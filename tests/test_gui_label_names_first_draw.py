"""With many labels the map names a few of them as soon as it draws new points, before its view
has caught up with them (gui/label_names.py, LatentCanvas._choose_names)."""
import numpy as np
import pytest
from PySide6.QtWidgets import QApplication

pytest.importorskip("pytestqt")

from clipvae_studio.core import Trainer, preset  # noqa: E402
from clipvae_studio.core.explore import inference_copy  # noqa: E402
from clipvae_studio.core.synthetic import coloured_digits  # noqa: E402
from clipvae_studio.gui.label_names import MAX_NAMES, bounds, to_pixels  # noqa: E402
from clipvae_studio.gui.latent_canvas import LatentCanvas  # noqa: E402

NUM_LABELS = 40


def shown(canvas):
    return [t for t in canvas.anchor_texts if t.isVisible()]


def test_forty_label_map_names_labels_on_its_first_draw(qtbot):
    data = coloured_digits(8, 1, NUM_LABELS, train_per_label=3, test_per_label=5)
    trainer = Trainer(preset("studio").with_values(batch_size=32, eval_every_steps=10**6), data,
                      eval_size=None, num_threads=1)
    trainer.run(max_steps=2)
    canvas = LatentCanvas()
    qtbot.addWidget(canvas)
    canvas.resize(700, 560)
    canvas.set_dataset(data)
    canvas.set_model(inference_copy(trainer.model))
    canvas.set_projection_mode("pca")
    canvas.show()
    qtbot.waitExposed(canvas)
    QApplication.processEvents()
    snapshot = trainer.latent_snapshot()
    r = canvas.view_box.viewRect()
    inside = ((snapshot.mu[:, 0] >= r.left()) & (snapshot.mu[:, 0] <= r.right())).sum()
    canvas.set_snapshot(snapshot)
    # The view still shows its empty default range here (pyqtgraph fits it at the next paint); the
    # names used to be chosen by the points inside it: none, so no name until the view next changed.
    assert len(canvas._uv) == NUM_LABELS * 5 and inside < len(canvas._uv)
    assert 0 < len(shown(canvas)) <= MAX_NAMES
    canvas.plot_widget.viewport().repaint()
    QApplication.processEvents()
    names = shown(canvas)
    assert 0 < len(names) <= MAX_NAMES < NUM_LABELS
    boxes = [t.mapRectToScene(t.boundingRect()) for t in names]
    assert not any(a.intersects(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


def test_positions_map_to_the_pixels_of_a_view_that_shows_them_all():
    points = np.array([[0.0, 0.0], [2.0, 1.0], [np.nan, 5.0]])
    stars = np.array([[4.0, -1.0]])
    rect = bounds(points, stars)
    assert rect == (0.0, -1.0, 4.0, 1.0)  # the NaN row is left out
    px = to_pixels([[0.0, 1.0], [4.0, -1.0], [2.0, 0.0]], rect, (200, 100))
    np.testing.assert_allclose(px, [[0, 0], [200, 100], [100, 50]])  # y up on the map, down on screen
    assert bounds(np.zeros((0, 2))) == (0.0, 0.0, 1.0, 1.0)
