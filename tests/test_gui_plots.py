"""Loss and metrics plots: buffers, TensorBoard-style smoothing, toggles, CSV; the settings panel."""
import csv

import numpy as np
import pytest
from PySide6.QtCore import Qt

pytest.importorskip("pytestqt")

from clipvae_studio.gui.loss_plot import LossHistory, LossPlot, ema_debiased, extend_buffer  # noqa: E402
from clipvae_studio.gui.training_worker import CURVE_KEYS  # noqa: E402


def batch(start, n, rng):
    steps = np.arange(start + 1, start + n + 1)
    out = {"step": steps, "epoch": steps / 10.0}
    for k in CURVE_KEYS:
        out[k] = rng.random(n) + 1
    return out


def test_ema_matches_the_tensorboard_loop():
    rng = np.random.default_rng(0)
    values = rng.normal(size=500)
    w = 0.8
    expected, last = [], 0.0
    for i, x in enumerate(values):  # TensorBoard's smoothing, debiased
        last = last * w + (1 - w) * x
        expected.append(last / (1 - w ** (i + 1)))
    assert np.allclose(ema_debiased(values, w), expected)
    assert np.allclose(ema_debiased(values, 0.0), values)


def test_history_grows_truncates_and_writes_csv(tmp_path):
    rng = np.random.default_rng(1)
    history = LossHistory(capacity=8)
    history.append(batch(0, 5, rng))
    history.append(batch(5, 30, rng))
    assert len(history) == 35 and history.capacity >= 35
    assert np.array_equal(history.steps, np.arange(1, 36))
    history.truncate_after(20)
    assert len(history) == 20 and history.steps[-1] == 20
    path = tmp_path / "loss.csv"
    history.write_csv(path)
    rows = list(csv.reader(path.open()))
    assert rows[0] == ["step", "epoch", *CURVE_KEYS] and len(rows) == 21
    assert float(rows[-1][2]) == pytest.approx(history.values("total")[-1], rel=1e-6)


def test_extend_buffer_appends_without_touching_earlier_views():
    rng = np.random.default_rng(2)
    view, expected, earlier = None, np.zeros(0), []
    for _ in range(60):
        new = rng.standard_normal(int(rng.integers(0, 400)))
        view = extend_buffer(view, new)
        expected = np.concatenate([expected, new])
        assert np.array_equal(view, expected)
        earlier.append((view, view.copy()))
    assert len(view.base) < 4 * len(view) + 4096  # grows by doubling, not per call
    assert all(np.array_equal(v, copy) for v, copy in earlier)  # the plot may still hold old views


@pytest.fixture
def shown_plot(qtbot):
    """A LossPlot on screen (redraws skip hidden plots)."""
    plot = LossPlot()
    qtbot.addWidget(plot)
    plot.show()
    return plot


def test_loss_plot_draws_smoothed_curves_incrementally(shown_plot, qtbot):
    plot = shown_plot
    rng = np.random.default_rng(2)
    plot.set_smoothing(0.9)
    plot.append_batch(batch(0, 3000, rng))
    plot.redraw_if_needed()
    plot.append_batch(batch(3000, 97_000, rng))  # 100,000 points in all
    plot.redraw_if_needed()
    curve = plot.curves["clip"]
    expected = ema_debiased(plot.history.values("clip"), 0.9)
    assert np.allclose(plot._smoothed["clip"], expected)
    # drawn decimated to ~2 points per pixel, keeping every peak and dip
    assert len(curve.xData) <= 2 * max(200, plot.plot_widget.width()) + 2 < 100_000
    assert curve.yData.max() == pytest.approx(expected.max()) and curve.yData.min() == pytest.approx(expected.min())
    raw = plot.raw_curves["clip"]
    assert raw.yData.max() == pytest.approx(plot.history.values("clip").max())
    # zoomed in by hand: the points in view are drawn exactly
    plot.plot_item.getViewBox().setXRange(50_000, 50_100, padding=0)
    plot.redraw_if_needed()
    assert 100 <= len(curve.xData) <= 103
    assert np.allclose(curve.yData, expected[curve.xData.astype(int) - 1])
    plot.plot_item.enableAutoRange()
    plot.redraw_if_needed()

    plot.x_combo.setCurrentIndex(plot.x_combo.findData("epoch"))
    assert curve.xData[-1] == pytest.approx(10_000.0)
    plot.set_log_scale(False)
    assert not plot.plot_item.ctrl.logYCheck.isChecked()

    toggle = plot.curve_toggles["kld_label"]  # the legend: one check box per curve
    qtbot.mouseClick(toggle, Qt.MouseButton.LeftButton, pos=toggle.rect().center())
    assert not toggle.isChecked()
    assert not plot.curves["kld_label"].isVisible() and not plot.raw_curves["kld_label"].isVisible()
    assert plot.curves["clip"].isVisible()
    plot.curves["kld_label"].setVisible(True)  # shown again from code: the box follows
    assert toggle.isChecked() and plot.raw_curves["kld_label"].isVisible()


