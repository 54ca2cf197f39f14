"""Soak test: train in the real window for N minutes and watch memory and Qt warnings.

    python benchmarks/soak.py            # 10 minutes
    python benchmarks/soak.py --minutes 3

Prints one JSON object: resident memory sampled over time, its growth after the warm-up
(goal < 50 MiB), the Qt warnings printed (goal 0), steps trained and autosaves written.
Runs offscreen with its own temporary settings/recovery folder.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["CLIPVAE_STUDIO_HOME"] = tempfile.mkdtemp(prefix="clipvae-soak-")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# Notices of the offscreen platform plugin itself, not of the studio.
PLATFORM_NOTICES = ("propagateSizeHints",)


def rss_mib() -> float:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource  # fallback: peak, not current (macOS reports bytes)

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="training time (default 10)")
    parser.add_argument("--sample-every", type=float, default=10.0, help="seconds between RSS samples")
    parser.add_argument("--warmup", type=float, default=None, help="seconds before growth is measured "
                        "(default: a fifth of the run, at most 60)")
    parser.add_argument("--preset", default="studio")
    args = parser.parse_args(argv)
    duration = args.minutes * 60
    warmup = args.warmup if args.warmup is not None else min(60.0, duration / 5)

    from PySide6.QtCore import QtMsgType, QTimer, qInstallMessageHandler
    from PySide6.QtGui import QAction

    from clipvae_studio.core import preset
    from clipvae_studio.gui.app import create_application
    from clipvae_studio.gui.main_window import MainWindow

    warnings: collections.Counter = collections.Counter()
    notices: collections.Counter = collections.Counter()

    def on_message(mode, context, message):
        if mode in (QtMsgType.QtWarningMsg, QtMsgType.QtCriticalMsg, QtMsgType.QtFatalMsg):
            (notices if any(n in message for n in PLATFORM_NOTICES) else warnings)[message] += 1

    qInstallMessageHandler(on_message)
    app = create_application()
    window = MainWindow(config=preset(args.preset).with_values(epochs=1_000_000))
    window.show()
    answers = []
    window.show_message = lambda title, text, kind="info", on_answer=None: answers.append((kind, title)) or (
        False if kind == "question" else None)

    samples = []  # (seconds since start, RSS MiB, step)
    t0 = time.monotonic()

    def sample():
        samples.append((round(time.monotonic() - t0, 1), round(rss_mib(), 1), window.trainer.step_count))

    def finish():
        sample()
        window.findChild(QAction, "actionStop").trigger()
        window.worker.stop_and_wait(10)
        app.quit()

    sampler = QTimer()
    sampler.timeout.connect(sample)
    sampler.start(int(args.sample_every * 1000))
    sample()
    window.findChild(QAction, "actionStart").trigger()
    QTimer.singleShot(int(duration * 1000), finish)
    app.exec()
    sampler.stop()
    autosaves = window.recovery.session.saves if window.recovery.session else 0
    window.close()

    after = [s for s in samples if s[0] >= warmup] or samples[-1:]
    base = after[0][1]
    slope = 0.0
    if len(after) >= 3:
        import numpy as np

        t = np.array([s[0] for s in after]) / 60
        slope = float(np.polyfit(t, [s[1] for s in after], 1)[0])
    steps = samples[-1][2]
    result = {
        "minutes": args.minutes, "preset": args.preset, "steps": steps,
        "steps_per_second": round(steps / max(1e-9, samples[-1][0]), 1),
        "rss_start_mib": samples[0][1], "rss_after_warmup_mib": base, "rss_end_mib": samples[-1][1],
        "rss_max_mib": max(s[1] for s in samples),
        "rss_growth_after_warmup_mib": round(max(s[1] for s in after) - base, 1),
        "rss_slope_after_warmup_mib_per_min": round(slope, 2), "warmup_s": warmup,
        "qt_warnings": sum(warnings.values()), "qt_warning_texts": dict(warnings.most_common(5)),
        "qt_platform_notices": sum(notices.values()), "messages_shown": answers,
        "autosaves": autosaves, "samples": samples,
        "goal": {"rss_growth_after_warmup_mib": "< 50", "qt_warnings": 0},
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
