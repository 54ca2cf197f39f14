"""The live loss plot: one curve per loss term plus the total, EMA smoothing, log scale,
steps or epochs on x. Data live in growing numpy buffers; the plot redraws on a timer."""
from __future__ import annotations

import csv
import time
from urllib.parse import quote, unquote

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QColor, QIcon, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QCheckBox, QComboBox, QGridLayout, QHBoxLayout, QLabel, QSlider, QVBoxLayout, QWidget

from ..core.events import CURVE_KEYS
from . import interaction
from .decade_axis import DecadeAxis
from .palette import TERM_COLORS, TERM_NAMES
from .peak_decimation import GrowingPeaks, peak_decimate
from .style import current_theme, light_grid, plot_colors, style_plot

REDRAW_MS = 100  # at most ten redraws a second, however fast batches arrive
MAX_REDRAW_MS = 1000
REDRAW_BUDGET = 0.1  # share of the GUI thread the live redraw may take: slow machines redraw less often
LOG_TICK_DENSITY = 2.0  # log y: a label every decade or two instead of every fifth
EMPTY_STEPS = 100  # an empty plot shows steps 0..100 and, on log y, 0.01..1000: whole decades, no clutter
EMPTY_LOG_DECADES = (-2, 3)
MIN_X_SPAN = {"step": 10.0, "epoch": 0.05}  # a lone point sits in a short run from 0, not in -40..40
TOP_ROOM_PX = 10  # room above the plot for the half of the top decade's label that sticks out
# While runs are compared (set_overlay) each run, this one first, has a colour family: the total
# in the full colour, the terms in lighter shades of it (Okabe-Ito hues: distinct for most viewers).
OVERLAY_FAMILIES = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9")


class LossHistory:
    """The plot's drawing buffers: the studio's loss history (the trainer's lists, core/studio.py)
    as numpy arrays that grow by doubling (appends are amortised O(1)). The plot is fed from that
    one history: batches of its new rows, and the whole of it again when the trainer rolls back."""

    def __init__(self, keys=CURVE_KEYS, capacity: int = 4096):
        self.keys = tuple(keys)
        self._n = 0
        self._alloc(capacity)

    def _alloc(self, capacity: int) -> None:
        self.capacity = capacity
        self._step = np.zeros(capacity, np.int64)
        self._epoch = np.zeros(capacity, np.float64)
        self._values = {k: np.zeros(capacity, np.float64) for k in self.keys}

    def __len__(self) -> int:
        return self._n

    def _grow(self, needed: int) -> None:
        if needed <= self.capacity:
            return
        capacity = self.capacity
        while capacity < needed:
            capacity *= 2
        old_step, old_epoch, old_values, n = self._step, self._epoch, self._values, self._n
        self._alloc(capacity)
        self._step[:n], self._epoch[:n] = old_step[:n], old_epoch[:n]
        for k in self.keys:
            self._values[k][:n] = old_values[k][:n]

    def append(self, batch: dict) -> None:
        m = len(batch["step"])
        self._grow(self._n + m)
        sl = slice(self._n, self._n + m)
        self._step[sl], self._epoch[sl] = batch["step"], batch["epoch"]
        for k in self.keys:
            self._values[k][sl] = batch[k]
        self._n += m

    def clear(self) -> None:
        self._n = 0

    def truncate_after(self, step: int) -> None:
        """Drop points after `step` (the trainer rolled back to it)."""
        self._n = int(np.searchsorted(self._step[:self._n], step, side="right"))

    @property
    def steps(self) -> np.ndarray:
        return self._step[:self._n]

    @property
    def epochs(self) -> np.ndarray:
        return self._epoch[:self._n]

    def values(self, key: str) -> np.ndarray:
        return self._values[key][:self._n]

    def set_from(self, history: dict) -> None:
        """Load a trainer's / checkpoint's history (lists keyed step, epoch, total, ...)."""
        self.clear()
        steps = history.get("step") or []
        if len(steps):
            batch = {"step": np.asarray(steps, np.int64), "epoch": np.asarray(history.get("epoch") or
                                                                                 np.zeros(len(steps)), np.float64)}
            for k in self.keys:
                vals = history.get(k)
                batch[k] = np.asarray(vals, np.float64) if vals is not None and len(vals) == len(steps) \
                    else np.full(len(steps), np.nan)
            self.append(batch)

    def write_csv(self, path) -> None:
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(("step", "epoch") + self.keys)
            columns = [self.steps, self.epochs] + [self.values(k) for k in self.keys]
            for row in zip(*columns):
                writer.writerow([int(row[0]), f"{row[1]:.6g}"] + [f"{v:.8g}" for v in row[2:]])