def test_metrics_plot_keeps_rows_in_step_order(qtbot):
    from clipvae_studio.gui.metrics_plot import MetricsPlot

    plot = MetricsPlot()
    qtbot.addWidget(plot)
    for step in (100, 200, 300):
        plot.add_metrics({"step": step, "zero_shot_accuracy": step / 1000, "recon_nats": 100 - step / 10,
                          "kld_nats": 20.0, "label_decoder_accuracy": 0.5})
    plot.add_metrics({"step": 200, "zero_shot_accuracy": 0.9, "recon_nats": 80, "kld_nats": 21.0})  # after a roll-back
    x, y = plot.curves["zero_shot_accuracy"].getData()
    assert list(x) == [100, 200] and y[-1] == pytest.approx(0.9)


def test_metrics_plot_names_every_curve_outside_the_plots_and_aligns_the_step_axes(qtbot):
    from clipvae_studio.gui.metrics_plot import SERIES, MetricsPlot

    plot = MetricsPlot()
    qtbot.addWidget(plot)
    plot.resize(230, 330)  # the dock's width in a 1,360-pixel window
    plot.show()
    qtbot.waitExposed(plot)
    step_axis = plot.nats_plot.getAxis("bottom")
    assert not step_axis.style["showValues"]  # no evaluation yet: no made-up 0..1 step scale
    # accuracy ticks ("0.8") and nats ticks ("100") differ in width; the data areas must still line up
    for step in (200, 400):
        plot.add_metrics({"step": step, "zero_shot_accuracy": 0.9, "recon_nats": 104.0, "kld_nats": 20.0,
                          "label_decoder_accuracy": 0.8})
    qtbot.wait(50)
    assert step_axis.style["showValues"]
    top, bottom = (p.vb.sceneBoundingRect() for p in (plot.accuracy_plot, plot.nats_plot))
    assert top.left() == pytest.approx(bottom.left(), abs=0.5) and top.width() == pytest.approx(bottom.width(), abs=0.5)
    # the legend is a line of text above the plots, not an item drawn over the curves
    text = plot.legend.text().replace("&nbsp;", " ")
    assert all(name in text for _plot, name, _color in SERIES.values())
    assert plot.legend.geometry().bottom() <= plot.layout_widget.geometry().top()
    assert all(p.legend is None for p in (plot.accuracy_plot, plot.nats_plot))


def test_settings_panel_covers_every_field(qtbot):
    from dataclasses import fields

    from clipvae_studio.core.config import FIELD_HELP, TrainConfig, preset
    from clipvae_studio.gui.settings_panel import LIVE_FIELDS, SettingsPanel

    panel = SettingsPanel(preset("studio"))
    qtbot.addWidget(panel)
    assert set(panel.editors) == {f.name for f in fields(TrainConfig)}
    for name, editor in panel.editors.items():
        assert editor.toolTip() == FIELD_HELP[name]
    edits = []
    panel.valueChanged.connect(lambda name, value: edits.append((name, value)))
    panel.editors["lr"].setValue(3e-4)
    panel.editors["arch"].setCurrentText("conv")
    assert edits == [("lr", pytest.approx(3e-4)), ("arch", "conv")]
    assert panel.editors["lr"].text() == "0.0003"
    panel.set_running(True)
    assert all(e.isEnabled() == (n in LIVE_FIELDS) for n, e in panel.editors.items())


