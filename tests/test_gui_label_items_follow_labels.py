"""The map's and the Clusters dock's label names and colours are built only when first shown
(gui/name_items.py) and the palette's extra colours only as far as needed (gui/palette.py): what
they show must still follow the current labels when a dataset or model changes their number or
names, 10 -> 100 -> 10 (bare widgets, offscreen, no training)."""
from types import SimpleNamespace

import numpy as np
import pytest
from PySide6.QtWidgets import QApplication

pytest.importorskip("pytestqt")

from clipvae_studio.core.clusters import ClusterEmbedding  # noqa: E402
from clipvae_studio.core.events import LatentSnapshot  # noqa: E402
from clipvae_studio.gui.explorer.cluster_view import ClusterView  # noqa: E402
from clipvae_studio.gui.label_names import MAX_NAMES, elide  # noqa: E402
from clipvae_studio.gui.latent_canvas import LatentCanvas  # noqa: E402
from clipvae_studio.gui.palette import _Categorical, categorical_hex, label_color  # noqa: E402

Z_DIM = 6


def names_for(prefix, count):
    names = [f"{prefix}{k}" for k in range(count)]
    names[-1] = prefix + "-" + "x" * 40  # a long name: elided on the map, whole in its tooltip
    return names


def snapshot(count, step, seed=0, points_per_label=8):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(count), points_per_label)
    centres = rng.normal(0, 3, (count, Z_DIM))
    mu = centres[labels] + rng.normal(0, 0.3, (len(labels), Z_DIM))
    return LatentSnapshot(step, mu.astype(np.float32), labels, np.arange(len(labels)), centres.astype(np.float32))


def point_colours(item):
    return [brush.color().name() for brush in item.data["brush"]]


def shown_texts(items, indices):
    return [(items[i].toPlainText(), items[i].toolTip()) for i in indices]


def test_map_names_and_colours_follow_the_labels_from_ten_to_a_hundred_and_back(qtbot):
    canvas = LatentCanvas()
    qtbot.addWidget(canvas)
    canvas.resize(800, 600)
    canvas.set_projection_mode("pca")
    canvas.show()
    qtbot.waitExposed(canvas)
    for step, (prefix, count) in enumerate([("a", 10), ("b", 100), ("c", 10)]):
        names = names_for(prefix, count)
        canvas.set_dataset(SimpleNamespace(label_names=names))
        assert canvas.shown_names() == []  # a new dataset: no name of the old labels stays up
        snap = snapshot(count, step, seed=step)
        canvas.set_snapshot(snap)
        canvas.plot_widget.viewport().repaint()
        QApplication.processEvents()
        shown = canvas.shown_names()
        if count <= MAX_NAMES:
            assert shown == list(range(count))
        else:
            assert 0 < len(shown) <= MAX_NAMES
            built = [i for i, _ in canvas.anchor_texts.made()]
            assert len(built) < count  # the other names are not built
        # each name shown is this dataset's, in its label's colour, long ones elided with a tooltip
        assert shown_texts(canvas.anchor_texts, shown) == [(elide(names[i]), names[i]) for i in shown]
        for i in shown:
            assert canvas.anchor_texts[i].border.color().name() == label_color(i).name()
        # every point and star in its label's colour
        assert point_colours(canvas.scatter) == [label_color(k).name() for k in snap.labels]
        assert point_colours(canvas.anchor_item) == [label_color(k).name() for k in range(count)]

    # Another model with the same number of labels under other names: the names follow at once.
    renamed = names_for("d", 10)
    canvas.set_model(SimpleNamespace(label_names=renamed, z_dim=Z_DIM))
    assert shown_texts(canvas.anchor_texts, range(10)) == [(elide(n), n) for n in renamed]


def test_clusters_dock_builds_nothing_per_label_until_drawn_and_names_the_largest_clusters(qtbot):
    explorer = SimpleNamespace(model=None, window=SimpleNamespace(dataset=None, trainer=None), runner=None)
    view = ClusterView(explorer)
    qtbot.addWidget(view)
    view.resize(700, 500)
    view.show()
    qtbot.waitExposed(view)
    rng = np.random.default_rng(1)
    for count in (100, 10):
        names = names_for("k", count)
        view.set_label_names(names)
        assert list(view.anchor_texts.made()) == []
        labels = np.repeat(np.arange(count), 4)
        sizes = rng.permutation(count)
        labels = np.concatenate([labels, np.repeat(np.arange(count), sizes)])  # clusters of many sizes
        label_xy = rng.uniform(-50, 50, (count, 2))
        embedding = ClusterEmbedding(image_xy=label_xy[labels] + rng.normal(0, 1, (len(labels), 2)),
                                     label_xy=label_xy, labels=labels, indices=np.arange(len(labels)))
        view._computed((embedding, 0.1))
        QApplication.processEvents()
        assert point_colours(view.scatter) == [label_color(k).name() for k in labels]
        shown = [i for i, text in view.anchor_texts.made() if text.isVisible()]
        assert shown_texts(view.anchor_texts, shown) == [(elide(names[i]), names[i]) for i in shown]
        if count <= MAX_NAMES:
            assert shown == list(range(count))
        else:
            assert 0 < len(shown) <= MAX_NAMES
            assert int(np.argmax(sizes)) in shown  # the largest cluster is named
            boxes = [view.anchor_texts[i].mapRectToScene(view.anchor_texts[i].boundingRect()) for i in shown]
            assert not any(a.intersects(b) for j, a in enumerate(boxes) for b in boxes[j + 1:])


def test_palette_grows_its_colours_as_a_fresh_one_picks_them():
    grown = _Categorical()
    grown.up_to(40)
    grown.up_to(150)
    assert tuple(grown.colours) == _Categorical().up_to(150) == categorical_hex(150)
    assert label_color(149).name() == categorical_hex(150)[149]
