"""The neighbourhood map's two helpers on the canvas.

MapFitter: refits the map in a separate worker process (core/map_worker.py): a fit is 0.2-1 s of
Python and numpy (a cold one seconds), and in a thread of this process it took the GIL from the
event loop. One fit at a time; snapshots that arrive meanwhile are coalesced to the latest.
Between two fits it rests twice as long as the last fit took (REST_MIN_S..REST_MAX_S), so live
refits take about a third of one core, at a lower priority than training and the GUI.
Each fit starts from the map that landed last and returns a new map object, so the canvas, the
background layers and the explorer keep reading the old one until `fitted` hands over the new one.

- The worker starts (spawn) with the first request and ends when the canvas's window closes or
  the application quits; a later request starts a new one.
- Every request has a number; cancel() (another model or dataset) moves the number on, the
  worker stops the old fit at its next check, and a map that arrives with an old number is dropped:
  a stale fit is never drawn over a newer model or map.
- A worker that dies (killed, out of memory) is replaced: `failed` says so and the fit it was
  running is asked again, up to MAX_RESTARTS times in a row.

ExtrapolationShade: a grey veil over the parts of the view where the map is far from any data point
(NeighbourhoodMap.extrapolation): the latent there is a guess, and so is the picture.
"""
from __future__ import annotations

from concurrent.futures import CancelledError, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QCoreApplication, QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QWidget

from ..core import map_worker
from ..core.neighbourhood_map import NeighbourhoodMap
from .style import current_theme

SHADE_COLUMNS = 96  # cells across the view; the shade is soft, a few ms to compute on the GUI thread
SHADE_MAX_ALPHA = 120
SHADE_SETTLE_MS = 120  # after a pan or zoom
REST_MIN_S, REST_MAX_S = 1.0, 4.0  # between the end of one fit and the start of the next
MAX_RESTARTS = 3  # a worker that keeps dying is not started again for the same fit


