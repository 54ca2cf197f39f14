"""The GUI's one way to run work off the GUI thread (everything but training, which has its own
QThread: gui/training_worker.py): dataset loading, the decision map, the manifold, t-SNE.

A job is a plain function `work(should_stop, progress)` that touches no widget: it polls
`should_stop()` where it can stop early (raising core.cancel.Cancelled, or just returning) and
calls `progress(...)` with whatever its owner wants to show. `submit` returns a Job; `cancel(job)`
makes should_stop() true and drops the job's result. on_done / on_error / on_progress run on the
GUI thread. Plain Python threads (concurrent.futures) run the jobs; only the relay that carries
results is a Qt object, and it lives and dies in the GUI thread.

    jobs = BackgroundJobs(parent)
    job = jobs.submit(work, on_done, on_error=None, on_progress=None)
    jobs.cancel(job); jobs.cancel_all(); jobs.wait()  # the last two on shutdown
"""
from __future__ import annotations

import itertools
import sys
import traceback
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from PySide6.QtCore import QObject, Signal, Slot

from ..core.cancel import Cancelled


class _Relay(QObject):
    """Lives in the GUI thread. The pool thread emits its signals; they are connected to this
    object's own slots, so Qt queues them to the GUI thread (a plain Python callable as the slot
    would run in the emitting thread)."""
    ended = Signal(str, object)  # "ok" | "error" | "cancelled", result or message
    progressed = Signal(object)  # the arguments of one progress(...) call, as a tuple

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

    @Slot(object)
    def _progressed(self, args) -> None:
        if self._on_progress_cb is not None:
            self._on_progress_cb(*args)


class Job:
    """A handle on submitted work: `cancelled` is what the work's should_stop() reads."""

    def __init__(self, name: str = ""):
        self.name = name
        self.cancelled = False
        self.done = False


def _run(work: Callable, job: Job, relay: _Relay) -> None:
    # One torch thread per job: on a small machine the trainer needs the other cores, and
    # several threads on an oversubscribed CPU spin against each other. (torch is not imported
    # for this: a job that needs it imports it.)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)
    try:
        result = work(lambda: job.cancelled, lambda *args: relay.progressed.emit(args))
    except Cancelled:
        relay.ended.emit("cancelled", None)
    except Exception as exc:  # shown to the user by the owner of the job
        relay.ended.emit("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}")
    else:
        relay.ended.emit("cancelled" if job.cancelled else "ok", result)


class BackgroundJobs(QObject):
    """Runs jobs on a few worker threads (two by default); `cancel_all` + `wait` on shutdown."""

    def __init__(self, parent=None, max_threads: int = 2, name: str = "background"):
        super().__init__(parent)
        self.max_threads, self.name = max_threads, name
        self.pool = ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix=name)
        self._jobs: dict[int, Job] = {}
        self._ids = itertools.count(1)

    def submit(self, work: Callable, on_done: Callable, on_error: Callable | None = None,
               on_progress: Callable | None = None, name: str = "") -> Job:
        job_id = next(self._ids)
        job = Job(name)

        def ended(status, payload):
            self._jobs.pop(job_id, None)
            job.done = True
            if job.cancelled:
                return
            if status == "ok":
                on_done(payload)
            elif status == "error" and on_error:
                on_error(payload)

        def progressed(*args):
            if on_progress and not job.cancelled:
                on_progress(*args)

        relay = _Relay(ended, progressed, self)
        self._jobs[job_id] = job
        self.pool.submit(_run, work, job, relay)
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
        """Wait for running jobs to end (cancel them first; each checks should_stop often)."""
        del msecs  # the executor has no timeout; cancelled jobs end within one batch or t-SNE iteration
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.pool = ThreadPoolExecutor(max_workers=self.max_threads, thread_name_prefix=self.name)
