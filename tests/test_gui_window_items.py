"""Issue 22, "The window": one test per item, on the real window and its widgets (pytest-qt)."""
import re
import threading

import numpy as np
import pytest
from PySide6.QtCore import QPointF, QSize, Qt
from PySide6.QtWidgets import QApplication, QPushButton

pytest.importorskip("pytestqt")

from qt_helpers import MessageRecorder, action, open_window  # noqa: E402

WAIT_MS = 60_000


def click_map(qtbot, canvas, u=0.0, v=0.0):
    scene = canvas.view_box.mapViewToScene(QPointF(u, v))
    pos = canvas.plot_widget.mapFromScene(scene)
    qtbot.mouseClick(canvas.plot_widget.viewport(), Qt.MouseButton.LeftButton, pos=pos)


def settle(qtbot, ms=50):
    QApplication.processEvents()
    qtbot.wait(ms)


# --- item 3: explorer state survives a new model --------------------------------------------------
def test_item3_a_new_model_clears_point_steering_path_and_clusters(qtbot, mnist5k):
    window = open_window(qtbot, mnist5k, width=32, depth=1)
    explorer = window.explorer
    click_map(qtbot, window.canvas)
    qtbot.waitUntil(lambda: explorer.point_panel.image_view.image is not None, timeout=WAIT_MS)
    explorer.steering.steps_spin.setValue(3)
    with qtbot.waitSignal(explorer.steering.steered, timeout=WAIT_MS):
        qtbot.mouseClick(window.findChild(QPushButton, "steerButton"), Qt.MouseButton.LeftButton)
    assert len(explorer.steering.path_item.getData()[0]) > 0
    clusters = explorer.clusters
    clusters.count_spin.setValue(60)
    explorer.cluster_dock.raise_()
    with qtbot.waitSignal(clusters.embedded, timeout=WAIT_MS):
        qtbot.mouseClick(clusters.compute_button, Qt.MouseButton.LeftButton)
    assert "at step 0" in clusters.status.text()

    window.set_preset("reference")  # a fresh model (the same happens on Reset, latent size, open)
    settle(qtbot)
    assert explorer.point_panel.image_view.image is None
    assert len(explorer.point_panel.scores.scores) == 0 and explorer.current_z is None
    xs, _ = explorer.steering.path_item.getData()
    assert xs is None or len(xs) == 0
    assert clusters.embedding is None and "at step" not in clusters.status.text()
    window.close()


# --- item 4: after a non-finite roll-back the plots show the rolled-back run -------------------------------
def test_item4_roll_back_refits_the_loss_axes(qtbot, mnist5k, monkeypatch):
    window = open_window(qtbot, mnist5k, width=32, depth=1, eval_every_steps=10**6)
    monkeypatch.setattr(window, "show_message", MessageRecorder())
    trainer = window.trainer
    honest = trainer.model.loss_terms

    def exploding(x, y, config, **options):  # the loss grows to 1e27, then turns non-finite
        terms = honest(x, y, config, **options)
        if trainer.step_count >= 4:
            terms["clip"] = terms["clip"] * 1e27 * (float("inf") if trainer.step_count >= 8 else 1.0)
        return terms

    trainer.model.loss_terms = exploding
    action(window, "actionStart").trigger()
    qtbot.waitUntil(lambda: window.state == "error", timeout=WAIT_MS)
    settle(qtbot, 200)
    plot = window.loss_plot
    restored = int(window.trainer.step_count)
    (x_lo, x_hi), (y_lo, y_hi) = plot.plot_item.viewRange()
    assert plot.history.steps.max(initial=0) <= restored
    assert y_hi < 6  # log10: no decade of the diverged run (1e27) is left on the axis
    assert "x1e" not in plot.plot_item.getAxis("left").labelString()
    from clipvae_studio.gui.loss_plot import EMPTY_STEPS

    assert x_lo >= 0 and x_hi <= max(restored * 1.5 + 1, EMPTY_STEPS)  # the empty frame after a roll-back to 0
    window.close()


# --- item 5: loss plot axes: fresh model, top label, single point ------------------------------------------
def test_item5_loss_axes_follow_a_fresh_model_and_a_single_point(qtbot, mnist5k):
    from clipvae_studio.core.events import CURVE_KEYS

    window = open_window(qtbot, mnist5k, width=32, depth=1)
    plot = window.loss_plot
    steps = np.arange(1, 2001)
    batch = {"step": steps, "epoch": steps / 100.0}
    batch.update({k: np.full(len(steps), 1e-9 if i % 2 else 1e4) for i, k in enumerate(CURVE_KEYS)})
    plot.append_batch(batch)
    plot.redraw_if_needed()
    settle(qtbot)
    assert plot.plot_item.viewRange()[0][1] > 1500
    action(window, "actionReset").trigger()  # a fresh model: an empty history
    settle(qtbot)
    (x_lo, x_hi), (y_lo, y_hi) = plot.plot_item.viewRange()
    assert x_hi <= 200 and y_lo > -5 and y_hi < 5  # the empty frame, not the old 0-2000, 1e-10-1e4

    one = {"step": np.array([1]), "epoch": np.array([0.01])}
    one.update({k: np.array([1.0]) for k in CURVE_KEYS})
    plot.append_batch(one)
    plot.redraw_if_needed()
    plot.plot_item.enableAutoRange()
    settle(qtbot)
    x_lo, x_hi = plot.plot_item.viewRange()[0]
    assert x_lo >= 0 and x_hi <= 200  # not -40..40 around the lone point

    # the top decade's label lies inside the plot widget, not cut at its top edge
    plot.clear()
    settle(qtbot)
    axis = plot.plot_item.getAxis("left")
    top_label = min((axis.mapRectToScene(rect).top() for rect, _flags, text in
                     axis.generateDrawSpecs(_painter(plot))[2] if text), default=None)
    assert top_label is not None and top_label >= 0
    window.close()


