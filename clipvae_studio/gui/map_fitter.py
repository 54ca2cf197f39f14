"""The neighbourhood map's two helpers on the canvas.

MapFitter: refits the map off the GUI thread (a fit is 0.2-1 s; a cold one seconds). One fit at a
time; snapshots that arrive meanwhile are coalesced to the latest. Between two fits it rests twice
as long as the last fit took (REST_MIN_S..REST_MAX_S), so live refits take about a third of one
core from training.
Each fit starts from the map that landed last and returns a new map object, so the canvas, the
background layers and the explorer keep reading the old one until `fitted` hands over the new one.

ExtrapolationShade: a grey veil over the parts of the view where the map is far from any data point
(NeighbourhoodMap.extrapolation): the latent there is a guess, and so is the picture.
"""
from __future__ import annotations

import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QCoreApplication, QObject, QTimer, Signal

from ..core.neighbourhood_map import NeighbourhoodMap
from .background_jobs import BackgroundJobs
from .style import current_theme

SHADE_COLUMNS = 96  # cells across the view; the shade is soft, a few ms to compute on the GUI thread
SHADE_MAX_ALPHA = 120
SHADE_SETTLE_MS = 120  # after a pan or zoom
REST_MIN_S, REST_MAX_S = 1.0, 4.0  # between the end of one fit and the start of the next


class MapFitter(QObject):
    fitted = Signal(object, object)  # a new NeighbourhoodMap and the key it was asked with, on the GUI thread
    failed = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.runner = BackgroundJobs(self, max_threads=1, name="map-fit")
        self.job = None
        self._waiting: tuple[NeighbourhoodMap, np.ndarray, object] | None = None
        self._latest: NeighbourhoodMap | None = None
        self.fits = 0
        self._rest = QTimer(self)
        self._rest.setSingleShot(True)
        self._rest.timeout.connect(self._start)
        app = QCoreApplication.instance()
        if app is not None:  # a fit still running would hold up the exit (its pool thread is joined)
            app.aboutToQuit.connect(self.cancel)

    def request(self, base: NeighbourhoodMap, z: np.ndarray, key=None) -> None:
        """Fit a map on latents z, warm from `base` (or from the map the running fit will give).
        `key` comes back with the map (the canvas passes the snapshot's rows)."""
        self._waiting = (base, np.array(z, dtype=np.float64), key)
        if self.job is None and not self._rest.isActive():
            self._start()

    def seed(self, fitted: NeighbourhoodMap) -> None:
        """Start the next fit from a map fitted earlier (warm: a fraction of a second, not seconds)."""
        self._latest = fitted

    def cancel(self) -> None:
        self.runner.cancel(self.job)
        self._rest.stop()
        self.job = None
        self._waiting = self._latest = None

    @property
    def busy(self) -> bool:
        return self.job is not None

    def _start(self) -> None:
        if self._waiting is None or self.job is not None:
            return
        base, z, key = self._waiting
        self._waiting = None
        if self._latest is not None and self._latest.z_dim == z.shape[1] and len(self._latest.uv) == len(z):
            base = self._latest  # a fit landed since this was asked: start from it, not from an older map
        if not (base.is_fitted and base.z_dim == z.shape[1] and len(base.uv) == len(z)):
            base = NeighbourhoodMap()  # another model or subset: a cold fit
        started = time.perf_counter()

        def work(should_stop, _progress):
            return base.fitted(z, should_stop), key, time.perf_counter() - started

        self.job = self.runner.submit(work, self._done, self._error)

    def _done(self, result) -> None:
        fitted, key, seconds = result
        self.job = None
        self.fits += 1
        self._latest = fitted
        self._rest.start(int(1000 * min(REST_MAX_S, max(REST_MIN_S, 2 * seconds))))  # then _start takes what waits
        self.fitted.emit(fitted, key)

    def _error(self, message: str) -> None:
        self.job = None
        self.failed.emit(message.splitlines()[0])
        self._rest.start(int(1000 * REST_MIN_S))


class ExtrapolationShade(QObject):
    """Greys the canvas where its projection extrapolates (only projections with .extrapolation)."""

    def __init__(self, canvas):
        super().__init__(canvas)
        self.canvas = canvas
        self.item = pg.ImageItem(axisOrder="row-major")
        self.item.setZValue(-10)  # over the decision map and manifold, under the points
        self.item.hide()
        canvas.plot_item.addItem(self.item, ignoreBounds=True)
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.timeout.connect(self.update)
        canvas.view_box.sigRangeChanged.connect(lambda *_: self.request(SHADE_SETTLE_MS))
        self.last_alpha: np.ndarray | None = None  # rows x cols, what is drawn (row 0 at the bottom)
        self.updates = 0

    def request(self, delay_ms: int = 0) -> None:
        if not self.timer.isActive() or self.timer.remainingTime() > delay_ms:
            self.timer.start(delay_ms)

    def clear(self) -> None:
        self.timer.stop()
        self.item.hide()
        self.last_alpha = None

    def update(self) -> None:
        from .explorer.canvas_layers import grid_shape
        from ..core.decision_map import cell_centres

        projection = self.canvas.projection
        r = self.canvas.view_box.viewRect()
        rect = (r.x(), r.y(), r.width(), r.height())
        if not hasattr(projection, "extrapolation") or self.canvas.snapshot is None \
                or not (rect[2] > 0 and rect[3] > 0) or getattr(projection, "z_dim", 0) != self.canvas.snapshot.mu.shape[1]:
            self.clear()
            return
        cols, rows = grid_shape(rect, SHADE_COLUMNS)
        alpha = projection.extrapolation(cell_centres(rect, cols, rows)).reshape(rows, cols)
        rgba = np.empty((rows, cols, 4), np.uint8)
        rgba[..., :3] = (18, 18, 22) if current_theme() == "dark" else (110, 110, 118)
        rgba[..., 3] = (alpha * SHADE_MAX_ALPHA).astype(np.uint8)
        self.last_alpha = alpha
        self.updates += 1
        self.item.setImage(rgba, autoLevels=False)
        self.item.setRect(r)
        self.item.show()
