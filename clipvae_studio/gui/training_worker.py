"""The training worker: a QObject in its own QThread that owns a core Trainer and turns its
events into throttled Qt signals carrying plain Python / numpy copies (docs/architecture.md, "Threads").

The trainer's listener runs in the worker thread on every optimiser step, so it only appends
numbers to lists; a batch of steps is emitted at most ~30 times a second, and before any other
event so the order of events is kept. Every signal carries the worker's `generation`, bumped
whenever a new trainer is attached, so the window can drop late signals of a replaced trainer.
"""
from __future__ import annotations

import atexit
import threading
import time
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QObject, QThread, Signal, Slot

from ..core.events import LOSS_TERMS, ErrorEvent, EvalEvent, LatentSnapshot, StateEvent, StepEvent, WeightsEvent

if TYPE_CHECKING:  # torch-using core modules load only when used: the window shows before torch
    from ..core.trainer import Trainer

CURVE_KEYS = ("total",) + LOSS_TERMS
EMIT_INTERVAL_S = 1 / 30  # loss batches: at most ~30 a second
RUNNING_STATES = ("running", "paused")
# Strong references: a worker whose thread runs must never be garbage-collected (Qt would abort).
_LIVE_WORKERS: "set[TrainingWorker]" = set()


@atexit.register
def _shutdown_all() -> None:
    # A script that never closes its window must still not leave the thread running at exit
    # (Qt aborts with "QThread: Destroyed while thread is still running").
    for worker in list(_LIVE_WORKERS):
        worker.shutdown(1000)


