"""Peak decimation of growing loss curves: the incremental version draws what a fresh
reduction of the whole series would, for any way the series grows, and keeps every spike."""
import numpy as np
import pytest

from clipvae_studio.gui.peak_decimation import GrowingPeaks, _runs, peak_decimate


def fresh(x, y, buckets):
    """A from-scratch reduction with the run length GrowingPeaks must be using."""
    n = len(y)
    if n <= 2 * buckets:
        return x, y
    size = 1 << int(np.ceil(np.log2(-(-n // buckets))))
    return _runs(x, y, size)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_growing_peaks_equal_a_fresh_reduction_as_the_series_grows(seed):
    rng = np.random.default_rng(seed)
    y = rng.lognormal(size=60_000)
    y[rng.integers(0, len(y), 20)] *= 1000  # spikes
    y[123] = np.nan  # a diverged step stays visible as NaN, as with the plain reduction
    x = np.arange(1, len(y) + 1, dtype=np.float64)
    peaks, n, buckets = GrowingPeaks(), 0, 300
    while n < len(y):
        n = min(len(y), n + int(rng.choice([1, 7, 30, 500, 4000])))
        got_x, got_y = peaks(x[:n], y[:n], buckets)
        want_x, want_y = fresh(x[:n], y[:n], buckets)
        assert np.array_equal(got_x, want_x) and np.array_equal(got_y, want_y, equal_nan=True)
        assert len(got_x) <= 2 * buckets + 2
    finite = y[np.isfinite(y)]
    assert np.nanmax(got_y) == finite.max() and np.nanmin(got_y) == finite.min()  # every spike kept


def test_growing_peaks_start_again_when_the_series_shrinks_or_is_reset():
    rng = np.random.default_rng(3)
    y = rng.random(20_000)
    x = np.arange(len(y), dtype=np.float64)
    peaks = GrowingPeaks()
    peaks(x, y, 200)
    cut = y[:9_000].copy()
    cut[-1] = 50.0  # the series after a rollback: shorter, with a new last value
    got = peaks(x[:9_000], cut, 200)
    assert np.array_equal(got[1], fresh(x[:9_000], cut, 200)[1]) and got[1].max() == 50.0
    changed = y * 2  # same length, other values (new smoothing): only reset() can know
    peaks.reset()
    assert np.array_equal(peaks(x, changed, 200)[1], fresh(x, changed, 200)[1])


def test_plain_peak_decimation_keeps_short_series_and_extremes():
    x = np.arange(100.0)
    y = np.sin(x)
    assert peak_decimate(x, y, 200)[1] is y
    xs, ys = peak_decimate(np.arange(10_000.0), np.cos(np.arange(10_000.0)), 100)
    assert len(xs) <= 202 and ys.max() == pytest.approx(1.0) and ys.min() == pytest.approx(-1.0, abs=1e-6)