def _painter(plot):
    from PySide6.QtGui import QImage, QPainter

    image = QImage(10, 10, QImage.Format.Format_ARGB32)
    painter = QPainter(image)
    painter.setFont(plot.plot_item.getAxis("left").style.get("tickFont") or plot.font())
    _painter.keep = (image, painter)  # painter ends with the test process
    return painter


# --- item 6: the layout at the window's minimum size ---------------------------------------------------------
def test_item6_nothing_is_cut_at_the_minimum_size_and_a_cut_layout_is_not_saved(qtbot, mnist5k, monkeypatch):
    window = open_window(qtbot, mnist5k, width=32, depth=1)
    window.resize(window.minimumSize())
    settle(qtbot, 100)
    assert window.size() == window.minimumSize()
    assert window.docks_cut() == []
    panel = window.settings_panel
    assert window.settings_dock.widget().width() >= panel.minimumWidth() > 150
    toolbar = window.training_toolbar
    for name in ("actionOpenCheckpoint", "actionSaveCheckpoint"):
        button = toolbar.widgetForAction(action(window, name))
        assert button.isVisible() and button.geometry().right() <= toolbar.width()
    window.studio.dataset_source = ("folder", "/data/" + "a-very-long-folder-name-" * 4)
    window._fill_dataset_combo()  # (what a loaded folder does): the toolbar keeps its width
    settle(qtbot)
    save = toolbar.widgetForAction(action(window, "actionSaveCheckpoint"))
    assert save.isVisible() and save.geometry().right() <= toolbar.width()
    metrics = window.metrics_plot
    titles = [plot.getAxis("left").label for plot in (metrics.accuracy_plot, metrics.nats_plot)]
    upper, lower = (t.mapRectToScene(t.boundingRect()) for t in titles)
    assert upper.bottom() <= lower.top()  # "accuracy" and "nats / image" do not overlap

    # a layout that cuts a dock's content is never saved (nor kept: the next start lays the docks out afresh)
    window.save_layout()
    assert window.settings.value("window/state") is not None
    # a content that asks for more than its dock has (Qt itself would grow the window instead)
    monkeypatch.setattr(window.metrics_plot, "minimumSizeHint", lambda: QSize(10, 5000))
    assert "metricsDock" in window.docks_cut()
    window.save_layout()
    assert window.settings.value("window/state") is None
    window.close()


# --- item 7: Stop says "Stopping…" at once, during a slow step -------------------------------------------------
def test_item7_stop_during_a_slow_step_says_stopping(qtbot, mnist5k):
    window = open_window(qtbot, mnist5k, width=32, depth=1)
    trainer = window.trainer
    honest = trainer.model.loss_terms
    in_step, release = threading.Event(), threading.Event()

    def slow(x, y, config, **options):  # step 3 waits until the test lets it go
        if trainer.step_count == 3:
            in_step.set()
            release.wait(30)
        return honest(x, y, config, **options)

    trainer.model.loss_terms = slow
    action(window, "actionStart").trigger()
    qtbot.waitUntil(in_step.is_set, timeout=WAIT_MS)
    action(window, "actionStop").trigger()
    settle(qtbot, 100)  # the step is still running: the status says so now, not after it ends
    assert window.status_labels["state"].text() == "Stopping…"
    assert not action(window, "actionStop").isEnabled()
    release.set()
    qtbot.waitUntil(lambda: window.state == "stopped", timeout=WAIT_MS)
    assert window.status_labels["state"].text() == "Stopped"
    window.close()


# --- item 8: no number in a dialog that moves while it is open --------------------------------------------------
def test_item8_discard_question_has_no_moving_step_count(qtbot, mnist5k, monkeypatch):
    window = open_window(qtbot, mnist5k, width=32, depth=1)
    recorder = MessageRecorder(answer=False)
    monkeypatch.setattr(window, "show_message", recorder)
    action(window, "actionStart").trigger()
    qtbot.waitUntil(lambda: window.trainer.step_count > 2, timeout=WAIT_MS)
    action(window, "actionPause").trigger()
    qtbot.waitUntil(lambda: window.state == "paused", timeout=WAIT_MS)
    window.reset_model()
    question = recorder.calls[-1]
    assert question["kind"] == "question" and "unsaved" in question["text"]
    assert not re.search(r"\d", question["text"])  # no step count that training would leave behind
    window.close()