class TrainingWorker(QObject):
    lossBatch = Signal(object, int)  # dict of numpy arrays: step, epoch, total, clip, ...; plus lr, samples_per_second
    evaluated = Signal(object, int)  # EvalEvent.metrics (dict with step and epoch)
    snapshotReady = Signal(object, int)  # LatentSnapshot (numpy arrays)
    weightsReady = Signal(object, int)  # a CPU eval CLIPVAE built from a WeightsEvent (core.explore.inference_copy)
    stateChanged = Signal(str, int)
    errorOccurred = Signal(object, int)  # ErrorEvent
    runFinished = Signal(object, int)  # Trainer.summary()

    _runRequested = Signal()
    _stepRequested = Signal()

    def __init__(self, trainer: Trainer | None = None):
        super().__init__()
        self.trainer: Trainer | None = None
        self.generation = 0
        self._lock = threading.Lock()
        self._busy = False  # a run is requested or in progress
        self._stopping = False
        self._restart = False
        self._idle = threading.Event()
        self._idle.set()
        self._reset_buffers()
        self.thread = QThread()
        self.thread.setObjectName("trainingThread")
        self.moveToThread(self.thread)
        self._runRequested.connect(self._run)
        self._stepRequested.connect(self._step)
        self.thread.start()
        _LIVE_WORKERS.add(self)
        if trainer is not None:
            self.set_trainer(trainer)

    # --- called from the GUI thread ---------------------------------------------
    @property
    def busy(self) -> bool:
        """True while the trainer's loop runs (also while it is paused inside the loop)."""
        return self._busy

    @property
    def state(self) -> str:
        return self.trainer.state if self.trainer is not None else "idle"

    def set_trainer(self, trainer: Trainer) -> None:
        """Attach a new trainer; the previous one must not be running (call stop_and_wait first)."""
        if self._busy:
            raise RuntimeError("stop training before replacing the trainer")
        if self.trainer is not None and self._listen in self.trainer.listeners:
            self.trainer.listeners.remove(self._listen)
        with self._lock:
            self.generation += 1
            self._reset_buffers()
        self.trainer = trainer
        trainer.add_listener(self._listen)

    def start(self) -> None:
        """Start a run, or resume a paused one."""
        trainer = self.trainer
        if trainer is None:
            return
        with self._lock:
            trainer.resume()
            if self._busy:
                if self._stopping:  # the loop is on its way out: run again when it ends
                    self._restart = True
                return
            self._busy, self._stopping, self._restart = True, False, False
            self._idle.clear()
        self._runRequested.emit()

    def pause(self) -> None:
        if self.trainer is not None:
            self.trainer.pause()

    def stop(self) -> None:
        if self.trainer is None:
            return
        with self._lock:
            if self._busy:
                self._stopping = True
            self._restart = False
        self.trainer.stop()

    def step(self) -> None:
        """One optimiser step: queued into the paused loop, or run in the worker thread."""
        if self.trainer is None:
            return
        with self._lock:
            busy = self._busy
        if busy:
            self.trainer.step()
        else:
            self._stepRequested.emit()

    def stop_and_wait(self, timeout: float = 2.0) -> bool:
        """Stop the run and block until the loop has returned (True) or `timeout` passes."""
        self.stop()
        return self._idle.wait(timeout)

    def shutdown(self, timeout_ms: int = 1000) -> bool:
        """Stop training and join the thread (window close). True when the thread has ended."""
        if not self.thread.isRunning():
            _LIVE_WORKERS.discard(self)
            return True
        self.stop()
        if self.trainer is not None and self._listen in self.trainer.listeners:
            self.trainer.listeners.remove(self._listen)
        self.thread.quit()
        done = self.thread.wait(timeout_ms)
        if not done:  # a very slow step: keep stopping until it ends rather than leak a running thread
            self.stop()
            done = self.thread.wait(10 * timeout_ms)
        if done:
            _LIVE_WORKERS.discard(self)
        return done

    # --- the worker thread ------------------------------------------------------------
    @Slot()
    def _run(self) -> None:
        trainer = self.trainer
        try:
            while True:
                try:
                    summary = trainer.run()
                except Exception as exc:  # a crash in the loop must reach the user, not kill the thread
                    self._flush()
                    self.errorOccurred.emit(ErrorEvent(trainer.step_count, f"training failed: {exc}"),
                                            self.generation)
                    trainer.state = "error"
                    self.stateChanged.emit("error", self.generation)
                    summary = trainer.summary()
                with self._lock:
                    if self._restart:
                        self._restart = self._stopping = False
                        continue
                    self._busy = self._stopping = False
                    break
            self._flush()
            self.runFinished.emit(summary, self.generation)
        finally:
            with self._lock:
                self._busy = False
                self._idle.set()

    @Slot()
    def _step(self) -> None:
        trainer = self.trainer
        if trainer is None or self._busy:
            return
        try:
            trainer.step()
            trainer.emit_snapshot()
        except Exception as exc:
            self.errorOccurred.emit(ErrorEvent(trainer.step_count, f"the step failed: {exc}"), self.generation)
        self._flush()

    def _listen(self, event) -> None:
        """Trainer listener, worker thread: keep it cheap."""
        if isinstance(event, StepEvent):
            if self._stopping:  # a stop that raced the start of run(), which clears the stop flag
                self.trainer.stop()
            losses = event.losses
            self._steps.append(event.step)
            self._epochs.append(event.epoch)
            for key, values in self._values.items():
                values.append(losses[key])
            self._last_lr, self._last_sps = event.lr, event.samples_per_second
            if time.perf_counter() - self._last_emit >= EMIT_INTERVAL_S:
                self._flush()
            return
        self._flush()
        gen = self.generation
        if isinstance(event, LatentSnapshot):
            self.snapshotReady.emit(event, gen)
        elif isinstance(event, WeightsEvent):
            # The copy is built here, on the training thread (~25 ms a second, ~2 % of training):
            # on the GUI thread it stalled a drag on the map for as long, once a second.
            from ..core.explore import inference_copy  # torch: imported once training runs

            self.weightsReady.emit(inference_copy(self.trainer.model, event.state_dict), gen)
        elif isinstance(event, EvalEvent):
            self.evaluated.emit(dict(event.metrics), gen)
        elif isinstance(event, StateEvent):
            self.stateChanged.emit(event.state, gen)
        elif isinstance(event, ErrorEvent):
            self.errorOccurred.emit(event, gen)

    def _reset_buffers(self) -> None:
        self._steps: list[int] = []
        self._epochs: list[float] = []
        self._values: dict[str, list[float]] = {key: [] for key in CURVE_KEYS}
        self._last_emit = 0.0
        self._last_lr = self._last_sps = float("nan")

    def _flush(self) -> None:
        if not self._steps:
            return
        batch = {"step": np.asarray(self._steps, dtype=np.int64), "epoch": np.asarray(self._epochs, dtype=np.float64)}
        for key, values in self._values.items():
            batch[key] = np.asarray(values, dtype=np.float64)
        batch["lr"], batch["samples_per_second"] = self._last_lr, self._last_sps
        self._steps, self._epochs = [], []
        self._values = {key: [] for key in CURVE_KEYS}
        self._last_emit = time.perf_counter()
        self.lossBatch.emit(batch, self.generation)
