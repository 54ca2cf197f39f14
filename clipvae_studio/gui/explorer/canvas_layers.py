"""Background layers on the latent canvas, each one pyqtgraph ImageItem behind the scatter:
CLIP's decision map (colour = top label of the decoded image, opacity = confidence) and the
decoded-thumbnail manifold. Computed off the GUI thread over the visible area, refreshed as
weights change (at most every REFRESH_INTERVAL_S) and soon after the view moves; a job whose
geometry went stale is cancelled and its result dropped."""
from __future__ import annotations

import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, QRectF, QTimer, Signal

from ...core.projection import PlaneProjection
from ..palette import label_rgb
from .images import to_uint8

REFRESH_INTERVAL_S = 2.0  # weights change about once a second while training
VIEW_SETTLE_MS = 200  # wait for a pan/zoom to settle before recomputing
DECISION_RESOLUTION = 64
MANIFOLD_COUNT = 15


def frozen_projection(projection):
    """A copy the pool thread can read while the canvas refits its own in place. (A neighbourhood
    map is never changed in place: each fit that lands is a new object, so it is passed as is.)"""
    if isinstance(projection, PlaneProjection):
        return PlaneProjection(projection.origin.copy(), projection.axes.copy())
    return projection


def grid_shape(rect, cols: int) -> tuple[int, int]:
    """cols across the view and as many rows as keep the cells square."""
    rows = int(np.clip(round(cols * rect[3] / rect[2]), 2, 3 * cols))
    return cols, rows


class CanvasLayer(QObject):
    updated = Signal()  # a new picture is on the canvas

    def __init__(self, canvas, runner, name: str, z_value: float, parent=None):
        super().__init__(parent)
        self.canvas, self.runner, self.name = canvas, runner, name
        self.model = None
        self.enabled = False
        self.item = pg.ImageItem(axisOrder="row-major")
        self.item.setZValue(z_value)
        self.item.hide()
        canvas.plot_item.addItem(self.item, ignoreBounds=True)  # never widens the auto-range
        self.job = None
        self.pending = False
        self.last_start = -1e9
        self.last_seconds = None  # how long the last finished computation took
        self.computations = 0
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.timeout.connect(self._start)
        canvas.view_box.sigRangeChanged.connect(lambda *_: self.request(geometry=True))
        canvas.projectionChanged.connect(lambda: self.request())

    # --- what the owner calls ---------------------------------------------------------------
    def set_enabled(self, on: bool) -> None:
        self.enabled = bool(on)
        self.item.setVisible(self.enabled and self.computations > 0)
        if self.enabled:
            self.request(geometry=True)
        else:
            self.runner.cancel(self.job)
            self.job = None
            self.timer.stop()

    def set_model(self, model) -> None:
        self.model = model
        self.request()

    def request(self, geometry: bool = False) -> None:
        """Recompute soon. geometry=True (the view or the plane moved): a running job is stale."""
        if not self.enabled:
            return
        self.pending = True
        if geometry and self.job is not None:
            self.runner.cancel(self.job)
            self.job = None
        if self.job is not None:
            return  # _finished starts the next one
        wait_s = VIEW_SETTLE_MS / 1000 if geometry else REFRESH_INTERVAL_S - (time.perf_counter() - self.last_start)
        delay = int(max(0.0, wait_s) * 1000)
        if not self.timer.isActive() or self.timer.remainingTime() > delay:
            self.timer.start(delay)

    # --- subclasses -----------------------------------------------------------------------------
    def make_job(self, model, projection, rect):
        """A function (should_stop, progress) -> picture array, run in the pool."""
        raise NotImplementedError

    def show_picture(self, picture) -> None:
        raise NotImplementedError

    # --- internals ----------------------------------------------------------------------------------
    def _start(self) -> None:
        model, projection = self.model, self.canvas.projection
        if not self.enabled or not self.pending or self.job is not None or model is None:
            return
        if projection.lift(np.zeros((1, 2))).shape[1] != model.z_dim:
            return  # the plane belongs to another model; its first snapshot will ask again
        r = self.canvas.view_box.viewRect()
        rect = (r.x(), r.y(), r.width(), r.height())
        if not (rect[2] > 0 and rect[3] > 0):
            return
        self.pending = False
        self.last_start = time.perf_counter()
        work = self.make_job(model, frozen_projection(projection), rect)
        started = time.perf_counter()

        def run(should_stop, progress):
            return rect, work(should_stop, progress), time.perf_counter() - started

        self.job = self.runner.submit(run, self._finished, self._failed)

    def _finished(self, result) -> None:
        self.job = None
        rect, picture, seconds = result
        self.last_seconds = seconds
        self.computations += 1
        self.show_picture(picture)
        self.item.setRect(QRectF(*rect))
        self.item.setVisible(self.enabled)
        self.updated.emit()
        if self.pending:
            self.request()

    def _failed(self, message: str) -> None:
        self.job = None
        self.enabled = False
        self.item.hide()
        window = self.canvas.window()
        if hasattr(window, "show_message"):
            window.show_message(f"The {self.name} could not be drawn", message.splitlines()[0], "warning")


class DecisionMapLayer(CanvasLayer):
    def __init__(self, canvas, runner, parent=None):
        super().__init__(canvas, runner, "decision map", -20, parent)
        self.last_map = None

    def make_job(self, model, projection, rect):
        colors = np.array([label_rgb(i) for i in range(model.num_labels)], dtype=np.uint8)
        from ...core.decision_map import colorize, compute_decision_map

        cols, rows = grid_shape(rect, DECISION_RESOLUTION)

        def work(should_stop, _progress):
            dmap = compute_decision_map(model, projection, rect, cols, rows, should_stop=should_stop)
            return dmap, colorize(dmap, colors)
        return work

    def show_picture(self, picture) -> None:
        self.last_map, rgba = picture
        self.item.setImage(rgba, autoLevels=False)


class ManifoldLayer(CanvasLayer):
    def __init__(self, canvas, runner, parent=None):
        super().__init__(canvas, runner, "manifold", -30, parent)
        self.item.setOpacity(0.9)

    def make_job(self, model, projection, rect):
        from ...core.decision_map import manifold_image

        cols, rows = grid_shape(rect, MANIFOLD_COUNT)

        def work(should_stop, _progress):
            return to_uint8(manifold_image(model, projection, rect, cols, rows, should_stop=should_stop))
        return work

    def show_picture(self, picture) -> None:
        self.item.setImage(picture, autoLevels=False, levels=(0, 255))
