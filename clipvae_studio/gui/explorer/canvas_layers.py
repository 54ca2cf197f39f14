"""Background layers on the latent canvas, each one pyqtgraph ImageItem behind the scatter:
CLIP's decision map (colour = top label of the decoded image, opacity = confidence) and the
decoded-thumbnail manifold. Both are computed together off the GUI thread over the visible area,
from one (map version, weights) pair (LayerScheduler), refreshed as weights change (at most every
REFRESH_INTERVAL_S), soon after the view moves and at once when the map changes; a result for an
older map or older weights is dropped, so the two layers never disagree (issue 22)."""
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


class LayerScheduler(QObject):
    """Computes every enabled layer in ONE job from one (map version, weights) pair and shows their
    pictures together, so the decision map and the manifold always describe the same map and model.

    A result computed on an older map is never shown: the pictures on screen are hidden as soon as
    the map changes (canvas.mapChanged) and a result whose map version is not the canvas's current
    one is dropped. A result for older weights is dropped too and computed again at once; only when
    training publishes weights faster than the layers are computed (two such drops in a row) is it
    shown, still as one consistent pair, while the next one is computed."""

    def __init__(self, canvas, runner, parent=None):
        super().__init__(parent)
        self.canvas, self.runner = canvas, runner
        self.layers: list[CanvasLayer] = []
        self.model = None
        self.job = None
        self.pending = False
        self.last_start = -1e9
        self.shown: tuple | None = None  # (map version, model) of the pictures on screen
        self.dropped = 0  # results thrown away because the map or the weights changed meanwhile
        self._weights_drops = 0
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.timeout.connect(self._start)
        canvas.view_box.sigRangeChanged.connect(lambda *_: self.request(geometry=True))
        canvas.mapChanged.connect(self._map_changed)

    def set_model(self, model) -> None:
        self.model = model
        self.request()

    def request(self, geometry: bool = False, delay_ms: int | None = None) -> None:
        """Recompute soon. geometry=True (the view moved): a running job is stale."""
        if not any(layer.enabled for layer in self.layers):
            return
        self.pending = True
        if geometry and self.job is not None:
            self.runner.cancel(self.job)
            self.job = None
        if self.job is not None:
            return  # _finished starts the next one
        if delay_ms is None:
            wait_s = VIEW_SETTLE_MS / 1000 if geometry else REFRESH_INTERVAL_S - (time.perf_counter() - self.last_start)
            delay_ms = int(max(0.0, wait_s) * 1000)
        if not self.timer.isActive() or self.timer.remainingTime() > delay_ms:
            self.timer.start(delay_ms)

    def stop(self) -> None:
        self.runner.cancel(self.job)
        self.job = None
        self.timer.stop()

    def _map_changed(self) -> None:
        for layer in self.layers:  # a picture of the old map would sit on the wrong places
            layer.item.hide()
        self.shown = None
        self.request(geometry=True, delay_ms=0)

    def _start(self) -> None:
        model, projection, version = self.model, self.canvas.projection, self.canvas.map_version
        layers = [layer for layer in self.layers if layer.enabled]
        if not layers or not self.pending or self.job is not None or model is None:
            return
        if projection.lift(np.zeros((1, 2))).shape[1] != model.z_dim:
            return  # the plane belongs to another model; its first snapshot will ask again
        r = self.canvas.view_box.viewRect()
        rect = (r.x(), r.y(), r.width(), r.height())
        if not (rect[2] > 0 and rect[3] > 0):
            return
        self.pending = False
        self.last_start = time.perf_counter()
        frozen = frozen_projection(projection)
        works = [(layer, layer.make_job(model, frozen, rect)) for layer in layers]
        tag = (version, model)

        def run(should_stop, progress):
            pictures = []
            for layer, work in works:
                started = time.perf_counter()
                pictures.append((layer, work(should_stop, progress), time.perf_counter() - started))
            return tag, rect, pictures

        self.job = self.runner.submit(run, self._finished, self._failed)

    def _finished(self, result) -> None:
        self.job = None
        (version, model), rect, pictures = result
        map_stale = version != self.canvas.map_version
        weights_stale = model is not self.model
        if map_stale or (weights_stale and self._weights_drops < 1):
            self.dropped += 1
            self._weights_drops += 0 if map_stale else 1
            self.request(delay_ms=0)
            return
        self._weights_drops = 0
        self.shown = (version, model)
        for layer, picture, seconds in pictures:
            if layer.enabled:
                layer.show(picture, rect, seconds, (version, model))
        for layer, _picture, _seconds in pictures:
            if layer.enabled:
                layer.updated.emit()
        if self.pending:  # newer weights or a view move came meanwhile
            self.request()

    def _failed(self, message: str) -> None:
        self.job = None
        for layer in self.layers:
            if layer.enabled:
                layer.fail(message)