def test_loss_plot_redraws_what_is_left_after_a_rollback(shown_plot):
    plot = shown_plot
    rng = np.random.default_rng(4)
    plot.set_smoothing(0.0)
    plot.append_batch(batch(0, 80_000, rng))
    plot.redraw_if_needed()
    plot.truncate_after(30_000)  # the trainer rolled back: later points are gone
    spike = batch(30_000, 500, rng)
    spike["clip"][250] = 1e6
    plot.append_batch(spike)
    plot.redraw_if_needed()
    curve = plot.curves["clip"]
    assert curve.xData.max() == 30_500 and curve.yData.max() == 1e6
    assert curve.yData.min() == pytest.approx(plot.history.values("clip").min())
    plot.x_combo.setCurrentIndex(plot.x_combo.findData("epoch"))  # another x axis: runs rebuilt
    assert curve.xData.max() == pytest.approx(3_050.0)


def test_log_axis_labels_every_decade_or_two(shown_plot, qtbot):
    plot = shown_plot
    plot.resize(440, 300)  # about the docked size: a short y axis
    steps = np.arange(1, 2001)
    data = {"step": steps, "epoch": steps / 10.0}
    for i, key in enumerate(CURVE_KEYS):  # terms from ~1e2 down to ~1e-8, as a trained model's
        data[key] = np.logspace(2 - i, 2 - i - 3, len(steps))
    plot.append_batch(data)
    plot.redraw_if_needed()
    qtbot.wait(50)
    axis = plot.plot_item.getAxis("left")
    low, high = plot.plot_item.getViewBox().viewRange()[1]  # log10 of the values
    assert high - low > 9
    major_spacing, majors = axis.tickValues(low, high, axis.geometry().height())[0]
    assert major_spacing <= 2 and len(majors) >= 5, (major_spacing, majors)
    plot.set_log_scale(False)  # linear: the default density again
    assert axis._tickDensity == 1.0


def drawn_labels(axis) -> list[str]:
    """The texts the axis paints, after pyqtgraph's own overlap culling."""
    from PySide6.QtGui import QImage, QPainter
    image = QImage(10, 10, QImage.Format.Format_ARGB32)
    painter = QPainter(image)
    try:
        specs = axis.generateDrawSpecs(painter)
    finally:
        painter.end()
    return [text for _rect, _flags, text in specs[2]] if specs else []


def test_log_axis_labels_only_decades_unless_the_view_is_narrow(shown_plot, qtbot):
    plot = shown_plot
    plot.resize(440, 300)
    axis, view = plot.plot_item.getAxis("left"), plot.plot_item.getViewBox()
    decades = {"0.01", "0.1", "1", "10¹", "10²", "10³"}
    qtbot.wait(20)
    # Empty: whole steps and whole decades, not pyqtgraph's 0..1 (one decade labelled 2..9).
    (x_low, x_high), (y_low, y_high) = view.viewRange()
    assert (x_low, x_high) == (0, 100) and y_low < -2 and y_high > 3
    assert set(drawn_labels(axis)) == decades

    steps = np.arange(1, 301)
    data = {"step": steps, "epoch": steps / 10.0}
    for key in CURVE_KEYS:  # 300 down to ~1: two and a half decades, the first seconds of training
        data[key] = np.logspace(2.5, 0, len(steps))
    plot.append_batch(data)
    plot.redraw_if_needed()
    qtbot.wait(20)
    y_low, y_high = view.viewRange()[1]
    assert -0.5 < y_low < 0 and 2.5 < y_high < 3  # auto-range followed the data
    levels = axis.tickValues(y_low, y_high, axis.geometry().height())
    assert any(abs(v - round(v)) > 1e-6 for _spacing, values in levels for v in values)  # minor marks stay
    assert set(drawn_labels(axis)) == {"1", "10¹", "10²"}  # but only the decades are labelled

    plot.clear()
    for key in CURVE_KEYS:  # 2 .. 9: no decade inside, so the minor labels are what there is
        data[key] = np.linspace(9, 2, len(steps))
    plot.append_batch(data)
    plot.redraw_if_needed()
    qtbot.wait(20)
    assert {"3", "5"} <= set(drawn_labels(axis))

    plot.clear()
    qtbot.wait(20)
    assert view.viewRange()[0] == [0, 100] and set(drawn_labels(axis)) == decades