# --- item 10: messages in the window's words --------------------------------------------------------------------
def test_item10_messages_use_labels_say_what_to_do_and_a_failed_switch_keeps_training(qtbot, mnist5k, monkeypatch):
    window = open_window(qtbot, mnist5k, width=32, depth=1)
    recorder = MessageRecorder(answer=False)
    monkeypatch.setattr(window, "show_message", recorder)
    action(window, "actionStart").trigger()
    qtbot.waitUntil(lambda: window.trainer.step_count > 0, timeout=WAIT_MS)
    window._setting_edited("z_dim", 8)
    asked = recorder.calls[-1]
    assert asked["title"] == "Change latent size (a fresh model)" and "z_dim" not in asked["text"]

    # a setting that conflicts with another one says which one to change (or applies, once both work together)
    config = window.trainer.config
    window._setting_edited("decoder_heads", True)  # (answered No: nothing changes)
    try:
        config.with_values(decoder_heads=True, arch="conv")
    except ValueError:
        window.trainer.config = config.with_values(decoder_heads=True)
        window._setting_edited("arch", "conv")
        text = recorder.calls[-1]["text"]
        assert "decoder_heads" not in text and "first change 'decoder heads'" in text

    # an offline download: no raw urlopen error, the menu instead of the command-line flag, training goes on
    from clipvae_studio.core import data

    def offline(*_args, **_kwargs):
        raise data.DatasetError("fashion-mnist: could not download or open the dataset in /x "
                                "(<urlopen error [Errno -2] Name or service not known>). "
                                "Connect to the network once, or use --dataset idx with local files.")

    monkeypatch.setattr(data, "load_dataset", offline)
    recorder.answer = True
    load = window.load_dataset_async("fashion-mnist")
    assert window.studio.busy  # still training while the new set loads
    with qtbot.waitSignal(load.finished, timeout=WAIT_MS):
        pass
    text = recorder.calls[-1]["text"]
    assert "urlopen" not in text and "--dataset" not in text and "Open dataset folder" in text
    assert window.studio.busy and window.state == "running" and window.dataset is mnist5k
    window.stop_and_wait()
    window.close()


# --- item 11: the smaller ones ---------------------------------------------------------------------------------------
def _contrast(a, b):
    def luminance(c):
        channels = [v / 255 for v in (c.red(), c.green(), c.blue())]
        linear = [v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4 for v in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_item11_shortcuts_clusters_gallery_exports_and_dark_bars(qtbot, mnist5k, monkeypatch, tmp_path):
    from PySide6.QtGui import QColor, QPalette

    window = open_window(qtbot, mnist5k, width=32, depth=1, decoder_heads=False)
    recorder = MessageRecorder()
    monkeypatch.setattr(window, "show_message", recorder)
    window._show_shortcuts()
    text = recorder.calls[-1]["text"]
    assert "Ctrl+Shift+S" in text and "<table>" in text  # aligned columns, every shortcut

    clusters = window.explorer.clusters
    assert clusters.count_spin.maximum() == len(mnist5k.test_images) and clusters.count_spin.value() <= 1000
    clusters.count_spin.setValue(400)
    qtbot.mouseClick(clusters.compute_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: clusters.progress.value() > 0, timeout=WAIT_MS)
    qtbot.mouseClick(clusters.cancel_button, Qt.MouseButton.LeftButton)
    assert clusters.progress.value() == 0

    gallery = window.explorer.gallery
    gallery.refresh()
    assert "head" not in gallery.noise_note.text()  # this model has no decoder heads

    gallery.mode_combo.setCurrentIndex(gallery.mode_combo.findData("labels"))
    gallery.refresh()
    assert gallery.image_view.row_names == list(mnist5k.label_names)  # each row says its label

    # a steering path that ends before the steps asked for says why
    from clipvae_studio.core import steering

    honest_steer = steering.steer
    monkeypatch.setattr(steering, "steer", lambda model, z0, label, steps=40, **kw: honest_steer(model, z0, label,
                                                                                                steps=2, **kw))
    panel = window.explorer.steering
    panel.steps_spin.setValue(40)
    window.explorer.steer_dock.raise_()
    with qtbot.waitSignal(panel.steered, timeout=WAIT_MS):
        qtbot.mouseClick(panel.steer_button, Qt.MouseButton.LeftButton)
    caption = window.explorer.point_panel.caption.text()
    assert "stopped before 40 steps" in caption and "no step raises the score" in caption

    png = tmp_path / "loss.png"
    assert window.export_png("loss", png) and png.exists()
    assert str(png) in window.statusBar().currentMessage()

    window.set_theme("dark")
    settle(qtbot)
    bars = window.explorer.point_panel.scores
    base = bars.palette().color(QPalette.ColorRole.Base)
    for dim, _full in bars._colors:  # a non-top bar's colour, composed over the dark base
        a = dim.alphaF()
        shown = QColor(*(round(a * c + (1 - a) * b) for c, b in
                         zip(dim.getRgb()[:3], base.getRgb()[:3])))
        assert _contrast(shown, base) >= 2.5
    window.set_theme("light")
    window.close()
