"""Latent explorer latency: per-move cost of a canvas drag (decode + score + repaint), idle and
while training; the decision map's background refresh; t-SNE of 2,000 latents. Prints one JSON object.

    python benchmarks/explorer_latency.py [--moves 300] [--train-seconds 8]

Moves are real mouse events (QTest) on the canvas viewport during a left drag, ~83 a second on
a fixed schedule (as a mouse sends them; pyqtgraph ignores moves less than 10 ms apart); each is
timed from when it is due until Qt has run the paints it scheduled (the marker's region of the
canvas, the decoded image, the score bars), so GUI work still running when a move is due counts. Every fourth move also times a forced full repaint of the canvas
and the Point dock (the worst case, e.g. when the window is uncovered).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("CLIPVAE_STUDIO_HOME", tempfile.mkdtemp(prefix="clipvae-bench-"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402


def percentiles(samples_s):
    a = np.asarray(samples_s) * 1000
    return {"n": int(len(a)), "p50_ms": round(float(np.percentile(a, 50)), 2),
            "p99_ms": round(float(np.percentile(a, 99)), 2), "max_ms": round(float(a.max()), 2)}


MOVE_INTERVAL_S = 0.012  # ~83 moves a second, as a mouse sends them; pyqtgraph drops moves < 10 ms apart


def drag_latencies(app, window, moves: int, seconds: float | None = None):
    """Drag in a loop over the visible map, one mouse move every MOVE_INTERVAL_S on a fixed
    schedule; one sample per move, from the move's scheduled time until Qt has run the paints it
    scheduled. Between moves the event loop runs (training signals, timers): work that is still
    running when the next move is due delays that move, and the delay counts."""
    from PySide6.QtCore import QPointF, Qt
    from PySide6.QtTest import QTest

    canvas = window.canvas
    panel = window.explorer.point_panel
    viewport = canvas.plot_widget.viewport()
    rect = canvas.view_box.viewRect()
    t = np.linspace(0, 2 * np.pi, 97)
    ring = np.stack([rect.center().x() + 0.35 * rect.width() * np.cos(3 * t),
                     rect.center().y() + 0.35 * rect.height() * np.sin(2 * t)], 1)

    def pos(u, v):
        return canvas.plot_widget.mapFromScene(canvas.view_box.mapViewToScene(QPointF(u, v)))

    samples, full = [], []
    QTest.mousePress(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, pos(*ring[0]))
    start = time.perf_counter()
    due = start + MOVE_INTERVAL_S
    i = 1
    before = panel.image_view.updates
    while len(samples) < moves and (seconds is None or time.perf_counter() - start < seconds):
        u, v = ring[i % len(ring)]
        while time.perf_counter() < due:  # the event loop runs until the move is due
            app.processEvents()
            time.sleep(0.0005)
        QTest.mouseMove(viewport, pos(u, v))  # decode + score + widget updates, synchronously
        app.processEvents()  # the paints Qt scheduled for the dirty regions (marker, image, bars)
        samples.append(time.perf_counter() - due)
        if i % 4 == 0:  # worst case: the whole canvas and Point dock repainted
            t0 = time.perf_counter()
            panel.repaint()
            viewport.repaint()
            full.append(time.perf_counter() - t0)
        i += 1
        due = max(due + MOVE_INTERVAL_S, time.perf_counter())  # a late move does not pile up the next ones
    QTest.mouseRelease(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, pos(*ring[i % len(ring)]))
    decoded = panel.image_view.updates - before
    return samples, full, decoded


def breakdown(window, n: int = 60) -> dict:
    """Where a move's time goes, part by part (medians)."""
    canvas, panel = window.canvas, window.explorer.point_panel
    rect = canvas.view_box.viewRect()
    rng = np.random.default_rng(0)
    uv = np.stack([rect.x() + rect.width() * rng.random(n), rect.y() + rect.height() * rng.random(n)], 1)

    def median_ms(fn):
        times = []
        for i in range(n):
            t0 = time.perf_counter()
            fn(i)
            times.append(time.perf_counter() - t0)
        return round(float(np.median(times)) * 1000, 2)

    decoded = canvas.decode_point(*uv[0])
    return {"lift (map point to latent)": median_ms(lambda i: canvas.latent_at(*uv[i])),
            "decode_and_score (core, lift included)": median_ms(lambda i: canvas.decode_point(*uv[i])),
            "point_dock_update (image + bars)": median_ms(lambda i: panel.show_decoded(decoded)),
            "point_dock_repaint": median_ms(lambda i: panel.repaint()),
            "canvas_full_repaint": median_ms(lambda i: canvas.plot_widget.viewport().repaint())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moves", type=int, default=300)
    parser.add_argument("--train-seconds", type=float, default=8.0)
    parser.add_argument("--warm-steps", type=int, default=150, help="train this much first (a model that has learned)")
    parser.add_argument("--tsne-points", type=int, default=2000)
    args = parser.parse_args()

    from PySide6.QtWidgets import QApplication

    from clipvae_studio.core import Trainer, load_dataset, preset, save_trainer
    from clipvae_studio.core.clusters import cluster_input, embed_clusters
    from clipvae_studio.core.decision_map import compute_decision_map
    from clipvae_studio.gui import MainWindow

    out = {"machine": {"python": platform.python_version(), "torch": torch.__version__,
                       "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
                       "load_avg_1min_at_start": round(os.getloadavg()[0], 2)}}
    data = load_dataset("mnist5k")
    trainer = Trainer(preset("studio").with_values(eval_every_steps=10**6), data)
    trainer.run(max_steps=args.warm_steps)
    ckpt = Path(tempfile.mkdtemp()) / "bench.pt"
    save_trainer(ckpt, trainer)

    app = QApplication.instance() or QApplication([])
    window = MainWindow()
    window.resize(1360, 860)
    window.show()
    window.open_checkpoint(ckpt, confirm=False)
    for _ in range(5):
        app.processEvents()
    out["model"] = {"preset": "studio", "z_dim": window.inference_model.z_dim, "width": window.inference_model.width,
                    "depth": window.inference_model.depth, "trained_steps": args.warm_steps}

    drag_latencies(app, window, 20)  # warm-up
    out["breakdown_idle_median_ms"] = breakdown(window)
    idle, full, decoded = drag_latencies(app, window, args.moves)
    out["drag_move_idle"] = {**percentiles(idle), "decodes": decoded,
                             "full_repaint_canvas_and_point_dock": percentiles(full)}

    # While training: the worker thread trains; the canvas decodes with the latest snapshot.
    step0 = window.trainer.step_count
    models = []
    window.inferenceModelChanged.connect(models.append)
    window.start_training()
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 1.0:
        app.processEvents()
        time.sleep(0.01)
    fits0 = window.canvas.fitter.fits
    busy, full, decoded = drag_latencies(app, window, 10**9, seconds=args.train_seconds)
    steps = window.trainer.step_count - step0
    fits = window.canvas.fitter.fits - fits0
    window.stop_training()
    t1 = time.perf_counter()
    while window.state == "running" and time.perf_counter() - t1 < 3:
        app.processEvents()
        time.sleep(0.01)
    out["drag_move_while_training"] = {**percentiles(busy), "decodes": decoded,
                                       "full_repaint_canvas_and_point_dock": percentiles(full),
                                       "training_steps_meanwhile": int(steps),
                                       "weight_snapshots_received": len(models),
                                       "map_fits_landed_meanwhile": int(fits),
                                       "map_projection": type(window.canvas.projection).__name__}

    # Decision map: the layer's own background refreshes (64 columns over the visible area).
    explorer = window.explorer
    layer = explorer.decision_layer
    explorer.point_panel.decision_box.setChecked(True)
    seconds = []
    for _ in range(3):
        count = layer.computations
        layer.request(geometry=True)
        t0 = time.perf_counter()
        while layer.computations == count and time.perf_counter() - t0 < 60:
            app.processEvents()
            time.sleep(0.002)
        seconds.append(layer.last_seconds)
    rows, cols = layer.last_map.top.shape
    model = window.inference_model
    t0 = time.perf_counter()
    compute_decision_map(model, window.canvas.projection, (-3, -3, 6, 6), resolution=64)
    direct = time.perf_counter() - t0
    out["decision_map"] = {"grid": f"{cols}x{rows}", "background_refresh_s_median": round(float(np.median(seconds)), 3),
                           "background_refresh_s": [round(s, 3) for s in seconds],
                           "core_64x64_gui_thread_s": round(direct, 3),
                           "refresh_interval_while_training_s": 2.0}
    explorer.point_panel.decision_box.setChecked(False)
    window.close()

    # t-SNE of 2,000 image latents plus the label latents (train split: mnist5k's test split has 1,000).
    torch.set_num_threads(1)
    points = cluster_input(model, data.train_images, data.train_labels, count=args.tsne_points)
    t0 = time.perf_counter()
    embed_clusters(points)
    out["tsne"] = {"points": args.tsne_points + model.num_labels, "max_iter": 500, "threads": 1,
                   "seconds": round(time.perf_counter() - t0, 2)}
    out["machine"]["load_avg_1min_at_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