class CanvasLayer(QObject):
    """One picture behind the scatter; its scheduler decides when it is computed and shown."""
    updated = Signal()  # a new picture is on the canvas

    def __init__(self, scheduler: LayerScheduler, name: str, z_value: float, parent=None):
        super().__init__(parent)
        self.scheduler, self.canvas, self.name = scheduler, scheduler.canvas, name
        scheduler.layers.append(self)
        self.enabled = False
        self.item = pg.ImageItem(axisOrder="row-major")
        self.item.setZValue(z_value)
        self.item.hide()
        self.canvas.plot_item.addItem(self.item, ignoreBounds=True)  # never widens the auto-range
        self.last_seconds = None  # how long the last finished computation took
        self.computations = 0
        self.shown_tag: tuple | None = None  # (map version, model) of the picture on screen

    # --- what the owner calls ---------------------------------------------------------------
    def set_enabled(self, on: bool) -> None:
        self.enabled = bool(on)
        self.item.setVisible(self.enabled and self.shown_tag is not None and self.shown_tag == self.scheduler.shown)
        if self.enabled:
            self.scheduler.request(geometry=True)
        elif not any(layer.enabled for layer in self.scheduler.layers):
            self.scheduler.stop()

    def set_model(self, model) -> None:
        self.scheduler.set_model(model)

    def request(self, geometry: bool = False) -> None:
        self.scheduler.request(geometry=geometry)

    @property
    def job(self):
        return self.scheduler.job

    @property
    def timer(self):
        return self.scheduler.timer

    # --- subclasses -----------------------------------------------------------------------------
    def make_job(self, model, projection, rect):
        """A function (should_stop, progress) -> picture array, run in the pool."""
        raise NotImplementedError

    def show_picture(self, picture) -> None:
        raise NotImplementedError

    # --- the scheduler's ------------------------------------------------------------------------
    def show(self, picture, rect, seconds: float, tag: tuple) -> None:
        self.last_seconds = seconds
        self.computations += 1
        self.shown_tag = tag
        self.show_picture(picture)
        self.item.setRect(QRectF(*rect))
        self.item.setVisible(True)

    def fail(self, message: str) -> None:
        self.enabled = False
        self.item.hide()
        window = self.canvas.window()
        if hasattr(window, "show_message"):
            window.show_message(f"The {self.name} could not be drawn", message.splitlines()[0], "warning")


class DecisionMapLayer(CanvasLayer):
    def __init__(self, scheduler, parent=None):
        super().__init__(scheduler, "decision map", -20, parent)
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
    def __init__(self, scheduler, parent=None):
        super().__init__(scheduler, "manifold", -30, parent)
        self.item.setOpacity(0.9)

    def make_job(self, model, projection, rect):
        from ...core.decision_map import manifold_image

        cols, rows = grid_shape(rect, MANIFOLD_COUNT)

        def work(should_stop, _progress):
            return to_uint8(manifold_image(model, projection, rect, cols, rows, should_stop=should_stop))
        return work

    def show_picture(self, picture) -> None:
        self.item.setImage(picture, autoLevels=False, levels=(0, 255))
