"""Background work for the explorer: a small thread pool whose jobs can be cancelled and whose
stale results are dropped. Jobs are plain functions of (should_stop, progress) that touch no
widget; results come back to the GUI thread through queued signals.

Plain Python threads (concurrent.futures) run the jobs; only the relay that carries results is
a Qt object, and it lives and dies in the GUI thread."""
from __future__ import annotations

import itertools
import traceback
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from PySide6.QtCore import QObject, Signal, Slot

from ...core.cancel import Cancelled


class _Relay(QObject):
    """Lives in the GUI thread. The pool thread emits its signals; they are connected to this
    object's own slots, so Qt queues them to the GUI thread (a plain Python callable as the slot
    would run in the emitting thread)."""
    ended = Signal(str, object)  # "ok" | "error" | "cancelled", result or message
    progressed = Signal(float)

    def __init__(self, on_ended: Callable, on_progress: Callable, parent: QObject):
        # A parent in the GUI thread owns the C++ object: Python's cycle collector, which may run
        # in any thread, then never deletes it; _ended deletes it with deleteLater.
        super().__init__(parent)
        self._on_ended_cb, self._on_progress_cb = on_ended, on_progress
        self.ended.connect(self._ended)
        self.progressed.connect(self._progressed)

    @Slot(str, object)
    def _ended(self, status, payload) -> None:
        callback, self._on_ended_cb, self._on_progress_cb = self._on_ended_cb, None, None
        self.deleteLater()
        if callback is not None:
            callback(status, payload)

    @Slot(float)
    def _progressed(self, fraction) -> None:
        if self._on_progress_cb is not None:
            self._on_progress_cb(fraction)


class Job:
    """A handle on submitted work: `cancelled` is read by the work's should_stop()."""

    def __init__(self):
        self.cancelled = False


def _run(fn: Callable, job: Job, relay: _Relay) -> None:
    # One torch thread per job: on a small machine the trainer needs the other cores, and
    # several threads on an oversubscribed CPU spin against each other.
    import torch  # loaded by now (jobs run on a model); not at import, so the window shows first

    torch.set_num_threads(1)
    try:
        result = fn(lambda: job.cancelled, relay.progressed.emit)
    except Cancelled:
        relay.ended.emit("cancelled", None)
    except Exception as exc:  # shown to the user by the owner of the job
        relay.ended.emit("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}")
    else:
        relay.ended.emit("cancelled" if job.cancelled else "ok", result)


class BackgroundRunner(QObject):
    """Runs jobs on two worker threads; `cancel_all` + `wait` on shutdown."""

    def __init__(self, parent=None, max_threads: int = 2):
        super().__init__(parent)
        self.pool = ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix="explorer")
        self._jobs: dict[int, Job] = {}
        self._ids = itertools.count(1)

    def submit(self, fn: Callable, on_done: Callable, on_error: Callable | None = None,
               on_progress: Callable | None = None) -> Job:
        job_id = next(self._ids)
        job = Job()

        def ended(status, payload):
            self._jobs.pop(job_id, None)
            if job.cancelled:
                return
            if status == "ok":
                on_done(payload)
            elif status == "error" and on_error:
                on_error(payload)

        def progressed(fraction):
            if on_progress and not job.cancelled:
                on_progress(fraction)

        relay = _Relay(ended, progressed, self)
        self._jobs[job_id] = job
        self.pool.submit(_run, fn, job, relay)
        return job

    def cancel(self, job: Job | None) -> None:
        """The job stops at its next should_stop() check; its result, if any, is dropped."""
        if job is not None:
            job.cancelled = True

    def cancel_all(self) -> None:
        for job in list(self._jobs.values()):
            job.cancelled = True

    @property
    def busy(self) -> bool:
        return bool(self._jobs)

    def wait(self, msecs: int = 3000) -> None:
        """Wait for running jobs to end (they were cancelled first; each checks often)."""
        del msecs  # the executor has no timeout; cancelled jobs end within one batch or t-SNE iteration
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="explorer")
