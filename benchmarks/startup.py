"""Start-up: seconds from launching `clipvae-studio` (the GUI entry point) to the main window
being shown, in a fresh subprocess on a warm disk (QT_QPA_PLATFORM=offscreen); plus
`python -X importtime` of the same imports, to say which ones dominate.

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
        if event.type() == QEvent.Type.Show and obj.objectName() == "MainWindow":
            print("SHOWN", time.time(), flush=True)
            QTimer.singleShot(0, QApplication.instance().quit)
        return False

app = QApplication(sys.argv[:1])
watcher = ShownWatcher()
app.installEventFilter(watcher)
main([])
"""


def time_to_window(env) -> float:
    start = time.time()
    proc = subprocess.run([sys.executable, "-c", LAUNCH.format(root=str(ROOT))], env=env, capture_output=True,
                          text=True, timeout=120)
    match = re.search(r"SHOWN ([0-9.]+)", proc.stdout)
    if not match:
        raise RuntimeError(f"the window was never shown:\n{proc.stdout}\n{proc.stderr[-3000:]}")
    return float(match.group(1)) - start


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
    seconds = median(runs)
    emit({
        "benchmark": "startup",
        "time_to_window_s": round(seconds, 3), "runs_s": [round(r, 3) for r in runs],
        "target_s": TARGET_S, "met": seconds < TARGET_S,
        "import_cli": import_times("clipvae_studio.cli", env),
        "import_gui": import_times("clipvae_studio.gui.main_window", env),
        "import_core": import_times("clipvae_studio.core", env),
        "machine": machine(),
    })


if __name__ == "__main__":
    main()
