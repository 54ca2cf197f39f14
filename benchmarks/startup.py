"""Start-up: seconds from launching `clipvae-studio` (the GUI entry point) to the main window
being shown, in a fresh subprocess on a warm disk (QT_QPA_PLATFORM=offscreen); then to the model
being loaded (torch imported, bundled data read, a fresh trainer: Start enabled), which happens
after the window is on screen; plus `python -X importtime` of the same imports, to say which
ones dominate.

The launched process runs the real entry point: it imports clipvae_studio.cli as the console
script does, creates the QApplication itself so it can watch for the Show event of the widget
named MainWindow, then calls main([]); run_gui reuses that application. The clock starts before the interpreter is spawned.

    python benchmarks/startup.py [--runs 3]
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

import _common  # noqa: F401
from _common import ROOT, emit, machine, median

TARGET_S = 3.0

LAUNCH = r"""
import sys, time
sys.path.insert(0, {root!r})
from clipvae_studio.cli import main  # first, as the console script does (PySide6's import hook slows later imports)
from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication

class ShownWatcher(QObject):
    def eventFilter(self, obj, event):
        if obj.objectName() != "MainWindow":
            return False
        if event.type() == QEvent.Type.Show:
            print("SHOWN", time.time(), "torch" in sys.modules, flush=True)
        elif event.type() == QEvent.Type.DynamicPropertyChange and obj.property("loading") is False:
            print("LOADED", time.time(), flush=True)  # MainWindow._set_loading(False): the model is in
            QTimer.singleShot(0, QApplication.instance().quit)
        return False

app = QApplication(sys.argv[:1])
watcher = ShownWatcher()
app.installEventFilter(watcher)
main([])
"""


def time_to_window(env) -> tuple[float, float, bool]:
    """(seconds to the window shown, seconds to the model loaded, whether torch was loaded when shown)."""
    start = time.time()
    proc = subprocess.run([sys.executable, "-c", LAUNCH.format(root=str(ROOT))], env=env, capture_output=True,
                          text=True, timeout=120)
    shown = re.search(r"SHOWN ([0-9.]+) (True|False)", proc.stdout)
    loaded = re.search(r"LOADED ([0-9.]+)", proc.stdout)
    if not shown or not loaded:
        raise RuntimeError(f"the window was never shown or never loaded:\n{proc.stdout}\n{proc.stderr[-3000:]}")
    return float(shown.group(1)) - start, float(loaded.group(1)) - start, shown.group(2) == "True"


def import_times(module: str, env) -> dict:
    """-X importtime of `module`: total milliseconds, and the heaviest packages (the cumulative
    time of each top-level package's first import, which includes what it imports in turn)."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"], env=env,
                          capture_output=True, text=True, timeout=120, cwd=str(ROOT))
    per_package: dict[str, int] = {}
    total = 0
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)", line)
        if m:
            cumulative, name = int(m.group(2)), m.group(4)
            total = max(total, cumulative)
            package = name.split(".")[0]
            per_package[package] = max(per_package.get(package, 0), cumulative)
    heaviest = sorted(per_package.items(), key=lambda kv: -kv[1])[:8]
    return {"total_ms": round(total / 1000, 1), "heaviest_packages_ms": {k: round(v / 1000, 1) for k, v in heaviest}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen",
               CLIPVAE_STUDIO_HOME=tempfile.mkdtemp(prefix="clipvae-startup-"),
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env["XDG_CONFIG_HOME"] = os.path.join(env["CLIPVAE_STUDIO_HOME"], "config")
    time_to_window(env)  # warm the disk cache: the target is for a warm disk
    runs = [time_to_window(env) for _ in range(args.runs)]
    seconds = median([r[0] for r in runs])
    emit({
        "benchmark": "startup",
        "time_to_window_s": round(seconds, 3), "runs_s": [round(r[0], 3) for r in runs],
        "target_s": TARGET_S, "met": seconds < TARGET_S,
        "torch_loaded_when_shown": any(r[2] for r in runs),
        "time_to_model_loaded_s": round(median([r[1] for r in runs]), 3),
        "model_loaded_runs_s": [round(r[1], 3) for r in runs],
        "import_cli": import_times("clipvae_studio.cli", env),
        "import_gui": import_times("clipvae_studio.gui.main_window", env),
        "import_core": import_times("clipvae_studio.core", env),
        "machine": machine(),
    })


if __name__ == "__main__":
    main()
