"""Following a run that another process trains (File -> Open run…), and overlaying other runs in
the loss plot to compare them (File -> Add run to compare…).

A run folder (core/run_folder.py, docs/distributed.md) is read with RunReader on a timer: every
POLL_MS one poll per run, off the GUI thread (a shared folder can be slow), through the window's
one background-jobs helper. The followed run's records become the studio's history
(Studio.follow / add_followed, core/studio.py), so the loss and metrics plots stream them; each
new last.pt is loaded off the GUI thread, with the checkpoint code the File menu uses, and becomes
the model the map and the explorer show (Studio.show_followed). Nothing trains here while a run is
followed: "Train here" copies the run's newest checkpoint into a local training.

The other way round, File -> Record training in run folders… (opt-in, remembered in the
settings) makes the studio's own training keep run folders (Studio.keep_run_folders).
"""
from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QFileDialog, QLabel

from ..core.paths import studio_home
from ..core.run_folder import RunFolderError, RunReader

POLL_MS = 1000  # how often each run folder is read
LABEL_CHARS = 28  # a longer run name is cut in the toolbar (its tooltip has the whole path)
RECORD_SETTING = "training/run_folders"  # where the studio records its training; empty: it does not


def install_run_follow(window) -> "RunFollower":
    window.run_follow = RunFollower(window)
    return window.run_follow


def run_name(path) -> str:
    """A run's name in the legend and the title: its folder's name."""
    path = Path(path).resolve()
    return path.name or str(path)


class RunSource:
    """One run folder being read: its reader and the poll in flight, if any."""

    def __init__(self, path):
        self.reader = RunReader(path)  # raises RunFolderError for a folder that is not a run folder
        self.path = Path(path)
        self.name = run_name(path)
        self.job = None
        self.status: dict = {}
        self.error: str | None = None  # the last read failed: why
        self.model_error: str | None = None  # its newest checkpoint cannot be shown: why


