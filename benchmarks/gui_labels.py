"""The window with many labels against ten: start-up, drag latency and scatter update, the same
data made with 10 and with 100 labels (coloured digits, core/synthetic.py, offline). Target
(issue 20): the 100-label figures within 20 % of the 10-label ones. Each label count runs in its
own process (offscreen Qt). Prints one JSON object.

    python benchmarks/gui_labels.py [--labels 10,100] [--moves 200] [--repeats 20]
    python benchmarks/gui_labels.py --labels 10,40 --moves 10 --repeats 3 --points 500   # a smoke run
    python benchmarks/gui_labels.py --interleaved 5   # one process, the label counts in turn

- startup_s: MainWindow built on the dataset until shown with its model loaded (Start enabled);
- drag: real mouse moves on the map during a left drag (explorer_latency.drag_latencies);
- scatter: LatentCanvas.set_snapshot with --points points of every label, then a synchronous
  repaint (as gui_plots.py measures it with ten labels).

--interleaved R measures in ONE process, the label counts taking turns R times (after a warm-up
window), so that a busy machine slows every count alike: the start-up, split into the model's part
(the trainer, its inference copy and first snapshot, built on the GUI thread: core/) and the rest
(the window's), and the scatter update on bare canvases. Each as wall and CPU (this thread) time;
model_<part>_wall_s: the model's part by function.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("CLIPVAE_STUDIO_HOME", tempfile.mkdtemp(prefix="clipvae-bench-"))

import _common  # noqa: E402,F401
import numpy as np  # noqa: E402
from _common import emit, machine  # noqa: E402

TARGET_RATIO = 1.2  # 100 labels within 20 % of 10 labels


def wait_until(app, condition, timeout_s: float = 120.0) -> None:
    deadline = time.perf_counter() + timeout_s
    while not condition():
        if time.perf_counter() > deadline:
            raise TimeoutError("the window did not get there in time")
        app.processEvents()
        time.sleep(0.001)


def dataset(num_labels: int, args):
    from clipvae_studio.core.synthetic import coloured_digits

    return coloured_digits(args.size, args.channels, num_labels, train_per_label=max(4, 2000 // num_labels),
                           test_per_label=max(2, 1000 // num_labels))


def run_case(num_labels: int, args) -> dict:
    from explorer_latency import drag_latencies, percentiles
    from gui_plots import stats
    from PySide6.QtGui import QAction
    from PySide6.QtWidgets import QApplication

    from clipvae_studio.core.events import LatentSnapshot
    from clipvae_studio.gui import MainWindow

    data = dataset(num_labels, args)
    app = QApplication.instance() or QApplication([])
    t0 = time.perf_counter()
    window = MainWindow(dataset=data)
    window.resize(1360, 860)
    window.show()
    app.processEvents()
    wait_until(app, lambda: window.property("loading") is not True)  # None: loaded without a background load
    startup = time.perf_counter() - t0

    window.canvas.set_projection_mode("pca")  # as gui_plots.py: no background map fits competing
    window.findChild(QAction, "actionStep").trigger()  # one step: a model with published weights, a snapshot
    wait_until(app, lambda: window.canvas.snapshot is not None and window.inference_model is not None
               and window.inference_model.num_labels == num_labels)
    window.canvas.fitter.shutdown()  # nor the map fit the step's snapshot started: it would share the 2 cores
    samples, full, decoded = drag_latencies(app, window, args.moves)

    canvas, rng = window.canvas, np.random.default_rng(0)
    z_dim = window.inference_model.z_dim
    labels = rng.integers(0, num_labels, args.points)
    centres = rng.normal(0, 2, (num_labels, z_dim))
    times = []
    for i in range(args.repeats + 3):
        mu = centres[labels] + rng.normal(0, 0.6, (args.points, z_dim))
        snapshot = LatentSnapshot(10**6 + i, mu.astype(np.float32), labels, np.arange(args.points),
                                  centres.astype(np.float32))
        t1 = time.perf_counter()
        canvas.set_snapshot(snapshot)
        canvas.plot_widget.viewport().repaint()
        elapsed = (time.perf_counter() - t1) * 1000
        app.processEvents()
        if i >= 3:  # the first updates build the scatter items and the basis
            times.append(elapsed)
    names_shown = len(canvas.shown_names())
    window.close()
    return {"labels": num_labels, "image_shape": list(data.image_shape), "startup_s": round(startup, 3),
            "drag": percentiles(samples), "drag_full_repaint": percentiles(full) if full else None,
            "decoded_during_drag": int(decoded), "scatter": {"points": args.points, **stats(times)},
            "map_names_shown": int(names_shown)}


class ModelClock:
    """Wall and CPU seconds spent in the model's part of a start-up (core/, on the GUI thread):
    building the trainer (the networks, one routed head per label), the inference copy, the first
    latent snapshot. Wraps those three while in use."""

    def __init__(self):
        from clipvae_studio.core import explore, trainer

        self.wall = self.cpu = 0.0
        self.parts: dict[str, float] = {}  # wall seconds per wrapped function
        self._patched = [(trainer.Trainer, "__init__"), (trainer.Trainer, "latent_snapshot"),
                         (explore, "inference_copy")]
        self._saved = [getattr(owner, name) for owner, name in self._patched]

    def __enter__(self):
        for (owner, name), original in zip(self._patched, self._saved):
            setattr(owner, name, self._timed(original, name))
        return self

    def __exit__(self, *exc):
        for (owner, name), original in zip(self._patched, self._saved):
            setattr(owner, name, original)

    def _timed(self, function, name):
        key = {"__init__": "trainer"}.get(name, name)

        def timed(*a, **k):
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                return function(*a, **k)
            finally:
                wall = time.perf_counter() - wall
                self.wall += wall
                self.cpu += time.thread_time() - cpu
                self.parts[key] = self.parts.get(key, 0.0) + wall
        return timed


def startup_once(app, data) -> dict:
    from clipvae_studio.gui import MainWindow

    with ModelClock() as model:
        wall, cpu = time.perf_counter(), time.thread_time()
        window = MainWindow(dataset=data)
        window.resize(1360, 860)
        window.show()
        app.processEvents()
        wait_until(app, lambda: window.property("loading") is not True)
        wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
    window.close()
    window.deleteLater()
    app.processEvents()
    return {"wall_s": wall, "cpu_s": cpu, "model_wall_s": model.wall, "model_cpu_s": model.cpu,
            "window_wall_s": wall - model.wall, "window_cpu_s": cpu - model.cpu,
            **{f"model_{key}_wall_s": seconds for key, seconds in model.parts.items()}}


def scatter_canvases(app, counts, args):
    """A bare LatentCanvas per label count, each fed snapshots of args.points points; yields
    (count, wall ms, CPU ms) of set_snapshot + a synchronous repaint, the counts in turn."""
    from types import SimpleNamespace

    from clipvae_studio.core.events import LatentSnapshot
    from clipvae_studio.gui.latent_canvas import LatentCanvas

    z_dim, cases = 20, {}
    for count in counts:
        canvas = LatentCanvas()
        canvas.resize(900, 700)
        canvas.set_dataset(SimpleNamespace(label_names=[f"label {k}" for k in range(count)]))
        canvas.set_projection_mode("pca")
        canvas.show()
        rng = np.random.default_rng(count)
        cases[count] = (canvas, rng, rng.integers(0, count, args.points), rng.normal(0, 2, (count, z_dim)))
    app.processEvents()
    for i in range(args.repeats + 3):
        for count, (canvas, rng, labels, centres) in cases.items():
            mu = centres[labels] + rng.normal(0, 0.6, (args.points, z_dim))
            snapshot = LatentSnapshot(10**6 + i, mu.astype(np.float32), labels, np.arange(args.points),
                                      centres.astype(np.float32))
            wall, cpu = time.perf_counter(), time.thread_time()
            canvas.set_snapshot(snapshot)
            canvas.plot_widget.viewport().repaint()
            wall, cpu = (time.perf_counter() - wall) * 1000, (time.thread_time() - cpu) * 1000
            app.processEvents()
            if i >= 3:  # the first updates build the scatter items and the basis
                yield count, wall, cpu
    for canvas, *_ in cases.values():
        canvas.close()


def run_interleaved(counts, args) -> dict:
    from gui_plots import stats
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    data = {count: dataset(count, args) for count in counts}
    startup_once(app, data[counts[0]])  # warm-up: torch, Qt and pyqtgraph loaded once for all
    starts = {count: [] for count in counts}
    for _ in range(args.interleaved):
        for count in counts:
            starts[count].append(startup_once(app, data[count]))
    scatter = {count: ([], []) for count in counts}
    for count, wall, cpu in scatter_canvases(app, counts, args):
        scatter[count][0].append(wall)
        scatter[count][1].append(cpu)
    results = []
    for count in counts:
        start = {key: round(float(np.median([s[key] for s in starts[count]])), 3) for key in starts[count][0]}
        results.append({"labels": count, "startup_median": start,
                        "scatter_wall": stats(scatter[count][0]), "scatter_cpu": stats(scatter[count][1])})
    base, most = results[0], results[-1]
    ratios = {f"startup_{k}": most["startup_median"][k] / base["startup_median"][k]
              for k in ("wall_s", "cpu_s", "window_wall_s", "window_cpu_s", "model_wall_s", "model_cpu_s")}
    ratios.update({f"scatter_{k}_median": most[f"scatter_{k}"]["median_ms"] / base[f"scatter_{k}"]["median_ms"]
                   for k in ("wall", "cpu")})
    return {"benchmark": "gui_labels", "mode": "interleaved", "rounds": args.interleaved,
            "points": args.points, "results": results,
            f"ratio_{most['labels']}_to_{base['labels']}_labels": {k: round(v, 2) for k, v in ratios.items()},
            "target_ratio": TARGET_RATIO, "machine": machine()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labels", default="10,100")
    parser.add_argument("--size", type=int, default=28)
    parser.add_argument("--channels", type=int, default=1, help="1 = grey (the mlp), 3 = RGB")
    parser.add_argument("--moves", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=20, help="scatter updates")
    parser.add_argument("--points", type=int, default=10_000, help="points in each scatter update")
    parser.add_argument("--interleaved", type=int, default=0, metavar="R",
                        help="one process, the label counts in turn R times (start-up and scatter)")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: one label count, this process
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(run_case(args.one, args)))
        return 0
    counts = [int(v) for v in args.labels.split(",") if v.strip()]
    if args.interleaved:
        emit(run_interleaved(counts, args))
        return 0
    passed = [f"--{k}={getattr(args, k)}" for k in ("size", "channels", "moves", "repeats", "points")]
    results = []
    for count in counts:
        # each window its own settings home: else the second finds the first's autosave and last dataset
        home = {**os.environ, "CLIPVAE_STUDIO_HOME": tempfile.mkdtemp(prefix="clipvae-bench-")}
        done = subprocess.run([sys.executable, __file__, *passed, "--one", str(count)], capture_output=True,
                              text=True, env=home)
        if done.returncode != 0:
            raise SystemExit(f"{count} labels: crashed:\n{done.stderr[-2000:]}")
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    base, most = results[0], results[-1]
    ratios = {"startup": most["startup_s"] / base["startup_s"],
              "drag_p50": most["drag"]["p50_ms"] / base["drag"]["p50_ms"],
              "scatter_median": most["scatter"]["median_ms"] / base["scatter"]["median_ms"]}
    emit({"benchmark": "gui_labels", "results": results,
          f"ratio_{most['labels']}_to_{base['labels']}_labels": {k: round(v, 2) for k, v in ratios.items()},
          "target_ratio": TARGET_RATIO, "met": all(v <= TARGET_RATIO for v in ratios.values()),
          "machine": machine()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
