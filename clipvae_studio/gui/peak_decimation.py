"""Min/max ("peak") decimation of long curves, so a plot draws ~2 points per pixel column and
still shows every spike: each run of samples becomes its first and last x with its min and max y.

Done here rather than by pyqtgraph's own downsampling, which still scans every point of every
curve for bounds on each redraw (16 series x 100,000 points in the loss plot)."""
from __future__ import annotations

import numpy as np


def peak_decimate(x: np.ndarray, y: np.ndarray, buckets: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ~2 * buckets points: the min and max of each run of ceil(n / buckets) samples."""
    n = len(y)
    if n <= 2 * buckets:
        return x, y
    return _runs(x, y, -(-n // buckets))


def _runs(x: np.ndarray, y: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    n = len(y)
    m = n // size * size
    xb, yb = x[:m].reshape(-1, size), y[:m].reshape(-1, size)
    xs = [np.column_stack([xb[:, 0], xb[:, -1]]).ravel()]
    ys = [np.column_stack([yb.min(1), yb.max(1)]).ravel()]
    if m < n:  # the last, shorter run
        xs.append(np.array([x[m], x[-1]]))
        ys.append(np.array([y[m:].min(), y[m:].max()]))
    return np.concatenate(xs), np.concatenate(ys)


class GrowingPeaks:
    """peak_decimate for a series that only grows at its end (a live loss curve), without
    rescanning it: completed runs are kept and only the new samples are reduced on each call.

    Runs are a power of two samples long (1-2 points per bucket instead of 2); when the series
    outgrows them, neighbouring runs merge. The caller must `reset()` whenever the series' earlier
    values change (a rollback, new smoothing, another x axis): nothing here can see that."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.size = 0  # samples per completed run; 0 = nothing kept
        self.done = 0  # samples covered by completed runs
        self.x0 = self.x1 = self.lo = self.hi = np.zeros(0)

    def __call__(self, x: np.ndarray, y: np.ndarray, buckets: int) -> tuple[np.ndarray, np.ndarray]:
        n = len(y)
        if n <= 2 * buckets:
            self.reset()
            return x, y
        size = 1 << int(np.ceil(np.log2(-(-n // buckets))))
        if n < self.done or size < self.size:  # shorter than before, or a wider plot: start again
            self.reset()
        if self.size == 0:
            self.size = size
        while self.size < size:
            self._merge_pairs()
        end = n // self.size * self.size
        if end > self.done:  # newly completed runs
            x0, x1, lo, hi = self._reduce(x[self.done:end], y[self.done:end])
            self.x0, self.x1 = np.concatenate([self.x0, x0]), np.concatenate([self.x1, x1])
            self.lo, self.hi = np.concatenate([self.lo, lo]), np.concatenate([self.hi, hi])
            self.done = end
        xs, ys = [self.x0, self.x1], [self.lo, self.hi]
        if end < n:  # the open run at the end
            xs, ys = [np.append(self.x0, x[end]), np.append(self.x1, x[-1])], \
                     [np.append(self.lo, y[end:].min()), np.append(self.hi, y[end:].max())]
        return np.column_stack(xs).ravel(), np.column_stack(ys).ravel()

    def _reduce(self, x, y):
        xb, yb = x.reshape(-1, self.size), y.reshape(-1, self.size)
        return xb[:, 0].copy(), xb[:, -1].copy(), yb.min(1), yb.max(1)

    def _merge_pairs(self) -> None:
        pairs = len(self.lo) // 2  # an odd last run is dropped and reduced again from the data
        self.x0, self.x1 = self.x0[0:2 * pairs:2], self.x1[1:2 * pairs:2]
        self.lo = np.minimum(self.lo[0:2 * pairs:2], self.lo[1:2 * pairs:2])
        self.hi = np.maximum(self.hi[0:2 * pairs:2], self.hi[1:2 * pairs:2])
        self.size *= 2
        self.done = pairs * self.size