class RunFollower(QObject):
    """Polls the followed run and the compared runs; the window's actions call follow(),
    compare(), train_here() and stop_following()."""

    polled = Signal(str)  # a run's poll was applied (its name)
    checkpointShown = Signal(int)  # the step of the followed run's checkpoint now on the map

    def __init__(self, window):
        super().__init__(window)
        self.window, self.studio, self.jobs = window, window.studio, window.jobs
        self.run: RunSource | None = None
        self.compared: dict[str, RunSource] = {}
        self.shown_step: int | None = None  # the followed checkpoint's step on the map
        self._loading = None  # the checkpoint load in flight
        self._pending = None  # a newer checkpoint seen while one was loading
        self._warned_model = False
        self.timer = QTimer(self)
        self.timer.setObjectName("runPollTimer")
        self.timer.setInterval(POLL_MS)
        self.timer.timeout.connect(self.poll_all)
        self._build_toolbar_items()
        window.signals.trainerChanged.connect(self._trainer_changed)
        window.signals.runFinished.connect(self._run_recorded)
        window.loss_plot.overlayRemoved.connect(self._forget_compared)
        self.record_runs_in(str(window.settings.value(RECORD_SETTING, "") or "") or None)

    # --- toolbar: what is followed, and the ways out --------------------------------------------
    def _build_toolbar_items(self) -> None:
        window, bar = self.window, self.window.training_toolbar
        first = bar.actions()[0] if bar.actions() else None
        self.label = QLabel()
        self.label.setObjectName("followedRunLabel")
        self.label.setContentsMargins(6, 0, 6, 0)
        self.action_train_here = QAction("Train here", window)
        self.action_train_here.setObjectName("actionTrainFollowedHere")
        self.action_train_here.setToolTip("Copy the followed run's newest checkpoint into a local training "
                                          "(Start then continues it here; the run folder is not changed)")
        self.action_train_here.triggered.connect(self.train_here)
        self.action_stop = QAction("Stop following", window)
        self.action_stop.setObjectName("actionStopFollowing")
        self.action_stop.setToolTip("Stop reading the run folder; the model shown stays as a local one")
        self.action_stop.triggered.connect(self.stop_following)
        self.label_action = bar.insertWidget(first, self.label) if first else bar.addWidget(self.label)
        for action in (self.action_train_here, self.action_stop):
            bar.insertAction(first, action) if first else bar.addAction(action)
        self.separator = bar.insertSeparator(first) if first else bar.addSeparator()
        self._show_toolbar_items(False)

    def _show_toolbar_items(self, shown: bool) -> None:
        """While following, the run's name and the ways out take the place of the training
        buttons (which cannot act then): the toolbar keeps its width, nothing is pushed off it."""
        window = self.window
        for action in (self.label_action, self.action_train_here, self.action_stop, self.separator):
            action.setVisible(shown)
        for action in (window.action_start, window.action_pause, window.action_stop, window.action_step):
            action.setVisible(not shown)

    @property
    def following(self) -> bool:
        return self.run is not None and self.studio.followed is not None

    def state_text(self) -> str:
        """The status bar's state while following: whose run, its own state, its newest step."""
        if not self.following:
            return ""
        status = self.run.status
        state = status.get("state", "waiting")
        if state == "running" and status.get("alive") is False:
            state = "writer gone"
        where = "" if self.shown_step is None else f"; map at step {self.shown_step:,}"
        if self.shown_step is None and self.run.model_error is None:
            where = "; map: waiting for its first checkpoint"
        error = "".join(f" — {e}" for e in (self.run.model_error, self.run.error) if e)
        return f"Following {self.run.name} ({state}{where}){error}"

    def newest_step(self) -> int:
        steps = self.studio.history["step"]
        return steps[-1] if steps else 0

    def _update_label(self) -> None:
        name = self.run.name if self.following else ""
        shown = name if len(name) <= LABEL_CHARS else name[:LABEL_CHARS - 1] + "…"
        self.label.setText(f"<b>FOLLOWING</b> {html.escape(shown)}" if self.following else "")
        self.label.setToolTip(f"{self.run.path.resolve()}\ntrained by another process; shown, not trained here"
                              if self.following else "")

    # --- following ------------------------------------------------------------------------------
    def follow(self, path) -> bool:
        """Follow the run folder `path`; a folder that is not a run folder leaves everything as it
        was and says why."""
        try:
            source = RunSource(path)
        except RunFolderError as exc:
            self.window.show_message("Not a run folder", f"{exc}\n\nA run folder is what "
                                     "`clipvae-studio train --run-dir DIR` writes (config.json, metrics.jsonl, "
                                     "last.pt). The current model is unchanged.", "error")
            return False
        dataset = (source.reader.config or {}).get("dataset")
        self._forget_run()
        self.run, self.shown_step, self._warned_model = source, None, False
        self.studio.follow(source.name)
        self.window.loss_plot.set_primary_name(source.name)
        self.window.settings_panel.lock_all()
        self._update_label()
        self._show_toolbar_items(True)
        self.window._update_actions()
        self.window._refresh_status()
        if dataset and dataset != self.studio.dataset.name:
            self.window.statusBar().showMessage(f"{source.name} trains on {dataset}; the map shows "
                                                f"{self.studio.dataset.name}'s test images", 8000)
        self._poll(source)
        self.timer.start()
        return True

    def stop_following(self) -> None:
        self._forget_run()
        self.studio.stop_following()
        self._after_following()

    def train_here(self) -> None:
        """Copy the followed run's newest checkpoint into a local training (off the GUI thread)."""
        if not self.following:
            return
        name, reader, dataset = self.run.name, self.run.reader, self.studio.dataset

        def load(_stop, _progress):
            last = reader.newest_checkpoint()
            return None if last is None else _load_trainer(last.path, dataset)

        self.jobs.submit(load, lambda loaded: self._trained_here(name, loaded),
                         on_error=lambda message: self.window.show_message(
                             "Could not copy the run", f"{name}: {message.splitlines()[0]}", "error"),
                         name="train-here")

    def _trained_here(self, name: str, loaded) -> None:
        if self.run is None or self.run.name != name:
            return
        if loaded is None:
            self.window.show_message("No checkpoint yet", f"{name} has written no checkpoint yet (last.pt); "
                                     "try again once it has.", "info")
            return
        trainer, model, snapshot = loaded
        self._forget_run()
        studio = self.studio
        studio.checkpoint_path = None  # untitled: saving never writes into the run folder
        studio.install(trainer, saved=False, model=model, snapshot=snapshot)
        self._after_following()
        self.window.statusBar().showMessage(f"Copied {name} at step {trainer.step_count:,} into a local "
                                            "training: Start continues it here", 8000)

    def _forget_run(self) -> None:
        if self.run is not None:
            self.jobs.cancel(self.run.job)
        self.jobs.cancel(self._loading)
        self.run, self._loading, self._pending, self.shown_step = None, None, None, None
        if not self.compared:
            self.timer.stop()

    def _after_following(self) -> None:
        self._update_label()
        self._show_toolbar_items(False)
        self.window.loss_plot.set_primary_name("")
        self.window.settings_panel.set_running(self.studio.state in ("running", "paused", "stopping"))
        self.window._update_actions()

    def _trainer_changed(self, _trainer) -> None:
        """Another install (a checkpoint opened, a new model, another dataset) ended following."""
        if self.run is not None and self.studio.followed is None:
            self._forget_run()
            self._after_following()
        elif self.following:
            self.window.settings_panel.lock_all()  # the run's settings are shown, not editable

    # --- comparing -------------------------------------------------------------------------------
    def compare(self, path) -> bool:
        """Overlay the run folder `path` in the loss plot (one colour family, named in the legend)."""
        try:
            source = RunSource(path)
        except RunFolderError as exc:
            self.window.show_message("Not a run folder", f"{exc}\n\nNothing was added to the comparison.", "error")
            return False
        if source.name in self.compared or (self.run is not None and self.run.name == source.name):
            source.name = f"{source.name} ({source.path.resolve().parent.name})"
        self.compared[source.name] = source
        self.window.loss_plot.set_overlay(source.name, _empty_history())
        self._poll(source)
        self.timer.start()
        return True

    def _forget_compared(self, name: str) -> None:
        source = self.compared.pop(name, None)
        if source is not None:
            self.jobs.cancel(source.job)
        if self.run is None and not self.compared:
            self.timer.stop()

    def remove_compared(self) -> None:
        for name, source in list(self.compared.items()):
            self.jobs.cancel(source.job)
            self.window.loss_plot.remove_overlay(name)
        self.compared.clear()
        if self.run is None:
            self.timer.stop()

    # --- recording the studio's own training ------------------------------------------------------
    def choose_recording(self, on: bool) -> None:
        """The File menu's check box: ask where to keep run folders, or stop recording."""
        if not on:
            self.record_runs_in(None)
            return
        start = str(self.window.settings.value("paths/run_folders", "") or studio_home() / "runs")
        folder = QFileDialog.getExistingDirectory(self.window, "Record training in run folders under", start)
        if folder:
            self.window.settings.setValue("paths/run_folders", folder)
        self.record_runs_in(folder or None)

    def record_runs_in(self, folder) -> None:
        folder = str(folder) if folder else None
        self.studio.keep_run_folders(folder)
        self.window.settings.setValue(RECORD_SETTING, folder or "")
        action = self.window.action_record_runs
        action.blockSignals(True)
        action.setChecked(folder is not None)
        action.blockSignals(False)
        action.setStatusTip(f"Training is recorded in run folders under {folder}" if folder else
                            "Keep each training's losses, metrics and checkpoints in a run folder")

    def _run_recorded(self, _summary) -> None:
        if self.studio.run_folders and self.studio.run_folder:
            self.window.statusBar().showMessage(f"Training recorded in {self.studio.run_folder}", 6000)

    # --- polling ---------------------------------------------------------------------------------
    def poll_all(self) -> None:
        for source in ([self.run] if self.run is not None else []) + list(self.compared.values()):
            self._poll(source)

    def _poll(self, source: RunSource) -> None:
        if source.job is not None:  # the previous read of this folder is still under way
            return
        compared = source is not self.run

        def read(_stop, _progress):
            # A compared run's whole history is rebuilt here too: the job owns the reader meanwhile.
            update = source.reader.poll()
            return update, _history_of(source.reader.records("step")) if compared and update.changed else None

        source.job = self.jobs.submit(read, lambda result: self._polled(source, *result),
                                      on_error=lambda message: self._poll_failed(source, message),
                                      name=f"poll {source.name}")

    def _poll_failed(self, source: RunSource, message: str) -> None:
        source.job = None
        source.error = f"cannot read the folder: {message.splitlines()[0]}"

    def _polled(self, source: RunSource, update, history) -> None:
        source.job, source.error = None, None
        source.status = update.status
        if source is self.run:
            self._apply_to_studio(update)
        elif self.compared.get(source.name) is source and history is not None:
            self.window.loss_plot.set_overlay(source.name, history)
        self.polled.emit(source.name)

    def _apply_to_studio(self, update) -> None:
        studio = self.studio
        studio.followed_status = update.status
        steps = [r for r in update.records if r.get("kind") == "step"]
        evals = [r for r in update.records if r.get("kind") == "eval"]
        if studio.add_followed(steps, evals, update.rewind_to):
            # a restart orphaned records: the plots show the history without them
            self.window.loss_plot.set_history(studio.history)
            self.window.metrics_plot.set_rows(studio.eval_history)
        if update.checkpoint is not None:
            self._load_checkpoint(update.checkpoint)

    # --- the followed run's checkpoints --------------------------------------------------------
    def _load_checkpoint(self, info) -> None:
        if self._loading is not None:
            self._pending = info  # loaded when the one under way is in
            return
        run, dataset = self.run, self.studio.dataset
        self._loading = self.jobs.submit(lambda _stop, _progress: _load_trainer(info.path, dataset),
                                         lambda loaded: self._checkpoint_loaded(run, loaded),
                                         on_error=lambda message: self._checkpoint_failed(run, message),
                                         name="followed checkpoint")

    def _next_checkpoint(self) -> None:
        self._loading, pending, self._pending = None, self._pending, None
        if pending is not None and self.following:
            self._load_checkpoint(pending)

    def _checkpoint_loaded(self, run: RunSource, loaded) -> None:
        if run is not self.run or not self.following:
            return
        trainer, model, snapshot = loaded
        run.model_error = None
        self.studio.show_followed(trainer, model, snapshot)
        self.shown_step = trainer.step_count
        self.window.settings_panel.lock_all()
        self.window._update_actions()
        self.checkpointShown.emit(trainer.step_count)
        self._next_checkpoint()

    def _checkpoint_failed(self, run: RunSource, message: str) -> None:
        if run is not self.run:
            return
        first = message.splitlines()[0]
        run.model_error = "its checkpoint cannot be shown"
        if not self._warned_model:  # once per run: the plots follow on, the map keeps the last model
            self._warned_model = True
            self.window.show_message("Cannot show the run's model", f"{run.name}: {first}\n\nThe loss and "
                                     "metrics plots follow the run; the map keeps the model it showed.", "warning")
        self._next_checkpoint()


def _load_trainer(path, dataset):
    """Off the GUI thread: a trainer from a checkpoint, its inference copy and latent snapshot."""
    from ..core.checkpoint import load_checkpoint
    from ..core.explore import inference_copy
    from ..core.studio import trainer_from_checkpoint

    checkpoint = load_checkpoint(str(path), dataset.image_shape, dataset.num_labels)
    trainer = trainer_from_checkpoint(checkpoint, dataset)
    return trainer, inference_copy(trainer.model), trainer.latent_snapshot()


def _empty_history() -> dict:
    return {"step": [], "epoch": []}


def _history_of(records: list[dict]) -> dict:
    """Lists keyed step, epoch and each loss term, from a run's "step" records."""
    from ..core.events import CURVE_KEYS

    history = {"step": [int(r["step"]) for r in records], "epoch": [float(r.get("epoch", 0.0)) for r in records]}
    for key in CURVE_KEYS:
        history[key] = [float((r.get("losses") or {}).get(key, float("nan"))) for r in records]
    return history
