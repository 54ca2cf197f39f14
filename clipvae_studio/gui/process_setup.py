"""Process-wide settings the studio needs, made once at start-up (gui/app.py) rather than as a
side effect of building a widget or importing a module."""
from __future__ import annotations

import sys

from .refcount_guard import guard_if_needed

_GUI_THREAD_GC = []  # pyqtgraph's GarbageCollector, once per process


def prepare_process() -> None:
    """Before the QApplication: the reference-count guard, then the thread tuning."""
    guard_if_needed()
    tune_process_for_training()


def collect_garbage_in_gui_thread() -> None:
    """Python's cycle collector runs in whichever thread happens to allocate, which while training
    is mostly the training thread; a Qt object freed there is destroyed in the wrong thread (Qt
    warned "Timers cannot be started from another thread" in ~1 of 20 runs of the click-storm test,
    and it can crash). pyqtgraph's GarbageCollector turns automatic collection off and collects on
    a timer of the GUI thread instead, generation by generation with Python's own thresholds.
    Call it once the QApplication exists."""
    if not _GUI_THREAD_GC:
        from pyqtgraph.util.garbage_collector import GarbageCollector

        _GUI_THREAD_GC.append(GarbageCollector(interval=0.5))


def tune_process_for_training() -> None:
    """Process-wide settings that keep the GUI thread from slowing the training thread.

    - One BLAS thread for numpy: its matrices here are small (PCA of a 2,000 x 16 snapshot), and
      spare OpenBLAS threads spin while waiting, taking the core the training thread needs
      (measured: a 1 ms SVD took ~100 ms of wall time while training).
    - A 1 ms GIL switch interval (Python's default is 5 ms): the training thread releases the GIL
      in every torch op and must take it back after; while the GUI thread runs Python (painting
      plots) it would otherwise wait up to 5 ms per op (measured ~+30% steps/s with the window
      drawing, same run, alternating the setting).
    """
    sys.setswitchinterval(0.001)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # scikit-learn brings it; without it numpy keeps its default
        return
    threadpool_limits(limits=1, user_api="blas")
