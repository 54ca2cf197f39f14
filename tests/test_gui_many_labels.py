"""A 40-label image folder opened in the real window (pytest-qt, offscreen): the score bars fold,
the mixer searches and blends, the palette keeps 40 colours apart, and the map's names can be thinned."""
import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtWidgets import QApplication, QLineEdit, QListWidget, QToolButton

pytest.importorskip("pytestqt")

from clipvae_studio.core.synthetic import coloured_digits  # noqa: E402
from clipvae_studio.gui.explorer.score_bars import MAX_ROWS  # noqa: E402
from clipvae_studio.gui.label_names import MAX_NAMES, elide, names_to_show, points_in_view  # noqa: E402
from clipvae_studio.gui.palette import _srgb_to_lab, label_rgb  # noqa: E402
from qt_helpers import action, open_window  # noqa: E402

WAIT_MS = 60_000
NUM_LABELS = 40
LONG_NAME = "a-very-long-class-folder-name-that-would-not-fit-anywhere"


def write_label_folder(root, num_labels=NUM_LABELS, per_label=6, size=16):
    """num_labels class sub-folders of small RGB PNGs (coloured digits, offline), one long name."""
    from PIL import Image

    data = coloured_digits(size=size, channels=3, num_labels=num_labels, train_per_label=per_label,
                           test_per_label=2)
    images = data.train_images.numpy().transpose(0, 2, 3, 1)  # N x H x W x 3 uint8
    labels = data.train_labels.numpy()
    names = [f"class{k:02d}" for k in range(num_labels)]
    names[7] = LONG_NAME
    for k, name in enumerate(names):
        folder = root / name
        folder.mkdir()
        for j, row in enumerate(np.flatnonzero(labels == k)):
            Image.fromarray(images[row]).save(folder / f"{j}.png")
    return sorted(names)


def view_point(canvas, u, v):
    return canvas.plot_widget.mapFromScene(canvas.view_box.mapViewToScene(QPointF(u, v)))


@pytest.fixture
def window(qtbot, tmp_path, mnist5k):
    names = write_label_folder(tmp_path)
    win = open_window(qtbot, mnist5k, batch_size=64)
    win.resize(1360, 860)
    with qtbot.waitSignal(win.datasetChanged, timeout=WAIT_MS):
        assert win.load_dataset_async("folder", str(tmp_path), confirm=False) is not None
    assert win.studio.dataset.num_labels == NUM_LABELS
    # One training step: a model with weights published, and a map snapshot to click on.
    action(win, "actionStep").trigger()
    qtbot.waitUntil(lambda: win.canvas.snapshot is not None and win.inference_model is not None
                    and win.inference_model.num_labels == NUM_LABELS, timeout=WAIT_MS)
    win.names = names
    yield win
    win.close()