def extend_buffer(view: np.ndarray | None, new: np.ndarray) -> np.ndarray:
    """`view` (a leading slice of a larger buffer, or None) followed by `new`, as a view of a
    buffer that grows by doubling: a redraw copies the new points only, not the whole series."""
    n = 0 if view is None else len(view)
    base = None if view is None else (view.base if view.base is not None else view)
    if base is None or len(base) < n + len(new):
        base = np.empty(max(4096, 2 * (n + len(new))), np.float64)
        if view is not None:
            base[:n] = view
    base[n:n + len(new)] = new
    return base[:n + len(new)]


def ema_biased(values: np.ndarray, weight: float, state: float = 0.0) -> tuple[np.ndarray, float]:
    """s_i = weight * s_(i-1) + (1 - weight) * x_i from s_(-1) = state; returns (s, last s).

    Vectorised per chunk: s_i = w^(i+1) * (state + (1-w) * cumsum_j(x_j / w^(j+1))), with chunks
    short enough that w^k stays far from underflow (numpy only: scipy.signal takes seconds to import).
    """
    out = np.empty(len(values), dtype=np.float64)
    chunk = int(max(8, min(512, 100 * np.log(10) / -np.log(weight))))
    powers = weight ** np.arange(1, chunk + 1, dtype=np.float64)
    for start in range(0, len(values), chunk):
        x = values[start:start + chunk]
        p = powers[:len(x)]
        out[start:start + len(x)] = p * (state + (1.0 - weight) * np.cumsum(x / p))
        state = float(out[start + len(x) - 1])
    return out, state


def ema_debiased(values: np.ndarray, weight: float) -> np.ndarray:
    """TensorBoard's smoothing: an EMA started at 0 and divided by (1 - weight**(i+1))."""
    if weight <= 0 or len(values) == 0:
        return values.copy()
    finite = np.where(np.isfinite(values), values, 0.0)
    biased, _ = ema_biased(finite, weight)
    return biased / (1.0 - weight ** np.arange(1, len(values) + 1))


