"""Autosave while training and the offer to restore after a crash.

The window gets a RecoveryController (window.recovery). It writes the studio's trainer to a
recovery checkpoint every few minutes and whenever training stops or pauses, removes it when
the window closes with nothing unsaved (and keeps it when training was never saved), and at
launch offers back what a crashed or unsaved session left (core/autosave.py does the files;
this module only adds the timer and the questions). It reads and changes what is open through
the studio model (window.studio, core/studio.py) and uses the window's public methods only.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication

from ..core.autosave import INTERVAL_ENV, AutosaveSession, Recovery, autosave_interval, find_recoveries
from ..core.checkpoint import CheckpointError
from ..core.studio import trainer_from_checkpoint

SETTING_KEY = "recovery/autosave_minutes"  # in studio.ini; $CLIPVAE_STUDIO_AUTOSAVE_S wins (seconds)
STOPPED_STATES = ("paused", "stopped", "finished", "error")


def install_recovery(window) -> None:
    """Attach autosave and crash recovery to a MainWindow."""
    window.recovery = RecoveryController(window)


class RecoveryController(QObject):
    def __init__(self, window):
        super().__init__(window)
        self.window = window
        self.studio = window.studio
        self.session: AutosaveSession | None = None
        self.offer_box = None  # the "restore?" question while it is open (tests answer it)
        self.pending: Recovery | None = None
        self._saved_key = None  # (trainer id, step) of the last autosave
        self._warned = False
        self._dataset_tried = False
        try:
            self.session = AutosaveSession(interval_s=self._interval_s()).begin()
        except OSError as exc:  # e.g. a read-only home: work on, but say that autosave is off
            reason = f"{exc.strerror or exc}" + (f": {exc.filename}" if getattr(exc, "filename", None) else "")
            QTimer.singleShot(0, lambda: window.show_message(
                "Autosave is off", f"Recovery checkpoints cannot be written ({reason}).", "warning"))
            return
        self.timer = QTimer(self)
        self.timer.setObjectName("autosaveTimer")
        self.timer.setInterval(int(self.session.interval_s * 1000))
        self.timer.timeout.connect(self.autosave)
        self.timer.start()
        window.stateChanged.connect(self._on_state)
        window.installEventFilter(self)
        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.close)
        QTimer.singleShot(0, self.offer_restore)

    def _interval_s(self) -> float:
        if os.environ.get(INTERVAL_ENV):
            return autosave_interval()
        try:
            minutes = float(self.window.settings.value(SETTING_KEY, 2))
        except (TypeError, ValueError):
            minutes = 2.0
        return minutes * 60 if minutes > 0 else autosave_interval()

    # --- saving -----------------------------------------------------------------------
    def autosave(self, **extra) -> Path | None:
        """Write the recovery checkpoint if the model changed since the last one."""
        window, studio, session = self.window, self.studio, self.session
        trainer = studio.trainer
        if session is None or not session.active or trainer is None or trainer.step_count == 0:
            return None
        key = (id(trainer), trainer.step_count)
        if key == self._saved_key:
            return None
        kind, path = studio.dataset_source
        meta = {"dataset_source": [kind, str(path) if path else None], "checkpoint_path": studio.checkpoint_path,
                "saved": time.time(), **extra}
        written = session.save(trainer, studio.dataset.name, meta)
        if written is not None:
            self._saved_key = key
            self._warned = False
        elif not self._warned:  # once per failure streak: the old recovery file is still intact
            self._warned = True
            window.show_message("Autosave failed", f"{session.last_error}\n\nTraining goes on; autosave will "
                                "try again.", "warning")
        return written

    def _on_state(self, state: str) -> None:
        if state in STOPPED_STATES:
            self.autosave()

    def end(self) -> None:
        """A clean exit: the recovery files go."""
        if self.session is not None and self.session.active:
            self.timer.stop()
            self.session.end()

    def close(self) -> None:
        """The window closes. Unsaved training is kept for the next launch to offer back;
        otherwise nothing is left behind."""
        studio, session = self.studio, self.session
        if session is None or not session.active:
            return
        if studio.unsaved and studio.trainer.step_count > 0:
            self.timer.stop()
            self._saved_key = None  # write the latest state, marked as closed rather than crashed
            if self.autosave(closed_unsaved=True) is not None:
                session.release()
                return
        self.end()

    def eventFilter(self, obj, event) -> bool:
        if obj is self.window and event.type() == QEvent.Type.Close:
            self.close()
        return False

    # --- restoring -----------------------------------------------------------------------
    def offer_restore(self) -> bool:
        """If a crashed session left a checkpoint, ask whether to restore it. True if asked."""
        if self.session is None:
            return False
        recoveries = find_recoveries(self.session.folder)
        if not recoveries:
            return False
        recovery = recoveries[0]
        try:
            ckpt = recovery.load()
        except CheckpointError as exc:
            recovery.discard()
            self.window.show_message("Recovery file unreadable", f"A recovery checkpoint was found but cannot "
                                     f"be used: {exc}", "warning")
            return False
        self.pending = recovery
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(recovery.saved_at))
        what = (f"a model trained for {ckpt.step:,} steps on {ckpt.dataset or 'an unknown dataset'}, with its "
                f"optimiser state and loss history")
        if recovery.meta.get("closed_unsaved"):
            text = f"The studio was closed last time ({when}) without saving {what}."
        else:
            text = f"CLIP-VAE Studio did not close normally last time. Its last autosave ({when}) holds {what}."
        text += "\n\nRestore it? (No deletes it.)"
        self.offer_box = self.window.show_message("Restore the last session?", text, "question",
                                                  on_answer=lambda yes: self._answered(recovery, yes))
        return True

    def _answered(self, recovery: Recovery, yes: bool) -> None:
        self.offer_box = None
        if yes:
            self.restore(recovery)
        else:
            self.pending = None
            recovery.discard()

    def _after_dataset_load(self, then) -> None:
        """Call `then` once the window has no dataset load in flight. Polled rather than connected
        to the load's finished signal: a small dataset can finish before a connection is made."""
        def check():
            if not self.window.dataset_loading:
                poll.stop()
                poll.deleteLater()
                then()

        poll = QTimer(self)
        poll.setInterval(50)
        poll.timeout.connect(check)
        poll.start()

    def restore(self, recovery: Recovery) -> bool:
        """Make the recovered model current; it continues with the same optimiser state and history."""
        window, studio = self.window, self.studio
        if window.dataset_loading:  # a dataset is still loading: restore once it is in
            self._after_dataset_load(lambda: self.restore(recovery))
            return False
        try:
            ckpt = recovery.load()
        except CheckpointError as exc:
            window.show_message("Could not restore", str(exc), "error")
            return False
        dataset = studio.dataset
        fits = (tuple(ckpt.model.image_shape) == tuple(dataset.image_shape)
                and ckpt.model.num_labels == dataset.num_labels and ckpt.dataset in (None, dataset.name))
        if not fits:
            source = recovery.meta.get("dataset_source")
            if source and not self._dataset_tried and tuple(source) != tuple(studio.dataset_source):
                self._dataset_tried = True  # load the crashed session's dataset, then try once more
                if window.load_dataset_async(source[0], source[1], confirm=False) is not None:
                    self._after_dataset_load(lambda: self.restore(recovery))
                    return False
            window.show_message("Could not restore", f"The autosave was made on {ckpt.dataset}, which cannot be "
                                f"opened now. It is kept in {recovery.checkpoint} and will be offered again at the "
                                "next start; File > Open checkpoint opens it once the dataset is back.", "warning")
            return False
        window.stop_and_wait()
        trainer = trainer_from_checkpoint(ckpt, dataset)
        studio.adopt(trainer, recovery.meta.get("checkpoint_path"), saved=False)
        if self.session is not None:
            try:
                self.session.adopt(recovery)  # stays recoverable should this session crash too
                self._saved_key = (id(trainer), trainer.step_count)
            except OSError:
                pass  # the old file stays where it is and is offered again next time
        self.pending = None
        window.statusBar().showMessage(f"Restored the autosave at step {trainer.step_count:,}; Start continues "
                                       "training from there", 8000)
        return True
