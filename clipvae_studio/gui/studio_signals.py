"""The Qt adapter of the studio model (core/studio.py): its events as Qt signals on the GUI thread.

The studio hands what the training thread reports to `post`; here `post` queues the call to the
GUI thread, so the studio's state changes there and its events (re-emitted below as signals)
reach the views in the order they happened. Events the GUI thread causes itself (open, reset,
stop) are emitted at once."""
from __future__ import annotations

from PySide6.QtCore import QObject, Signal, Slot


class StudioSignals(QObject):
    stateChanged = Signal(str)  # idle, running, paused, stopping, stopped, finished, error
    lossBatch = Signal(object)  # numpy arrays step, epoch, total, terms (rows new to the history)
    evaluated = Signal(object)  # metrics dict (an EvalEvent's)
    snapshotReady = Signal(object)  # LatentSnapshot
    inferenceModelChanged = Signal(object)  # a CPU eval CLIPVAE each time weights are published
    errorOccurred = Signal(object)  # ErrorEvent
    runFinished = Signal(object)  # Trainer.summary()
    trainerChanged = Signal(object)  # a new Trainer is current (reset, open, dataset, setting)
    datasetChanged = Signal(object)  # the new ImageDataset
    documentChanged = Signal()  # the checkpoint path or the saved flag changed

    _queued = Signal(object)

    def __init__(self, parent=None):
        super().__init__(parent)
        self._queued.connect(self._run_queued)  # emitted from another thread: queued to this one

    def post(self, fn, *args) -> None:
        """The studio's `post`: run fn(*args) on the thread this object lives in (the GUI's)."""
        self._queued.emit((fn, args))

    @Slot(object)
    def _run_queued(self, call) -> None:
        fn, args = call
        fn(*args)

    def observe(self, studio) -> None:
        events = studio.events
        for event, signal in ((events.state, self.stateChanged), (events.losses, self.lossBatch),
                              (events.evaluated, self.evaluated), (events.snapshot, self.snapshotReady),
                              (events.model, self.inferenceModelChanged), (events.error, self.errorOccurred),
                              (events.run_finished, self.runFinished), (events.trainer, self.trainerChanged),
                              (events.dataset, self.datasetChanged), (events.document, self.documentChanged)):
            event.connect(signal.emit)