class LossPlot(QWidget):
    """Container: a small control row above the pyqtgraph PlotWidget `lossPlot`."""

    overlayRemoved = Signal(str)  # the person removed a compared run from the legend (its name)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("lossPlotPanel")
        self.history = LossHistory()
        self._dirty = False
        self._smoothing = 0.6
        self._x_axis = "step"

        self.plot_widget = pg.PlotWidget(axisItems={"left": DecadeAxis("left")})
        self.plot_widget.setObjectName("lossPlot")
        self.plot_item = self.plot_widget.getPlotItem()
        # A GridItem, not showGrid: the axes' grid lines are re-played on every repaint (~10 ms here).
        self.plot_item.addItem(light_grid())
        self.plot_item.setLabel("bottom", "step")
        self.plot_item.setLabel("left", "loss")
        self.plot_item.setMenuEnabled(True)
        left, top, right, bottom = self.plot_item.layout.getContentsMargins()
        self.plot_item.layout.setContentsMargins(left, max(top, TOP_ROOM_PX), right, bottom)
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.raw_curves: dict[str, pg.PlotDataItem] = {}
        self.curve_toggles: dict[str, QCheckBox] = {}
        for key in CURVE_KEYS:
            raw = self.plot_item.plot()
            curve = self.plot_item.plot()
            for item in (raw, curve):
                item.setSkipFiniteCheck(False)  # curves get at most ~2 points per pixel: see peak_decimate
            curve.visibleChanged.connect(lambda k=key: self._curve_visibility_changed(k))
            self.curves[key], self.raw_curves[key] = curve, raw
        self.plot_item.getViewBox().sigXRangeChanged.connect(self._x_range_changed)

        self.smoothing_slider = QSlider(Qt.Orientation.Horizontal)
        self.smoothing_slider.setObjectName("smoothingSlider")
        self.smoothing_slider.setRange(0, 99)
        self.smoothing_slider.setValue(int(self._smoothing * 100))
        self.smoothing_slider.setFixedWidth(110)
        self.smoothing_slider.setToolTip("Exponential moving average weight (TensorBoard-style, debiased)")
        self.smoothing_label = QLabel()
        self.smoothing_label.setMinimumWidth(30)
        self.smoothing_slider.valueChanged.connect(self._smoothing_changed)
        self.log_check = QCheckBox("log y")
        self.log_check.setObjectName("lossLogScale")
        self.log_check.setChecked(True)
        self.log_check.toggled.connect(self.set_log_scale)
        self.x_combo = QComboBox()
        self.x_combo.setObjectName("lossXAxis")
        self.x_combo.addItem("steps", "step")
        self.x_combo.addItem("epochs", "epoch")
        self.x_combo.currentIndexChanged.connect(lambda _i: self.set_x_axis(self.x_combo.currentData()))
        # The legend is a row of check boxes under the controls: it names each curve in its
        # colour and toggles it, and never covers the curves.
        legend = QGridLayout()
        legend.setContentsMargins(6, 0, 6, 0)
        legend.setHorizontalSpacing(12)
        legend.setVerticalSpacing(0)
        for i, key in enumerate(CURVE_KEYS):
            toggle = QCheckBox(TERM_NAMES[key])
            toggle.setObjectName(f"lossCurve_{key}")
            toggle.setChecked(True)
            toggle.setToolTip(f"Show the {TERM_NAMES[key]} curve")
            toggle.toggled.connect(lambda on, k=key: self.set_curve_visible(k, on))
            legend.addWidget(toggle, i // 3, i % 3)
            self.curve_toggles[key] = toggle
        legend.setColumnStretch(3, 1)
        self._paint_swatches()

        controls = QHBoxLayout()
        controls.setContentsMargins(6, 2, 6, 0)
        controls.addWidget(QLabel("Smoothing"))
        controls.addWidget(self.smoothing_slider)
        controls.addWidget(self.smoothing_label)
        controls.addSpacing(8)
        controls.addWidget(self.log_check)
        controls.addSpacing(8)
        controls.addWidget(QLabel("x:"))
        controls.addWidget(self.x_combo)
        controls.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(controls)
        layout.addLayout(legend)
        self._build_overlay_legend(layout)
        layout.addWidget(self.plot_widget, 1)

        self._smoothed: dict[str, np.ndarray] = {}
        self._smoothed_n = 0
        self._ema_state: dict[str, float] = {}
        self._set_pens()
        self._smoothing_changed(self.smoothing_slider.value())
        self.set_log_scale(True)  # also frames the empty view
        self.timer = QTimer(self)
        self.timer.setInterval(REDRAW_MS)
        self.timer.timeout.connect(self._timed_redraw)
        self.timer.start()

    # --- data in -----------------------------------------------------------------
    def append_batch(self, batch: dict) -> None:
        self.history.append(batch)
        self._dirty = True

    def set_history(self, history: dict) -> None:
        """Show `history` instead of what was drawn (a new model, a roll-back): the axes are
        re-fitted to it, or framed as empty; nothing of the old ranges stays."""
        self.history.set_from(history)
        self._invalidate_smoothing()
        self._refit()

    def clear(self) -> None:
        self.history.clear()
        self._invalidate_smoothing()
        self._refit()

    def truncate_after(self, step: int) -> None:
        self.history.truncate_after(step)
        self._invalidate_smoothing()
        self._refit()

    def _refit(self) -> None:
        """The drawn data changed as a whole: draw it now and let the view fit it again (an
        empty history gets the empty frame)."""
        if not len(self.history):
            self._frame_empty_view()
            return
        self._dirty = True
        self.redraw_if_needed(force=True)
        self.plot_item.enableAutoRange()

    # --- view options -------------------------------------------------------------
    def set_smoothing(self, weight: float) -> None:
        self.smoothing_slider.setValue(int(round(min(max(weight, 0.0), 0.99) * 100)))

    @property
    def smoothing(self) -> float:
        return self._smoothing

    def _smoothing_changed(self, value: int) -> None:
        self._smoothing = value / 100.0
        self.smoothing_label.setText(f"{self._smoothing:.2f}")
        self._invalidate_smoothing()

    def set_log_scale(self, on: bool) -> None:
        if self.log_check.isChecked() != on:
            self.log_check.setChecked(on)
            return
        self.plot_item.setLogMode(x=False, y=on)  # (this resets the view's limits)
        self._limit_x()
        left = self.plot_item.getAxis("left")
        # On log y the ticks are powers of ten: an SI factor ("loss (x1e+27)") only mislabels them.
        left.enableAutoSIPrefix(not on)
        if hasattr(left, "setTickDensity"):  # older pyqtgraph releases lack it
            # The terms span ~10 decades on a short axis: at the default density pyqtgraph
            # labels every fifth decade only (1 and 1e-5).
            left.setTickDensity(LOG_TICK_DENSITY if on else 1.0)
        self._frame_empty_view()
        self._dirty = True

    def _limit_x(self) -> None:
        """Steps and epochs start at 0; a lone point gets a short run of them, not -40..40 around it."""
        self.plot_item.getViewBox().setLimits(xMin=0, minXRange=MIN_X_SPAN[self._x_axis])

    def _frame_empty_view(self) -> None:
        """With no data pyqtgraph shows 0..1 on each axis: fractional steps, and on log y one
        decade labelled 2..9. Frame whole steps and decades instead; auto-range stays on, so the
        first batch re-fits the view to the data."""
        if len(self.history):
            return
        for item in (*self.curves.values(), *self.raw_curves.values()):
            item.setData([], [])  # the old curves' bounds would re-fit the view before the next redraw
        log_y = self.log_check.isChecked()
        self.plot_item.setXRange(0, EMPTY_STEPS, padding=0)
        self.plot_item.setYRange(*(EMPTY_LOG_DECADES if log_y else (0, 1)), padding=0.04)  # room for the top label
        self.plot_item.enableAutoRange()

    def set_x_axis(self, which: str) -> None:
        self._x_axis = "epoch" if which == "epoch" else "step"
        self._reset_peaks()
        self._limit_x()
        self.plot_item.setLabel("bottom", "epoch" if self._x_axis == "epoch" else "step")
        index = self.x_combo.findData(self._x_axis)
        if index != self.x_combo.currentIndex():
            self.x_combo.setCurrentIndex(index)
        self._dirty = True
        self.redraw_if_needed()
        self.plot_item.enableAutoRange()

    def set_curve_visible(self, key: str, visible: bool) -> None:
        self.curves[key].setVisible(visible)

    def _curve_visibility_changed(self, key: str) -> None:
        visible = self.curves[key].isVisible()
        self.raw_curves[key].setVisible(visible and self._smoothing > 0)
        toggle = self.curve_toggles[key]
        if toggle.isChecked() != visible:
            toggle.blockSignals(True)
            toggle.setChecked(visible)
            toggle.blockSignals(False)

    def apply_theme(self) -> None:
        style_plot(self.plot_widget)
        self._set_pens()
        self._paint_swatches()
        self._set_overlay_pens()

    def _set_pens(self) -> None:
        """One-pixel opaque pens only. Qt's raster engine strokes wider or translucent lines
        ~5x slower (measured: 33 ms vs 6 ms CPU to paint 12 curves of 5,000 steps), so the faint
        raw curves get their colour pre-blended with the background instead of alpha."""
        background = QColor(plot_colors()[0])
        for key in CURVE_KEYS:
            color = QColor(self._color(key))
            faint = QColor(*(int(0.3 * a + 0.7 * b) for a, b in zip(color.getRgb()[:3], background.getRgb()[:3])))
            self.curves[key].setPen(pg.mkPen(color, width=1))
            self.raw_curves[key].setPen(pg.mkPen(faint, width=1))

    def _paint_swatches(self) -> None:
        """A short line in each curve's colour as the icon of its check box."""
        for key, toggle in self.curve_toggles.items():
            pixmap = QPixmap(18, 10)
            pixmap.fill(Qt.GlobalColor.transparent)
            painter = QPainter(pixmap)
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            pen = QPen(QColor(self._color(key)))
            pen.setWidthF(3.0 if key == "total" else 2.4)
            pen.setCapStyle(Qt.PenCapStyle.RoundCap)
            painter.setPen(pen)
            painter.drawLine(2, 5, 16, 5)
            painter.end()
            toggle.setIcon(QIcon(pixmap))

    def _color(self, key: str) -> str:
        if getattr(self, "overlays", None):  # comparing runs: this one has a colour family too
            return self.family_color(0, key)
        if key == "total":
            return "#e8e8e8" if current_theme() == "dark" else "#262626"
        return TERM_COLORS[key]

    # --- drawing ------------------------------------------------------------------
    def _invalidate_smoothing(self) -> None:
        self._smoothed, self._ema_state, self._smoothed_n = {}, {}, 0
        self._reset_peaks()

    def _reset_peaks(self) -> None:
        """The drawn series' earlier points changed: their kept min/max runs are stale."""
        self._peaks = {(key, kind): GrowingPeaks() for key in CURVE_KEYS for kind in ("smoothed", "raw")}
        self._dirty = True

    def _update_smoothing(self) -> None:
        """Extend the smoothed series over the new points only (the EMA state carries over)."""
        n, start, w = len(self.history), self._smoothed_n, self._smoothing
        if n == start:
            return
        debias = 1.0 - w ** np.arange(start + 1, n + 1, dtype=np.float64) if w > 0 else None
        for key in CURVE_KEYS:
            new = self.history.values(key)[start:n]
            if w > 0:
                finite = np.where(np.isfinite(new), new, 0.0)
                biased, self._ema_state[key] = ema_biased(finite, w, self._ema_state.get(key, 0.0))
                new = biased / debias
            self._smoothed[key] = extend_buffer(self._smoothed.get(key), new)
        self._smoothed_n = n

    def redraw_if_needed(self, force: bool = False) -> None:
        """Redraw if data came in; `force`: also while hidden (the old curves must not linger)."""
        if not self._dirty or not (force or self.isVisible()):
            return
        self._dirty = False
        self._update_smoothing()
        x = self.history.epochs if self._x_axis == "epoch" else self.history.steps.astype(np.float64)
        visible = self._visible_slice(x)
        buckets = max(200, self.plot_widget.width())
        x_shown = x[visible]
        smoothing = self._smoothing > 0
        whole = visible == slice(0, len(x))  # the live view: reduce only the new points

        def decimate(key, kind, y):
            return (self._peaks[key, kind] if whole else peak_decimate)(x_shown, y[visible], buckets)

        for key in CURVE_KEYS:
            smoothed = self._smoothed.get(key, np.zeros(0))
            self.curves[key].setData(*decimate(key, "smoothed", smoothed))
            raw = self.raw_curves[key]
            if smoothing:
                raw.setData(*decimate(key, "raw", self.history.values(key)))
                raw.setVisible(self.curves[key].isVisible())
            else:
                raw.setVisible(False)
        self._draw_overlays(buckets)

    def _visible_slice(self, x: np.ndarray) -> slice:
        """All points while the view follows the data; the points in view (plus one each side)
        once the user has zoomed or panned along x."""
        view = self.plot_item.getViewBox()
        if view.autoRangeEnabled()[0] or len(x) == 0:
            return slice(0, len(x))
        lo, hi = view.viewRange()[0]
        return slice(max(0, int(np.searchsorted(x, lo)) - 1), min(len(x), int(np.searchsorted(x, hi)) + 1))

    def _x_range_changed(self, *_):
        # Zoomed or panned by hand: the decimated slice must follow the view.
        if not self.plot_item.getViewBox().autoRangeEnabled()[0]:
            self._dirty = True

    def _timed_redraw(self) -> None:
        """The live redraw: new data, then paint at once, timed; the next redraw waits long enough
        that drawing stays within REDRAW_BUDGET of the GUI thread (axes and curves cost ~10 ms on
        a free core, several times that on a busy machine, where the event loop must stay lively)."""
        if not self._dirty or not self.isVisible() or interaction.dragging():
            return  # while the map is dragged the curves wait (interaction.py); they stay dirty
        start = time.perf_counter()
        self.redraw_if_needed()
        self.plot_widget.viewport().repaint()
        cost_ms = (time.perf_counter() - start) * 1000
        interval = int(min(MAX_REDRAW_MS, max(REDRAW_MS, cost_ms / REDRAW_BUDGET)))
        if abs(interval - self.timer.interval()) > 20:
            self.timer.setInterval(interval)

    def showEvent(self, event):
        self._dirty = True
        super().showEvent(event)

    # --- other runs overlaid to compare (gui/run_follow.py feeds them) ----------------------------
    def _build_overlay_legend(self, layout) -> None:
        self.overlays: dict[str, dict] = {}  # run name -> {"history", "curves", "family", "smoothed"}
        self.primary_name = ""
        self.overlay_legend = QLabel()
        self.overlay_legend.setObjectName("lossCompareLegend")
        self.overlay_legend.setWordWrap(True)
        self.overlay_legend.setContentsMargins(6, 0, 6, 0)
        self.overlay_legend.setVisible(False)
        self.overlay_legend.linkActivated.connect(self._legend_link)
        layout.addWidget(self.overlay_legend)

    def set_primary_name(self, name: str) -> None:
        """The name of the run drawn in the term colours (shown in the legend while comparing)."""
        self.primary_name = name
        self._update_overlay_legend()

    def set_overlay(self, name: str, history: dict) -> None:
        """Draw (or redraw) run `name` over this one: `history` lists keyed step, epoch and the
        loss keys. Each visible term is drawn in the run's colour family."""
        overlay = self.overlays.get(name)
        if overlay is None:
            used = {o["family"] for o in self.overlays.values()}
            family = next((i for i in range(1, len(OVERLAY_FAMILIES)) if i not in used), len(self.overlays) + 1)
            curves = {}
            for key in CURVE_KEYS:
                curve = self.plot_item.plot()
                curve.setSkipFiniteCheck(False)
                curve.setZValue(-1)  # under this run's curves
                curves[key] = curve
            overlay = self.overlays[name] = {"history": LossHistory(), "curves": curves, "family": family,
                                             "smoothed": None}
            self._compare_mode_changed()
        overlay["history"].set_from(history)
        overlay["smoothed"] = None
        self._dirty = True

    def remove_overlay(self, name: str) -> None:
        overlay = self.overlays.pop(name, None)
        if overlay is None:
            return
        for curve in overlay["curves"].values():
            self.plot_item.removeItem(curve)
        self._compare_mode_changed()
        self._dirty = True

    def _compare_mode_changed(self) -> None:
        """This run's pens and swatches: the term colours alone, its family while comparing."""
        self._set_pens()
        self._paint_swatches()
        self._set_overlay_pens()

    def overlay_color(self, name: str, key: str = "total") -> str:
        return self.family_color(self.overlays[name]["family"], key)

    @staticmethod
    def family_color(family: int, key: str = "total") -> str:
        """Colour family `family`'s colour for curve `key`: the hue itself for the total, the
        terms in lighter shades (towards the background)."""
        base = QColor(OVERLAY_FAMILIES[family % len(OVERLAY_FAMILIES)])
        if key == "total":
            return base.name()
        shade = 0.2 + 0.45 * CURVE_KEYS.index(key) / (len(CURVE_KEYS) - 1)
        background = QColor(plot_colors()[0])
        mixed = (int((1 - shade) * a + shade * b) for a, b in zip(base.getRgb()[:3], background.getRgb()[:3]))
        return QColor(*mixed).name()

    def _set_overlay_pens(self) -> None:
        for name, overlay in self.overlays.items():
            for key, curve in overlay["curves"].items():
                curve.setPen(pg.mkPen(self.overlay_color(name, key), width=1))
        self._update_overlay_legend()

    def _update_overlay_legend(self) -> None:
        if not self.overlays:
            self.overlay_legend.setVisible(False)
            return
        runs = [(self.family_color(0), f"<b>{_escape(self.primary_name or 'this run')}</b>")]
        runs += [(self.overlay_color(name), f"{_escape(name)}&nbsp;<a href='remove:{quote(name)}' "
                  f"style='text-decoration:none'>&#10005;</a>") for name in self.overlays]
        parts = [f"<nobr><span style='color:{color}'>&#9644;&#9644;</span>&nbsp;{name}</nobr>" for color, name in runs]
        self.overlay_legend.setText("Runs: " + " &nbsp;&nbsp; ".join(parts) + " &nbsp;<small>(total darkest, terms lighter)</small>")
        self.overlay_legend.setVisible(True)

    def _legend_link(self, link: str) -> None:
        if link.startswith("remove:"):
            name = unquote(link[len("remove:"):])
            self.remove_overlay(name)
            self.overlayRemoved.emit(name)

    def _draw_overlays(self, buckets: int) -> None:
        """Smoothed like this run (the whole series: overlays change seldom, the result is kept)."""
        w = self._smoothing
        for overlay in self.overlays.values():
            history = overlay["history"]
            if overlay["smoothed"] is None or overlay["smoothed"][0] != w:
                overlay["smoothed"] = (w, {key: ema_debiased(history.values(key), w) for key in CURVE_KEYS})
            x = history.epochs if self._x_axis == "epoch" else history.steps.astype(np.float64)
            for key, curve in overlay["curves"].items():
                visible = self.curves[key].isVisible()
                curve.setVisible(visible)
                if visible:
                    curve.setData(*peak_decimate(x, overlay["smoothed"][1][key], buckets))


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace(" ", "&nbsp;").replace("-", "&#8209;")
