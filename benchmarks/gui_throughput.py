"""Does the studio window slow training down, and does training freeze the window?

Measures, in one process and on the same config (the studio preset on the bundled MNIST subset):
  - training samples/s headless (a Trainer running in a plain thread), before and after the GUI run;
  - training samples/s with the main window open, training through its worker and drawing live;
  - the GUI event loop's lag meanwhile: how late a 10 ms QTimer fires (p50 / p99 / max);
  - the latent canvas: one update with 10,000 points, and one pick (decode + paint) while training;
  - start-up: a fresh interpreter until the window is shown on mnist5k with a fresh model.
Throughput is wall-clock (steps x batch / seconds), so the worker's own overhead counts.
Targets: gui/headless >= 0.85, timer p99 lag < 30 ms, 10k update < 15 ms, pick < 16 ms, start-up < 5 s.

    python benchmarks/gui_throughput.py [--seconds 8] [--warmup 2]

Prints one JSON object. Numbers are noisy when other processes share the CPU.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("CLIPVAE_STUDIO_HOME", tempfile.mkdtemp(prefix="clipvae-bench-"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402


def headless_rate(config, dataset, warmup: float, seconds: float) -> float:
    from clipvae_studio.core import Trainer

    trainer = Trainer(config, dataset)
    trainer.prepare()  # the first optimiser of a process imports torch._dynamo: not training time
    thread = threading.Thread(target=trainer.run, daemon=True)
    thread.start()
    time.sleep(warmup)
    s0, t0 = trainer.step_count, time.perf_counter()
    time.sleep(seconds)
    s1, t1 = trainer.step_count, time.perf_counter()
    trainer.stop()
    thread.join()
    return (s1 - s0) * config.batch_size / (t1 - t0)


def wait(app, seconds: float) -> None:
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    loop.exec()


def gui_run(app, config, dataset, warmup: float, seconds: float) -> dict:
    from PySide6.QtCore import QTimer

    from clipvae_studio.core.events import LatentSnapshot
    from clipvae_studio.gui import MainWindow

    window = MainWindow(dataset=dataset, config=config)
    window.show()
    window.action_start.trigger()
    wait(app, warmup)

    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    s0, t0 = window.trainer.step_count, time.perf_counter()
    timer.start()
    wait(app, seconds)
    timer.stop()
    s1, t1 = window.trainer.step_count, time.perf_counter()
    rate = (s1 - s0) * config.batch_size / (t1 - t0)
    lag_ms = np.maximum(np.diff(ticks) * 1000 - 10, 0) if len(ticks) > 2 else np.zeros(1)
    points = len(window.loss_plot.history)

    # picks on the canvas while training goes on: decode, every view's slot, repaint of the map.
    # Wall time, and this thread's CPU time (less sensitive to other processes on the machine).
    canvas = window.canvas
    uv = canvas.points_uv()
    pick_ms, pick_cpu_ms = [], []
    for i in range(30):
        u, v = uv[(i * 37) % len(uv)]
        t, c = time.perf_counter(), time.thread_time()
        canvas._picked(float(u), float(v), False)
        canvas.plot_widget.viewport().repaint()
        pick_ms.append((time.perf_counter() - t) * 1000)
        pick_cpu_ms.append((time.thread_time() - c) * 1000)
        app.processEvents()
    window.stop_training()
    while window.worker.busy:
        app.processEvents()

    # a 10,000-point snapshot on the canvas, window shown (training stopped: the canvas alone)
    rng = np.random.default_rng(0)
    z = config.z_dim
    update_ms, update_cpu_ms = [], []
    for i in range(15):
        snap = LatentSnapshot(i, rng.normal(size=(10_000, z)).astype(np.float32), np.repeat(np.arange(10), 1000),
                              np.arange(10_000) % len(dataset.test_images), rng.normal(size=(10, z)).astype(np.float32))
        t, c = time.perf_counter(), time.thread_time()
        canvas.set_snapshot(snap)
        canvas.plot_widget.viewport().repaint()
        update_ms.append((time.perf_counter() - t) * 1000)
        update_cpu_ms.append((time.thread_time() - c) * 1000)
    window.close()
    return {"samples_per_second": rate, "steps": s1 - s0, "loss_points_drawn": points,
            "timer_ticks": len(ticks), "lag_p50_ms": float(np.percentile(lag_ms, 50)),
            "lag_p99_ms": float(np.percentile(lag_ms, 99)), "lag_max_ms": float(lag_ms.max()),
            "pick_ms_median": float(np.median(pick_ms)), "pick_ms_p90": float(np.percentile(pick_ms, 90)),
            "pick_cpu_ms_median": float(np.median(pick_cpu_ms)),
            "canvas_10k_update_ms_median": float(np.median(update_ms[3:])),
            "canvas_10k_update_cpu_ms_median": float(np.median(update_cpu_ms[3:]))}


STARTUP_SNIPPET = """
import time, sys
t0 = time.perf_counter()
from clipvae_studio.gui.app import create_application
app = create_application()
from clipvae_studio.gui import MainWindow
window = MainWindow()
window.show()
app.processEvents()
print(time.perf_counter() - t0)
window.close()
"""


def startup_seconds() -> float:
    """A fresh interpreter: imports, the application, the window on mnist5k with a fresh model, shown."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=str(root))
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", STARTUP_SNIPPET], capture_output=True, text=True, env=env,
                         cwd=root, timeout=300)
    total = time.perf_counter() - t0
    try:
        return round(float(out.stdout.strip().splitlines()[-1]), 2)
    except (ValueError, IndexError):
        return round(total, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--preset", default="studio")
    args = parser.parse_args()

    from clipvae_studio.core import load_dataset, preset
    from clipvae_studio.gui.app import create_application

    app = create_application()
    dataset = load_dataset("mnist5k")
    config = preset(args.preset).with_values(epochs=10_000)
    before = headless_rate(config, dataset, args.warmup, args.seconds)
    gui = gui_run(app, config, dataset, args.warmup, args.seconds)
    after = headless_rate(config, dataset, args.warmup, args.seconds)
    startup = startup_seconds()
    headless = (before + after) / 2
    gui_rate = gui.pop("samples_per_second")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    print(json.dumps({
        "preset": args.preset, "batch_size": config.batch_size, "seconds": args.seconds,
        "headless_samples_per_second": round(headless, 1),
        "headless_before_after": [round(before, 1), round(after, 1)],
        "gui_samples_per_second": round(gui_rate, 1),
        "ratio_gui_over_headless": round(gui_rate / headless, 3) if headless else None,
        **{k: round(v, 2) if isinstance(v, float) else v for k, v in gui.items()},
        "startup_seconds": startup,
        "load_average_1min": load, "cpu_count": os.cpu_count(),
    }))


if __name__ == "__main__":
    main()
