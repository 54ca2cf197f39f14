"""Background work for the explorer: a small QThreadPool whose jobs can be cancelled and whose
stale results are dropped. Jobs are plain functions of (should_stop, progress) that touch no
widget; results come back to the GUI thread through queued signals."""
from __future__ import annotations

import itertools
import traceback
from typing import Callable

import torch
from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal, Slot

from ...core.decision_map import Cancelled


class _Relay(QObject):
    """Lives in the GUI thread. The pool thread emits its signals; they are connected to this
    object's own slots, so Qt queues them to the GUI thread (a plain Python callable as the slot
    would run in the emitting thread)."""
    ended = Signal(str, object)  # "ok" | "error" | "cancelled", result or message
    progressed = Signal(float)

    def __init__(self, on_ended: Callable, on_progress: Callable | None):
        super().__init__()
        self._on_ended_cb, self._on_progress_cb = on_ended, on_progress
        self.ended.connect(self._ended)
        self.progressed.connect(self._progressed)

    @Slot(str, object)
    def _ended(self, status, payload) -> None:
        self._on_ended_cb(status, payload)

    @Slot(float)
    def _progressed(self, fraction) -> None:
        if self._on_progress_cb:
            self._on_progress_cb(fraction)


class Job(QRunnable):
    def __init__(self, fn: Callable, relay: _Relay):
        super().__init__()
        self.setAutoDelete(True)
        self.fn = fn
        self.relay = relay
        self.cancelled = False

    def run(self) -> None:
        # One torch thread per job: on a small machine the trainer needs the other cores, and
        # several threads on an oversubscribed CPU spin against each other.
        torch.set_num_threads(1)
        try:
            result = self.fn(lambda: self.cancelled, self.relay.progressed.emit)
        except Cancelled:
            self.relay.ended.emit("cancelled", None)
        except Exception as exc:  # shown to the user by the owner of the job
            self.relay.ended.emit("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}")
        else:
            self.relay.ended.emit("cancelled" if self.cancelled else "ok", result)


class BackgroundRunner(QObject):
    """Runs jobs on its own pool (two threads at most); `cancel_all` + `wait` on shutdown."""

    def __init__(self, parent=None, max_threads: int = 2):
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(max_threads)
        self._jobs: dict[int, Job] = {}
        self._ids = itertools.count(1)

    def submit(self, fn: Callable, on_done: Callable, on_error: Callable | None = None,
               on_progress: Callable | None = None) -> Job:
        job_id = next(self._ids)

        def ended(status, payload):
            self._jobs.pop(job_id, None)  # the job (and this relay) may go now
            if job.cancelled:
                return
            if status == "ok":
                on_done(payload)
            elif status == "error" and on_error:
                on_error(payload)

        def progressed(fraction):
            if on_progress and not job.cancelled:
                on_progress(fraction)

        job = Job(fn, _Relay(ended, progressed))
        self._jobs[job_id] = job
        self.pool.start(job)
        return job

    def cancel(self, job: Job | None) -> None:
        """The job stops at its next should_stop() check; its result, if any, is dropped.
        It stays listed until it has ended, so its relay lives as long as its thread runs."""
        if job is not None:
            job.cancelled = True

    def cancel_all(self) -> None:
        for job in list(self._jobs.values()):
            job.cancelled = True

    @property
    def busy(self) -> bool:
        return bool(self._jobs)

    def wait(self, msecs: int = 3000) -> bool:
        return self.pool.waitForDone(msecs)
