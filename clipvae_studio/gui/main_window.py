"""The studio's main window: the training toolbar, the latent map in the middle, settings on the
left, live loss and metrics plots below, and a status bar. What is open (dataset, trainer, history,
run state, checkpoint) is the studio model, `window.studio` (core/studio.py); the window shows it
through `window.signals` (gui/studio_signals.py) and forwards the user's intent to it. The explorer
and recovery modules attach to the window (install_*)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QApplication, QDockWidget, QFileDialog, QMainWindow, QWidget

from ..core.config import MODEL_FIELDS, PRESETS, TrainConfig, preset
from ..core.paths import studio_home
from ..core.studio import BUSY_STATES, Studio
from . import style
from .background_jobs import BackgroundJobs
from .dataset_loader import DATASET_TITLES, DatasetLoad, detect_folder_kind
from .file_actions import FileActions
from .icons import app_icon, icon
from .latent_canvas import LatentCanvas
from .loss_plot import LossPlot
from .metrics_plot import MetricsPlot
from .run_follow import install_run_follow
from .settings_panel import SettingsPanel, explain_invalid, field_label
from .studio_signals import StudioSignals
from .training_worker import TrainingWorker
from .window_actions import WindowActions
from .window_layout import WindowLayout
from .window_messages import WindowMessages

if TYPE_CHECKING:  # torch-using core modules are imported where used: the window shows before torch loads
    from ..core.trainer import Trainer

BUILTIN_DATASETS = ("mnist5k", "mnist", "fashion-mnist", "kmnist")
STATE_TEXT = {"idle": "Ready", "running": "Training", "paused": "Paused", "stopping": "Stopping…",
              "stopped": "Stopped", "finished": "Finished", "error": "Stopped (error)"}


def dataset_error_text(kind: str, error: str) -> str:
    """A failed load in the window's words: a download that could not reach the network says so
    and points to the menu, not to the command line; the current run goes on either way."""
    title = DATASET_TITLES.get(kind, kind)
    unchanged = "\n\nThe current dataset and model are unchanged."
    if kind in ("mnist", "fashion-mnist", "kmnist"):
        offline = any(word in error for word in ("urlopen", "Errno", "resolve", "timed out", "Connection"))
        cause = "the network could not be reached" if offline else error.split(" (")[0]
        return (f"{title} could not be downloaded: {cause}.\n\nConnect to the network once (the set is then "
                f"kept on this computer), or use File → Open dataset folder… with the set's IDX files."
                + unchanged)
    return error + unchanged


def settings_file() -> Path:
    return studio_home() / "studio.ini"


class MainWindow(FileActions, WindowActions, WindowMessages, WindowLayout, QMainWindow):
    def __init__(self, dataset=None, config: TrainConfig | None = None, parent=None, *, defer_model: bool = False):
        """With defer_model the window is built without torch (importing it is most of a start) and
        load_model() must be called, ideally once the window is on screen (load_model_when_shown):
        the person sees the whole window at once and it comes alive a moment later."""
        super().__init__(parent)
        self.setObjectName("MainWindow")
        self.settings = QSettings(str(settings_file()), QSettings.Format.IniFormat)
        app = QApplication.instance()
        if app is not None and app.property("clipvaeTheme") is None:
            style.apply_theme(app, str(self.settings.value("view/theme", "light")))
        self.setWindowIcon(app_icon())
        self.messages: list[tuple[str, str, str]] = []  # (kind, title, text), newest last
        self._dataset_load: DatasetLoad | None = None
        self.jobs = BackgroundJobs(self, name="studio-jobs")  # off-thread work other than training

        saved_preset = str(self.settings.value("training/preset", "studio"))
        self.preset_name = saved_preset if saved_preset in PRESETS else "studio"
        self._explicit_dataset = dataset is not None  # then the saved last dataset is not reloaded
        # The studio model; the bundled set is loaded by load_model when no dataset is given.
        self.worker = TrainingWorker()  # the training thread
        self.signals = StudioSignals(self)
        self.studio = Studio(config or preset(self.preset_name), dataset,
                             ("mnist5k", None) if dataset is None else (dataset.name, None),
                             executor=self.worker, post=self.signals.post)
        self.worker.studio = self.studio
        self.signals.observe(self.studio)
        # the studio's signals under the names the window's observers (explorer, recovery) use
        self.stateChanged = self.signals.stateChanged
        self.inferenceModelChanged = self.signals.inferenceModelChanged
        self.datasetChanged = self.signals.datasetChanged

        self.canvas = LatentCanvas()
        self.setCentralWidget(self.canvas)
        self.settings_panel = SettingsPanel(config)
        self.settings_panel.valueChanged.connect(self._setting_edited)
        self.loss_plot = LossPlot()
        self.metrics_plot = MetricsPlot()
        self.settings_dock = self._dock("Settings", "settingsDock", self.settings_panel,
                                        Qt.DockWidgetArea.LeftDockWidgetArea)
        self.loss_dock = self._dock("Loss", "lossDock", self.loss_plot, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.metrics_dock = self._dock("Test metrics", "metricsDock", self.metrics_plot,
                                       Qt.DockWidgetArea.BottomDockWidgetArea)
        self.splitDockWidget(self.loss_dock, self.metrics_dock, Qt.Orientation.Horizontal)
        # side columns run the full height; the plots sit under the map only
        self.setCorner(Qt.Corner.BottomLeftCorner, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)

        signals = self.signals
        signals.trainerChanged.connect(self._on_trainer)
        signals.lossBatch.connect(self._on_loss_batch)
        signals.evaluated.connect(self.metrics_plot.add_metrics)
        signals.snapshotReady.connect(self.canvas.set_snapshot)
        signals.inferenceModelChanged.connect(self.canvas.set_model)
        signals.stateChanged.connect(self._on_state)
        signals.errorOccurred.connect(self._on_error)
        signals.runFinished.connect(self._update_actions)
        signals.datasetChanged.connect(self._on_dataset)
        signals.documentChanged.connect(self._update_title)

        self._build_actions()
        self._build_toolbar()
        self._build_menus()
        self._build_status_bar()
        self.resize(1360, 860)
        self._apply_theme_to_views()

        from .explorer import install_explorer

        install_explorer(self)
        install_run_follow(self)
        self._apply_minimum_size()
        self._restore_layout()
        self._set_loading(True)
        if not defer_model:
            self.load_model()

    def load_model(self) -> None:
        """The second half of start-up: import torch, load the dataset, make the first trainer,
        then autosave/recovery and the last session's dataset. Runs once."""
        if self.trainer is not None:
            return
        from ..core.data import load_dataset
        from ..core.speed import reserve_cores
        from .explorer import use_one_torch_thread_here
        from .recovery import install_recovery

        reserve_cores(1)  # training threads leave one core to this window's event loop
        if self.studio.dataset is None:
            self.studio.dataset = load_dataset("mnist5k")
        self.canvas.set_dataset(self.dataset)
        self.studio.new_model()
        self._say_fit_notes()
        use_one_torch_thread_here()
        install_recovery(self)
        self._set_loading(False)
        self._reload_last_dataset()

    def load_model_when_shown(self, then=None, give_up_ms: int = 2000) -> None:
        """Call load_model once the window has been painted on screen (it blocks the event loop
        for ~1.5 s while torch loads, so it must not run before the first paint), then `then()`.
        The platform paints a window when it first exposes it; the check polls every 10 ms and
        loads anyway after give_up_ms (e.g. a window started minimised is never exposed)."""
        started = time.monotonic()

        def poll():
            handle = self.windowHandle()
            if handle is not None and handle.isExposed() or time.monotonic() - started > give_up_ms / 1000:
                QApplication.sendPostedEvents()  # pending layouts (the first start's dock sizes) ...
                self.repaint()  # ... and their paint reach the screen before the event loop blocks
                try:
                    self.load_model()
                except Exception as exc:  # e.g. a broken torch install or bundled data: say so, stay open
                    self.status_labels["state"].setText("Could not load the model")
                    self.show_message("Could not start training", f"Loading the model failed: "
                                      f"{type(exc).__name__}: {exc}", "error")
                    return
                if then is not None:
                    then()
            else:
                QTimer.singleShot(10, poll)
        QTimer.singleShot(0, poll)

    def _set_loading(self, loading: bool) -> None:
        """Until the model is loaded only the view can be used: everything that needs the
        trainer or the dataset is greyed out."""
        self.setProperty("loading", loading)  # benchmarks/startup.py watches this change
        if loading:
            self.settings_panel.lock_all()
        else:
            self.settings_panel.set_running(self.state in BUSY_STATES)
        for widget in (self.dataset_combo, self.preset_combo):
            widget.setEnabled(not loading)
        for action in (self.action_open, self.action_save, self.action_save_as, self.action_open_dataset,
                       self.action_export_csv, self.recent_menu.menuAction()):
            action.setEnabled(not loading)
        self._update_actions()
        if loading:
            self.status_labels["state"].setText("Loading PyTorch…")
        else:
            self._refresh_status()

    # --- construction --------------------------------------------------------------------
    def _dock(self, title: str, name: str, widget: QWidget, area) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setWidget(widget)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetFloatable
                         | QDockWidget.DockWidgetFeature.DockWidgetClosable)
        self.addDockWidget(area, dock)
        return dock

    # --- the studio model, as the window reads it ---------------------------------------------
    @property
    def trainer(self) -> Trainer | None:
        return self.studio.trainer

    @property
    def dataset(self):
        return self.studio.dataset

    @property
    def dataset_source(self) -> tuple:
        return self.studio.dataset_source

    @property
    def state(self) -> str:
        return self.studio.state

    @property
    def checkpoint_path(self) -> str | None:
        return self.studio.checkpoint_path

    @property
    def inference_model(self):
        return self.studio.inference_model

    @property
    def unsaved(self) -> bool:
        return self.studio.unsaved

    @property
    def dataset_loading(self) -> bool:
        """A dataset is being loaded in the background (it replaces the model when it is in)."""
        return self._dataset_load is not None

    def confirm_discard(self, what: str, stop: bool = True) -> bool:
        """Ask before throwing the current model away (training or unsaved); stop training if yes
        (unless `stop` is False: the caller stops it once the replacement is ready)."""
        busy = self.studio.busy
        if not busy and not self.unsaved:
            return True
        parts = []
        if busy:
            parts.append("Training is running and will stop.")
        if self.unsaved:
            # no step count: training goes on behind the dialog, and a number would be stale
            parts.append("The current model has unsaved training.")
        if not self.show_message(what, " ".join(parts) + f"\n\n{what}?", "question"):
            return False
        if stop:
            self.stop_and_wait()
        return True

    def stop_and_wait(self) -> None:
        if self.studio.busy and not self.studio.stop_and_wait(5.0):
            self.show_message("Training did not stop", "The training thread did not stop within 5 s.", "warning")

    # --- training control -------------------------------------------------------------------
    def start_training(self) -> None:
        if self.studio.planned_epochs_done and not self.studio.busy:
            self.show_message("Planned epochs done",
                              f"The run has reached its {self.trainer.config.epochs} planned epochs. "
                              "Raise 'epochs' in the settings to train further.", "info")
            return
        self.studio.start()

    def pause_training(self) -> None:
        self.studio.pause()

    def stop_training(self) -> None:
        self.studio.stop()

    def step_training(self) -> None:
        self.studio.step()

    # --- runs trained elsewhere (gui/run_follow.py) --------------------------------------------
    def open_run_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open run folder", str(self.settings.value("paths/run", "")))
        if folder:
            self.settings.setValue("paths/run", folder)
            self.open_run(folder)

    def open_run(self, path, confirm: bool = True) -> bool:
        """Follow the run folder `path`: its records stream into the plots, its checkpoints onto the map."""
        if confirm and not self.confirm_discard("Follow a run (its checkpoints replace the current model)"):
            return False
        return self.run_follow.follow(path)

    def compare_run_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add run to compare", str(self.settings.value("paths/run", "")))
        if folder:
            self.settings.setValue("paths/run", folder)
            self.compare_run(folder)

    def compare_run(self, path) -> bool:
        return self.run_follow.compare(path)

    def record_runs_in(self, folder) -> None:
        """Record training in run folders under `folder` from the next Start on (None: stop)."""
        self.run_follow.record_runs_in(folder)

    def toggle_training(self) -> None:
        if self.state == "running":
            self.pause_training()
        elif self.action_start.isEnabled():
            self.start_training()

    def reset_model(self) -> None:
        if not self.confirm_discard("Reset to fresh weights"):
            return
        self.studio.reset(self.settings_panel.config())

    # --- studio signals (GUI thread) -----------------------------------------------------------
    def _on_trainer(self, trainer: Trainer) -> None:
        """A new trainer is current: settings, plots and map show it (its model, snapshot and
        state follow as their own signals)."""
        self.settings_panel.set_config(trainer.config)
        self.settings_panel.show_resolved_arch(trainer.model.arch)  # "auto (conv)": what auto picked
        self.loss_plot.set_history(self.studio.history)
        self.metrics_plot.set_rows(self.studio.eval_history)
        self.canvas.clear()
        self._update_title()

    def _on_loss_batch(self, batch: dict) -> None:
        self.loss_plot.append_batch(batch)
        self._update_title()

    def _on_state(self, state: str) -> None:
        self._update_actions()
        self.settings_panel.set_running(state in BUSY_STATES)
        self._refresh_status()

    def _on_error(self, event) -> None:
        if event.restored_step is not None:
            # the trainer cut its history back to the restored step: the plots show that history
            self.loss_plot.set_history(self.studio.history)
            self.metrics_plot.set_rows(self.studio.eval_history)
            lower = self.trainer.config.lr / 10
            text = (f"The loss became non-finite at step {event.step}, so training stopped.\n\n"
                    f"The weights were rolled back to step {event.restored_step}, the last finite ones "
                    f"(the plots are cut back to it too).\n\nContinue from there with the learning rate "
                    f"lowered from {self.trainer.config.lr:.3g} to {lower:.3g}?")
            self.show_message("Training diverged", text, "question",
                              on_answer=lambda yes: self._continue_with_lr(lower) if yes else None)
        else:
            self.show_message("Training error", event.message, "error")
        self._update_actions()

    def _continue_with_lr(self, lr: float) -> None:
        if self.studio.continue_with_lr(lr):
            self.settings_panel.set_config(self.trainer.config)

    # --- enabled states, status, title ------------------------------------------------------------
    def _update_actions(self) -> None:
        state = self.state
        running, paused, stopping = state == "running", state == "paused", state == "stopping"
        can_train = self.studio.can_start  # while stopping, Start runs again once the loop has ended
        self.action_start.setEnabled(not running and can_train)
        self.action_pause.setEnabled(running)
        self.action_stop.setEnabled(running or paused)
        self.action_step.setEnabled(not running and not stopping and self.trainer is not None
                                    and self.studio.followed is None)
        self.action_reset.setEnabled(not running and not stopping and self.trainer is not None)
        self.action_toggle.setEnabled(running or can_train)
        self.action_start.setText("Resume" if paused else "Start")

    def _refresh_status(self) -> None:
        trainer = self.trainer
        if trainer is None:
            return
        labels = self.status_labels
        labels["state"].setText(self.run_follow.state_text() if self.studio.followed is not None
                                else STATE_TEXT.get(self.state, self.state))
        step = self.run_follow.newest_step() if self.studio.followed is not None else trainer.step_count
        labels["step"].setText(f"step {step:,}")
        labels["epoch"].setText(f"epoch {trainer.epoch:.2f} / {trainer.config.epochs}")
        rate = self.studio.samples_per_second
        shown = rate and (self.state == "running" or self.studio.followed is not None)
        speed = f"{rate:,.0f} samples/s" if shown else "— samples/s"
        labels["speed"].setText(speed)
        labels["device"].setText(f"device {trainer.device}")
        ds = self.dataset
        labels["dataset"].setText(f"{ds.name}: {len(ds.train_images):,} train · {len(ds.test_images):,} test · "
                                  f"{ds.num_labels} labels")
        labels["dataset"].setToolTip(ds.describe())

    def _update_title(self) -> None:
        name = Path(self.checkpoint_path).name if self.checkpoint_path else "untitled"
        if self.studio.followed is not None:
            name = f"following {self.studio.followed}"
        title = f"{name}[*] — CLIP-VAE Studio"
        if title != self.windowTitle():
            self.setWindowTitle(title)
        if self.isWindowModified() != self.unsaved:
            self.setWindowModified(self.unsaved)

    # --- settings, preset, dataset ----------------------------------------------------------------------
    def _setting_edited(self, name: str, value) -> None:
        old = self.trainer.config
        try:
            old.with_values(**{name: value})
        except ValueError as exc:
            self.show_message("Invalid setting", explain_invalid(name, str(exc)), "warning")
            self.settings_panel.set_config(old)
            return
        if name in MODEL_FIELDS and not self.confirm_discard(f"Change {field_label(name)} (a fresh model)"):
            self.settings_panel.set_config(old)
            return
        try:
            how = self.studio.change_setting(name, value)  # the trainer's rules: core/studio.py
        except Exception as exc:  # e.g. a device that is not there
            self.show_message("Cannot apply setting", f"{field_label(name)}: {exc}", "error")
            self.settings_panel.set_config(old)
            return
        if how in ("live", "locked"):  # (a new trainer shows its own settings)
            self.settings_panel.set_config(self.trainer.config)
        self._update_actions()
        self._refresh_status()

    def _preset_combo_activated(self, _index: int) -> None:
        name = self.preset_combo.currentData()
        if name == self.preset_name:
            return
        if not self.confirm_discard(f"Switch to the {name} preset (a fresh model)"):
            self.preset_combo.setCurrentIndex(self.preset_combo.findData(self.preset_name))
            return
        self.set_preset(name)

    def set_preset(self, name: str) -> None:
        """Switch preset without asking (a fresh model); callers confirm first."""
        self.stop_and_wait()
        self.preset_name = name
        self.preset_combo.setCurrentIndex(self.preset_combo.findData(name))
        self.settings.setValue("training/preset", name)
        self.studio.use_preset(preset(name))
        self._say_fit_notes()

    def _fill_dataset_combo(self) -> None:
        combo = self.dataset_combo
        combo.blockSignals(True)
        combo.clear()
        for kind in BUILTIN_DATASETS:
            combo.addItem(DATASET_TITLES[kind], (kind, None))
        kind, path = self.dataset_source
        if kind in ("idx", "folder") and path:
            combo.addItem(f"{Path(path).name} ({DATASET_TITLES[kind]})", (kind, str(path)))
            combo.setItemData(combo.count() - 1, str(path), Qt.ItemDataRole.ToolTipRole)
        elif kind not in BUILTIN_DATASETS:  # a dataset handed to the window in code: named as it is
            combo.addItem(str(kind), (kind, path))
        combo.addItem("Open folder…", ("open", None))
        self._select_dataset_in_combo()
        combo.blockSignals(False)

    def _select_dataset_in_combo(self) -> None:
        combo = self.dataset_combo
        for i in range(combo.count()):
            data = combo.itemData(i)
            if data and tuple(data) == (self.dataset_source[0], self.dataset_source[1]):
                combo.setCurrentIndex(i)
                return

    def _dataset_combo_activated(self, index: int) -> None:
        kind, path = self.dataset_combo.itemData(index)
        self._select_dataset_in_combo()  # show the current one until the new one has loaded
        if kind == "open":
            self.open_dataset_dialog()
        elif (kind, path) != tuple(self.dataset_source):
            self.load_dataset_async(kind, path)

    def open_dataset_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open dataset folder (IDX files or one sub-folder per class)",
                                                  str(self.settings.value("paths/dataset", str(Path.home()))))
        if folder:
            self.settings.setValue("paths/dataset", folder)
            self.load_dataset_async(detect_folder_kind(folder), folder)

    def load_dataset_async(self, kind: str, path=None, confirm: bool = True) -> DatasetLoad | None:
        """Load a dataset off the GUI thread; on success a fresh model trains on it."""
        # Training goes on while the set loads: if loading fails, nothing of the current run is lost
        # (set_dataset stops it once the new set is in).
        if confirm and not self.confirm_discard(f"Switch to {DATASET_TITLES.get(kind, kind)} (a fresh model)",
                                                stop=False):
            return None
        load = DatasetLoad(kind, path, self)
        load.finished.connect(self._dataset_loaded)
        self._dataset_load = load
        load.start(self.jobs, self)
        return load

    def _dataset_loaded(self, dataset, error) -> None:
        load, self._dataset_load = self._dataset_load, None
        kind, path = (load.kind, load.path) if load is not None else (getattr(dataset, "name", "folder"), None)
        if error is not None:
            self.show_message("Could not open the dataset", dataset_error_text(kind, error), "error")
            return
        self.set_dataset(dataset, (kind, path))

    def set_dataset(self, dataset, source=None) -> None:
        """Train on `dataset` from now on (a fresh model with the current settings)."""
        self.stop_and_wait()
        self.canvas.set_dataset(dataset)
        self.studio.set_dataset(dataset, source, self.settings_panel.config())
        self._say_fit_notes()
        if dataset.warnings:
            self.show_message("Dataset warnings", "\n".join(dataset.warnings), "warning")

    def _say_fit_notes(self) -> None:
        """What the fresh model's settings changed for this data (the Settings dock shows the values)."""
        if self.studio.fit_notes:
            self.statusBar().showMessage("For this data: " + "; ".join(self.studio.fit_notes), 15000)

    def _on_dataset(self, _dataset) -> None:
        self.settings.setValue("data/kind", self.dataset_source[0])
        self.settings.setValue("data/path", self.dataset_source[1] or "")
        self._fill_dataset_combo()

    # --- theme, layout persistence, closing ----------------------------------------------------------------
    def set_theme(self, theme: str) -> None:
        style.apply_theme(QApplication.instance(), theme)
        self.settings.setValue("view/theme", theme)
        if theme in self.theme_actions:
            self.theme_actions[theme].setChecked(True)
        self._apply_theme_to_views()

    def _apply_theme_to_views(self) -> None:
        color = style.text_color()
        for action in self.findChildren(QAction):
            name = action.property("iconName")
            if name:
                action.setIcon(icon(name, color))
        self.loss_plot.apply_theme()
        self.metrics_plot.apply_theme()
        self.canvas.apply_theme()

    def _reload_last_dataset(self) -> None:
        kind, path = str(self.settings.value("data/kind", "mnist5k")), str(self.settings.value("data/path", "")) or None
        if (kind, path) != tuple(self.dataset_source) and kind in DATASET_TITLES and not self._explicit_dataset:
            # the last dataset: loaded after the window is up, so start-up stays fast
            QTimer.singleShot(0, lambda: self.load_dataset_async(kind, path, confirm=False))

    def closeEvent(self, event) -> None:
        self.save_layout()
        self.jobs.cancel_all()
        self.worker.shutdown(1000)
        self.loss_plot.timer.stop()
        self.run_follow.timer.stop()
        self._status_timer.stop()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Stop training and join the training thread (also done on close)."""
        self.worker.shutdown(1000)
