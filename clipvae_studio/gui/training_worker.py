"""The training thread of the GUI: a QObject in its own QThread that runs the studio's jobs.

It is the studio model's executor (core/studio.py: `submit(job)`; docs/architecture.md, "Threads"): the studio decides what runs
and when; this only provides the thread. A QThread rather than a plain thread so that Qt
objects created while training belong to a thread Qt knows, and the thread is joined on close."""
from __future__ import annotations

import atexit

from PySide6.QtCore import QObject, QThread, Signal, Slot

from ..core.events import CURVE_KEYS  # noqa: F401  (its old home: tests/test_gui_plots.py imports it here)

# Strong references: a worker whose thread runs must never be garbage-collected (Qt would abort).
_LIVE_WORKERS: "set[TrainingWorker]" = set()


@atexit.register
def _shutdown_all() -> None:
    # A script that never closes its window must still not leave the thread running at exit
    # (Qt aborts with "QThread: Destroyed while thread is still running").
    for worker in list(_LIVE_WORKERS):
        worker.shutdown(1000)


class TrainingWorker(QObject):
    _jobRequested = Signal(object)

    def __init__(self):
        super().__init__()
        self.studio = None  # the studio whose executor this is (set by the studio's owner)
        self.thread = QThread()
        self.thread.setObjectName("trainingThread")
        self.moveToThread(self.thread)
        self._jobRequested.connect(self._run_job)
        self.thread.start()
        _LIVE_WORKERS.add(self)

    def submit(self, job) -> None:
        """Run `job()` in the training thread, after the jobs submitted before it."""
        self._jobRequested.emit(job)

    @Slot(object)
    def _run_job(self, job) -> None:
        job()

    # --- the studio's run, for callers that hold the worker (tests, benchmarks) ----------
    @property
    def busy(self) -> bool:
        return self.studio is not None and self.studio.busy

    def stop_and_wait(self, timeout: float = 2.0) -> bool:
        return self.studio is None or self.studio.stop_and_wait(timeout)

    def shutdown(self, timeout_ms: int = 1000) -> bool:
        """Stop training and join the thread (window close). True when the thread has ended."""
        if not self.thread.isRunning():
            _LIVE_WORKERS.discard(self)
            return True
        if self.studio is not None:
            self.studio.stop()
        self.thread.quit()
        done = self.thread.wait(timeout_ms)
        if not done and self.studio is not None:  # a very slow step: keep stopping until it ends
            self.studio.stop()
            done = self.thread.wait(10 * timeout_ms)
        if done:
            _LIVE_WORKERS.discard(self)
        return done