def test_forty_label_folder_folds_scores_and_mixes_a_few_labels(qtbot, window):
    explorer, canvas = window.explorer, window.canvas
    assert explorer.label_names == window.names

    # A real click on the map decodes that point into the Point dock.
    u, v = canvas.projection.project(canvas.snapshot.mu[:1])[0]
    bars = explorer.point_panel.scores
    updates = bars.updates
    qtbot.mouseClick(canvas.plot_widget.viewport(), Qt.MouseButton.LeftButton, pos=view_point(canvas, u, v))
    qtbot.waitUntil(lambda: bars.updates > updates, timeout=WAIT_MS)
    assert len(bars.scores) == NUM_LABELS

    # Score bars: at most MAX_ROWS rows, the best scores first, the rest folded into the last row.
    shown, folded = bars.rows()
    assert len(shown) + 1 <= MAX_ROWS and folded == NUM_LABELS - len(shown) > 0
    assert shown[0] == bars.top_label
    assert np.all(np.diff(bars.scores[shown]) <= 0)
    assert min(bars.scores[shown]) >= max(np.delete(bars.scores, shown))
    metrics = bars.fontMetrics()
    _, top, _, _, row, _ = bars._layout(metrics)
    assert row >= metrics.height()  # rows no shorter than a line: the names cannot overprint
    assert bars.row_at(top + row / 2) == shown[0]
    assert bars.row_at(top + len(shown) * row + row / 2) == -1  # the folded row
    assert f"{folded} more labels" in bars.row_tooltip(-1)
    bars.grab()  # paints the folded layout

    # The mixer: a search list instead of 40 sliders; search, pick two labels, blend them.
    mixer = explorer.mixer
    assert mixer.searchable and mixer.sliders == []
    search = mixer.findChild(QLineEdit, "mixerSearch")
    label_list = mixer.findChild(QListWidget, "mixerList")
    assert search.isVisibleTo(mixer) and label_list.count() == NUM_LABELS
    qtbot.keyClicks(search, "class1")
    assert [window.names[i] for i in mixer.visible_labels()] == [f"class{k}" for k in range(10, 20)]

    def pick(label):
        item = next(label_list.item(r) for r in range(label_list.count())
                    if label_list.item(r).data(Qt.ItemDataRole.UserRole) == label)
        label_list.scrollToItem(item)
        qtbot.mouseClick(label_list.viewport(), Qt.MouseButton.LeftButton,
                         pos=label_list.visualItemRect(item).center())

    a, b = window.names.index("class12"), window.names.index("class15")
    pick(a)
    model = window.inference_model
    mu = model.label_latents().numpy()
    np.testing.assert_allclose(explorer.current_z, mu[a], atol=1e-5)
    search.clear()
    qtbot.keyClicks(search, "15")
    pick(b)
    assert mixer.picked == [a, b] and len(mixer.sliders) == 2
    np.testing.assert_allclose(explorer.current_z, (mu[a] + mu[b]) / 2, atol=1e-5)  # normalised blend
    mixer.sliders[1].setValue(0)
    np.testing.assert_allclose(explorer.current_z, mu[a], atol=1e-5)
    qtbot.mouseClick(mixer.findChild(QToolButton, f"mixerRemove{a}"), Qt.MouseButton.LeftButton)
    assert mixer.picked == [b]
    # rows rebuilt twice before the layout runs: no taken-out button is left on show over the mixer
    mixer.pick(a)
    mixer.unpick(a)
    QApplication.processEvents()
    assert [w.objectName() for w in mixer.findChildren(QToolButton)
            if w.isVisible() and w.objectName().startswith("mixerRemove")] == [f"mixerRemove{b}"]
    assert mixer.childAt(search.geometry().center()) is search

    # 40 labels, 40 colours: no two closer than a plain side-by-side difference (CIELAB distance).
    lab = _srgb_to_lab(np.array([label_rgb(i) for i in range(NUM_LABELS)]) / 255.0)
    distance = np.linalg.norm(lab[:, None] - lab[None], axis=2) + np.eye(NUM_LABELS) * 1e9
    assert distance.min() > 20

    # The long folder name is elided in the bars and the mixer, in full in the tooltip.
    long_index = window.names.index(LONG_NAME)
    assert bars.row_tooltip(long_index).startswith(LONG_NAME)

    # The map names only a few labels, and the names it shows do not cover one another.
    shown_names = [t for t in canvas.anchor_texts if t.isVisible()]
    assert len(shown_names) <= MAX_NAMES < NUM_LABELS
    boxes = [t.mapRectToScene(t.boundingRect()) for t in shown_names]
    assert not any(a.intersects(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    long_text = canvas.anchor_texts[long_index]
    assert long_text.toPlainText() == elide(LONG_NAME) and long_text.toolTip() == LONG_NAME
    assert len(elide(LONG_NAME)) < len(LONG_NAME) and elide(LONG_NAME).startswith(LONG_NAME[:5])


def test_palette_scales_to_two_hundred_labels_keeping_the_first_ten():
    from clipvae_studio.gui.palette import TABLEAU10, label_hex

    assert [label_hex(i) for i in range(10)] == list(TABLEAU10)
    colours = {label_hex(i) for i in range(200)}
    assert len(colours) == 200
    lab = _srgb_to_lab(np.array([label_rgb(i) for i in range(200)]) / 255.0)
    distance = np.linalg.norm(lab[:, None] - lab[None], axis=2) + np.eye(200) * 1e9
    assert distance.min() > 10


def test_names_to_show_keeps_the_busiest_labels_and_never_overlaps():
    rng = np.random.default_rng(0)
    anchors = rng.uniform(0, 400, size=(200, 2))
    anchors[5] = anchors[3] + [10, 3]  # label 5's name would sit on label 3's
    points = rng.uniform(0, 400, size=(2000, 2))
    labels = rng.integers(0, 200, size=2000)
    counts = points_in_view(points, labels, (0, 0, 200, 400), 200)
    assert counts.sum() == int((points[:, 0] <= 200).sum())
    counts[3], counts[5] = 1000, 999
    chosen = names_to_show(anchors, counts, box_px=(80, 16), max_names=12, viewport_px=(400, 400))
    assert 0 < len(chosen) <= 12 and chosen[0] == 3 and 5 not in chosen
    xy = anchors[chosen]
    gap = np.abs(xy[:, None] - xy[None])
    overlap = (gap[..., 0] < 80) & (gap[..., 1] < 16)
    assert overlap.sum() == len(chosen)  # each box overlaps only itself
    # labels with no point in view get no name; few labels with room: all named
    assert all(counts[i] > 0 for i in chosen)
    assert names_to_show([[0, 0], [200, 0], [0, 100]], [1, 1, 1]) == [0, 1, 2]