class MapFitter(QObject):
    fitted = Signal(object, object)  # a new NeighbourhoodMap and the key it was asked with, on the GUI thread
    failed = Signal(str)  # a sentence for the person, on the GUI thread
    _arrived = Signal(object)  # (request number, future), emitted from the process pool's thread

    def __init__(self, parent=None):
        super().__init__(parent)
        self.pool: ProcessPoolExecutor | None = None  # started with the first request
        self._wanted = None  # the request number the worker reads to stop a stale fit (shared memory)
        self.number = 0  # the latest request's number; cancel() moves it on
        self._running: tuple | None = None  # (number, base, z, key) of the fit in the worker
        self.future: Future | None = None  # the last fit handed to the worker
        self._waiting: tuple[NeighbourhoodMap, np.ndarray, object] | None = None
        self._latest: NeighbourhoodMap | None = None
        self._watched: QWidget | None = None  # the window whose closing ends the worker
        self._closed = False  # that window is closed: no new worker until it is shown again
        self.fits = 0
        self.restarts = 0  # workers replaced in a row (a fit that lands resets it)
        self.worker_pid: int | None = None  # the process the last map came from
        self._rest = QTimer(self)
        self._rest.setSingleShot(True)
        self._rest.timeout.connect(self._start)
        self._arrived.connect(self._land, Qt.ConnectionType.QueuedConnection)
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)

    def request(self, base: NeighbourhoodMap, z: np.ndarray, key=None) -> None:
        """Fit a map on latents z, warm from `base` (or from the map the running fit will give).
        `key` comes back with the map (the canvas passes the snapshot's rows)."""
        self._waiting = (base, np.array(z, dtype=np.float64), key)
        if self._running is None and not self._rest.isActive():
            self._start()

    def seed(self, fitted: NeighbourhoodMap) -> None:
        """Start the next fit from a map fitted earlier (warm: a fraction of a second, not seconds)."""
        self._latest = fitted

    def cancel(self) -> None:
        """Forget the running and the waiting fit (another model or dataset): the worker stops the
        running one at its next check, and its map, if it still comes, is dropped."""
        self.number += 1
        if self._wanted is not None:
            self._wanted.value = self.number
        self._rest.stop()
        self._running = self._waiting = self._latest = None

    def shutdown(self) -> None:
        """cancel(), and let the worker process end (a running fit stops at its next check)."""
        self.cancel()
        self._drop_pool()

    @property
    def busy(self) -> bool:
        return self._running is not None

    # --- the worker ---------------------------------------------------------------------------------
    def _start(self) -> None:
        if self._waiting is None or self._running is not None or self._closed:
            return
        base, z, key = self._waiting
        self._waiting = None
        if self._latest is not None and self._latest.z_dim == z.shape[1] and len(self._latest.uv) == len(z):
            base = self._latest  # a fit landed since this was asked: start from it, not from an older map
        warm = base.is_fitted and base.z_dim == z.shape[1] and len(base.uv) == len(z)
        self.number += 1
        self._running = (self.number, base, z, key)
        try:
            pool = self._pool()
            self._wanted.value = self.number
            future = pool.submit(map_worker.fit_map, self.number, base.z if warm else None,
                                 base.uv if warm else None, z)
        except BrokenProcessPool:  # the worker died while it waited for work
            self._worker_died()
            return
        except Exception as exc:  # no process could start (no resources, a program that cannot spawn)
            self._running = None
            self._drop_pool()
            self.failed.emit(f"The map's fitting process could not start; the map stays as it is "
                             f"({type(exc).__name__}: {exc})".splitlines()[0])
            return
        self.future, arrived, number = future, self._arrived, self.number

        def relay(done: Future) -> None:  # in the pool's thread: hand the future to the GUI thread
            try:
                arrived.emit((number, done))
            except RuntimeError:  # the fitter is gone (window closed): nobody wants the map
                pass

        future.add_done_callback(relay)

    def _pool(self) -> ProcessPoolExecutor:
        if self.pool is None:
            self.pool, self._wanted = map_worker.new_pool(self.number)
        self._watch_window()  # (again each time: the canvas may have moved into a window since)
        return self.pool

    def _drop_pool(self) -> None:
        pool, self.pool = self.pool, None
        if pool is not None:  # no waiting here: the worker ends by itself once its fit sees it is stale
            pool.shutdown(wait=False, cancel_futures=True)

    def _watch_window(self) -> None:
        parent = self.parent()
        window = parent.window() if isinstance(parent, QWidget) else None
        if window is not self._watched:
            if self._watched is not None:
                self._watched.removeEventFilter(self)
            if window is not None:
                window.installEventFilter(self)
            self._watched = window

    def eventFilter(self, watched, event) -> bool:
        if watched is self._watched and event.type() == QEvent.Type.Close:
            self.shutdown()
            self._closed = True  # a snapshot still queued for the closed window starts no new worker
        elif watched is self._watched and event.type() == QEvent.Type.Show and self._closed:
            self._closed = False
            self._rest.start(0)  # then what waits is fitted
        return False

    def _land(self, arrival) -> None:
        number, future = arrival
        if self._running is None or self._running[0] != number:
            return  # cancelled meanwhile: another model or dataset, or the window closed
        running, self._running = self._running, None
        try:
            _, fitted, seconds, pid = future.result()
        except CancelledError:
            return
        except BrokenProcessPool:
            self._worker_died(running)
            return
        except Exception as exc:  # the fit itself failed: say so, try again with the next snapshot
            self.failed.emit(f"The neighbourhood map could not be fitted: {type(exc).__name__}: {exc}".splitlines()[0])
            self._rest.start(int(1000 * REST_MIN_S))
            return
        self.worker_pid, self.restarts = pid, 0
        if fitted is None:  # the worker saw it stale before this did
            self._rest.start(int(1000 * REST_MIN_S))
            return
        self.fits += 1
        self._latest = fitted
        self._rest.start(int(1000 * min(REST_MAX_S, max(REST_MIN_S, 2 * seconds))))  # then _start takes what waits
        self.fitted.emit(fitted, running[3])

    def _worker_died(self, running: tuple | None = None) -> None:
        running = running or self._running
        self._running = None
        self._drop_pool()
        self.restarts += 1
        if self.restarts > MAX_RESTARTS:
            self.restarts = 0
            self.failed.emit(f"The map's fitting process stopped {MAX_RESTARTS + 1} times in a row; the map keeps its "
                             "last fit until the next snapshot tries again.")
            return
        if self._waiting is None and running is not None:
            self._waiting = running[1:]  # ask again (a newer request, if one came, replaces it)
        self.failed.emit("The map's fitting process stopped unexpectedly; a new one is fitting the map.")
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
