"""Drawing cost of the two live plots, with the real widgets (offscreen Qt):

- latent scatter: LatentCanvas.set_snapshot with 10,000 points (PCA refit, projection, one
  setData per class) followed by a synchronous repaint of the plot; target < 15 ms;
- loss plot: LossPlot holding 100,000 points per curve (6 curves, smoothed and raw), a batch of
  30 new steps appended, then redraw_if_needed (smoothing of the new points, setData of every
  curve, downsampling and clip-to-view) and a synchronous repaint; target < 16 ms.

Times are medians (and p95) over repeated updates, like those training causes once a second
(scatter) or on the plot's redraw timer (losses).

    python benchmarks/gui_plots.py [--repeats 30]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("CLIPVAE_STUDIO_HOME", tempfile.mkdtemp(prefix="clipvae-bench-"))

import _common  # noqa: E402,F401
import numpy as np  # noqa: E402
from _common import emit, machine  # noqa: E402

SCATTER_POINTS = 10_000
LOSS_POINTS = 100_000
SCATTER_TARGET_MS = 15.0
LOSS_TARGET_MS = 16.0


def stats(ms: list[float]) -> dict:
    a = np.asarray(ms)
    return {"median_ms": round(float(np.median(a)), 2), "p95_ms": round(float(np.percentile(a, 95)), 2),
            "max_ms": round(float(a.max()), 2), "n": len(a)}


def scatter_benchmark(app, repeats: int) -> dict:
    from clipvae_studio.core import load_dataset
    from clipvae_studio.core.events import LatentSnapshot
    from clipvae_studio.gui.latent_canvas import LatentCanvas

    data = load_dataset("mnist5k")
    canvas = LatentCanvas()
    # the PCA plane, as this row has always measured: the neighbourhood map's fits (in the
    # background, timed by map_quality.py) would otherwise compete with the redraws timed here
    canvas.set_projection_mode("pca")
    canvas.resize(800, 650)
    canvas.set_dataset(data)
    canvas.show()
    app.processEvents()
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, SCATTER_POINTS)
    centres = rng.normal(0, 2, (10, 16))
    label_mu = centres + rng.normal(0, 0.1, centres.shape)
    times = []
    for i in range(repeats + 3):
        mu = centres[labels] + rng.normal(0, 0.6, (SCATTER_POINTS, 16))  # a little training between snapshots
        snapshot = LatentSnapshot(i, mu.astype(np.float32), labels, np.arange(SCATTER_POINTS), label_mu.astype(np.float32))
        t0 = time.perf_counter()
        canvas.set_snapshot(snapshot)
        canvas.plot_widget.viewport().repaint()
        elapsed = (time.perf_counter() - t0) * 1000
        app.processEvents()
        if i >= 3:  # the first updates build the scatter items and the basis
            times.append(elapsed)
    drawn = len(canvas.scatter.data)
    canvas.close()
    return {"points": SCATTER_POINTS, "points_drawn": drawn, **stats(times)}


def loss_plot_benchmark(app, repeats: int) -> dict:
    from clipvae_studio.core.losses import LOSS_TERMS
    from clipvae_studio.gui.loss_plot import LossPlot

    keys = ("total",) + LOSS_TERMS
    rng = np.random.default_rng(0)
    n = LOSS_POINTS
    steps = np.arange(1, n + 1)
    decay = 50 * np.exp(-steps / 20_000) + 5

    def values(s):
        return {k: (decay[s - 1] if k == "total" else decay[s - 1] / 5) * (1 + 0.1 * rng.standard_normal(len(s)))
                for k in keys}

    history = {"step": steps.tolist(), "epoch": (steps / 15.0).tolist(), **{k: v.tolist() for k, v in values(steps).items()}}
    plot = LossPlot()
    plot.resize(1000, 340)
    plot.timer.stop()  # drive redraws by hand
    plot.show()
    plot.set_history(history)
    plot.redraw_if_needed()
    plot.plot_widget.viewport().repaint()
    app.processEvents()
    times = []
    last = n
    for i in range(repeats + 2):
        new = np.arange(last + 1, last + 31)
        decay = np.concatenate([decay, 50 * np.exp(-new / 20_000) + 5])
        batch = {"step": new, "epoch": new / 15.0, **values(new)}
        last = int(new[-1])
        t0 = time.perf_counter()
        plot.append_batch(batch)
        plot.redraw_if_needed()
        plot.plot_widget.viewport().repaint()
        elapsed = (time.perf_counter() - t0) * 1000
        app.processEvents()
        if i >= 2:
            times.append(elapsed)
    points = len(plot.history)
    plot.close()
    return {"points_per_curve": points, "curves": len(keys), **stats(times)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    from clipvae_studio.gui.app import create_application

    app = create_application()
    scatter = scatter_benchmark(app, args.repeats)
    loss = loss_plot_benchmark(app, args.repeats)
    emit({
        "benchmark": "gui_plots",
        "scatter_update": {**scatter, "target_ms": SCATTER_TARGET_MS, "met": scatter["median_ms"] < SCATTER_TARGET_MS},
        "loss_plot_redraw": {**loss, "target_ms": LOSS_TARGET_MS, "met": loss["median_ms"] < LOSS_TARGET_MS},
        "machine": machine(),
    })


if __name__ == "__main__":
    main()
