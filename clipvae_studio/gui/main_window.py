"""The studio's main window: the training toolbar, the latent map in the middle, settings on the
left, live loss and metrics plots below, and a status bar. The window holds the current dataset,
trainer and inference model; the explorer and recovery modules attach to it (install_*)."""
from __future__ import annotations

import sys
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QByteArray, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import (QApplication, QComboBox, QDockWidget, QFileDialog, QLabel, QMainWindow,
                               QMessageBox, QSizePolicy, QToolBar, QWidget)

from ..core.config import MODEL_FIELDS, PRESETS, TrainConfig, preset
from ..core.paths import studio_home
from . import style
from .dataset_loader import DATASET_TITLES, DatasetLoad, detect_folder_kind
from .file_actions import FileActions
from .icons import app_icon, icon
from .latent_canvas import LatentCanvas
from .loss_plot import LossPlot
from .metrics_plot import MetricsPlot
from .settings_panel import LIVE_FIELDS, SettingsPanel
from .training_worker import TrainingWorker

if TYPE_CHECKING:  # torch-using core modules are imported where used: the window shows before torch loads
    from ..core.trainer import Trainer

BUILTIN_DATASETS = ("mnist5k", "mnist", "fashion-mnist", "kmnist")
STATE_TEXT = {"idle": "Ready", "running": "Training", "paused": "Paused", "stopped": "Stopped",
              "finished": "Finished", "error": "Stopped (error)"}


def settings_file() -> Path:
    return studio_home() / "studio.ini"


_GUI_THREAD_GC = []  # pyqtgraph's GarbageCollector, once per process


def collect_garbage_in_gui_thread() -> None:
    """Python's cycle collector runs in whichever thread happens to allocate, which while training
    is mostly the training thread; a Qt object freed there is destroyed in the wrong thread (Qt
    warned "Timers cannot be started from another thread" in ~1 of 20 runs of the click-storm test,
    and it can crash). pyqtgraph's GarbageCollector turns automatic collection off and collects on
    a timer of the GUI thread instead, generation by generation with Python's own thresholds."""
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


class MainWindow(FileActions, QMainWindow):
    inferenceModelChanged = Signal(object)  # a new CPU eval CLIPVAE each time weights are published
    datasetChanged = Signal(object)  # the new ImageDataset
    trainerChanged = Signal(object)  # a new core Trainer (reset, new model, checkpoint, dataset)
    snapshotReceived = Signal(object)  # each LatentSnapshot, after the canvas has drawn it
    stateChanged = Signal(str)  # trainer state: idle, running, paused, stopped, finished, error
    checkpointSaved = Signal(str)

    def __init__(self, dataset=None, config: TrainConfig | None = None, parent=None, *, defer_model: bool = False):
        """With defer_model the window is built without torch (importing it is most of a start) and
        load_model() must be called, ideally once the window is on screen (load_model_when_shown):
        the person sees the whole window at once and it comes alive a moment later."""
        super().__init__(parent)
        self.setObjectName("MainWindow")
        tune_process_for_training()
        collect_garbage_in_gui_thread()
        self.settings = QSettings(str(settings_file()), QSettings.Format.IniFormat)
        app = QApplication.instance()
        if app is not None and app.property("clipvaeTheme") is None:
            style.apply_theme(app, str(self.settings.value("view/theme", "light")))
        self.setWindowIcon(app_icon())
        self.messages: list[tuple[str, str, str]] = []  # (kind, title, text), newest last
        self.state = "idle"
        self.checkpoint_path: str | None = None
        self.inference_model = None
        self.trainer: Trainer | None = None
        self._saved_step = 0
        self._rate_window: deque = deque()
        self._samples_per_second = 0.0
        self._dataset_load: DatasetLoad | None = None

        saved_preset = str(self.settings.value("training/preset", "studio"))
        self.preset_name = saved_preset if saved_preset in PRESETS else "studio"
        self._explicit_dataset = dataset is not None  # then the saved last dataset is not reloaded
        self.dataset = dataset  # the bundled set is loaded by load_model when none is given
        self.dataset_source = ("mnist5k", None) if dataset is None else (dataset.name, None)
        config = config or preset(self.preset_name)
        self._first_config = config

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

        self.worker = TrainingWorker()
        self.worker.lossBatch.connect(self._on_loss_batch)
        self.worker.evaluated.connect(self._on_evaluated)
        self.worker.snapshotReady.connect(self._on_snapshot)
        self.worker.weightsReady.connect(self._on_weights)
        self.worker.stateChanged.connect(self._on_state)
        self.worker.errorOccurred.connect(self._on_error)
        self.worker.runFinished.connect(self._on_run_finished)

        self._build_actions()
        self._build_toolbar()
        self._build_menus()
        self._build_status_bar()
        self.resize(1360, 860)
        self._apply_theme_to_views()

        from .explorer import install_explorer

        install_explorer(self)
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
        from ..core.trainer import Trainer
        from .explorer import use_one_torch_thread_here
        from .recovery import install_recovery

        reserve_cores(1)  # training threads leave one core to this window's event loop
        if self.dataset is None:
            self.dataset = load_dataset("mnist5k")
        self.canvas.set_dataset(self.dataset)
        self._install_trainer(Trainer(self._first_config, self.dataset, publish_weights=True))
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
            self.settings_panel.set_running(self.state in ("running", "paused"))
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

    def _action(self, name: str, text: str, slot, icon_name: str | None = None, shortcut=None,
                tip: str | None = None) -> QAction:
        action = QAction(text, self)
        action.setObjectName(name)
        if icon_name:
            action.setIcon(icon(icon_name, style.text_color()))
            action.setProperty("iconName", icon_name)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
        if tip:
            shown = f"{tip} ({action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)})" \
                if shortcut else tip
            action.setToolTip(shown)
            action.setStatusTip(tip)
        action.triggered.connect(slot)
        self.addAction(action)
        return action

    def _build_actions(self) -> None:
        self.action_start = self._action("actionStart", "Start", self.start_training, "start", "F5",
                                         "Start or resume training")
        self.action_pause = self._action("actionPause", "Pause", self.pause_training, "pause", "F6",
                                         "Pause training")
        self.action_stop = self._action("actionStop", "Stop", self.stop_training, "stop", "Shift+F5",
                                        "Stop training (Start continues from here)")
        self.action_step = self._action("actionStep", "Step", self.step_training, "step", "F10",
                                        "One optimiser step")
        self.action_reset = self._action("actionReset", "Reset", self.reset_model, "reset", "Ctrl+Shift+R",
                                         "Fresh weights for the current settings")
        self.action_toggle = self._action("actionToggleTraining", "Start / pause", self.toggle_training,
                                          shortcut="Space", tip="Start or pause training")
        self.action_toggle.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        self.action_open = self._action("actionOpenCheckpoint", "Open checkpoint…", self.open_checkpoint_dialog,
                                        "open", QKeySequence.StandardKey.Open, "Open a checkpoint")
        self.action_save = self._action("actionSaveCheckpoint", "Save checkpoint", self.save_checkpoint,
                                        "save", QKeySequence.StandardKey.Save, "Save the model and its training state")
        self.action_save_as = self._action("actionSaveCheckpointAs", "Save checkpoint as…",
                                           self.save_checkpoint_as, shortcut=QKeySequence.StandardKey.SaveAs)
        self.action_open_dataset = self._action("actionOpenDataset", "Open dataset folder…",
                                                self.open_dataset_dialog, "dataset", "Ctrl+D",
                                                "Open a folder of IDX files or of class sub-folders")
        self.action_export_csv = self._action("actionExportLossCsv", "Export loss history (CSV)…",
                                              self.export_loss_csv_dialog, "export")
        self.action_quit = self._action("actionQuit", "Quit", self.close, shortcut=QKeySequence.StandardKey.Quit)

    def _build_toolbar(self) -> None:
        bar = QToolBar("Training", self)
        bar.setObjectName("trainingToolbar")
        bar.setMovable(False)
        bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        for action in (self.action_start, self.action_pause, self.action_stop, self.action_step):
            bar.addAction(action)
        bar.addSeparator()
        bar.addAction(self.action_reset)
        bar.addSeparator()
        self.dataset_combo = QComboBox()
        self.dataset_combo.setObjectName("datasetCombo")
        self.dataset_combo.setToolTip("Training data (changing it starts a fresh model)")
        self.dataset_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self._fill_dataset_combo()
        self.dataset_combo.activated.connect(self._dataset_combo_activated)
        self.preset_combo = QComboBox()
        self.preset_combo.setObjectName("presetCombo")
        self.preset_combo.setToolTip("studio: fixed and tuned; reference: the published settings, defects included")
        for name in PRESETS:
            self.preset_combo.addItem(name, name)
        self.preset_combo.setCurrentIndex(self.preset_combo.findData(self.preset_name))
        self.preset_combo.activated.connect(self._preset_combo_activated)
        bar.addWidget(QLabel("Dataset"))
        bar.addWidget(self.dataset_combo)
        bar.addWidget(QLabel("Preset"))
        bar.addWidget(self.preset_combo)
        spacer = QWidget()
        spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        bar.addWidget(spacer)
        bar.addAction(self.action_open)
        bar.addAction(self.action_save)
        self.training_toolbar = bar
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, bar)

    def _build_menus(self) -> None:
        menu = self.menuBar()
        file_menu = menu.addMenu("&File")
        file_menu.addAction(self.action_open)
        self.recent_menu = file_menu.addMenu("Open recent")
        self.recent_menu.setObjectName("recentMenu")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        file_menu.addAction(self.action_save)
        file_menu.addAction(self.action_save_as)
        file_menu.addSeparator()
        file_menu.addAction(self.action_open_dataset)
        file_menu.addSeparator()
        file_menu.addAction(self.action_export_csv)
        export_menu = file_menu.addMenu("Export plot as PNG")
        for title, widget_name in (("Loss plot…", "loss"), ("Metrics plot…", "metrics"), ("Latent map…", "canvas")):
            action = export_menu.addAction(title)
            action.setObjectName(f"actionExportPng_{widget_name}")
            action.triggered.connect(lambda _=False, w=widget_name: self.export_png_dialog(w))
        file_menu.addSeparator()
        file_menu.addAction(self.action_quit)

        train_menu = menu.addMenu("&Training")
        for action in (self.action_toggle, self.action_start, self.action_pause, self.action_stop,
                       self.action_step, self.action_reset):
            train_menu.addAction(action)

        self.view_menu = menu.addMenu("&View")
        self.view_menu.setObjectName("viewMenu")
        for dock in (self.settings_dock, self.loss_dock, self.metrics_dock):
            self.view_menu.addAction(dock.toggleViewAction())
        self.view_menu.addSeparator()
        theme_group = QActionGroup(self)
        self.theme_actions = {}
        for theme in style.THEMES:
            action = self.view_menu.addAction(f"{theme.capitalize()} theme")
            action.setObjectName(f"actionTheme_{theme}")
            action.setCheckable(True)
            action.setChecked(theme == style.current_theme())
            action.triggered.connect(lambda _=False, t=theme: self.set_theme(t))
            theme_group.addAction(action)
            self.theme_actions[theme] = action

        help_menu = menu.addMenu("&Help")
        help_menu.addAction("Keyboard shortcuts", self._show_shortcuts)
        help_menu.addAction("About CLIP-VAE Studio", self._show_about)

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        bar.setObjectName("statusBar")
        self.status_labels = {}
        for key in ("state", "step", "epoch", "speed", "device", "dataset"):
            label = QLabel()
            label.setObjectName(f"status{key.capitalize()}")
            bar.addPermanentWidget(label, 1 if key == "dataset" else 0)
            self.status_labels[key] = label
        self.status_labels["dataset"].setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self._status_timer = QTimer(self)
        self._status_timer.setInterval(250)
        self._status_timer.timeout.connect(self._refresh_status)
        self._status_timer.start()

    # --- trainer lifecycle ----------------------------------------------------------------
    def _install_trainer(self, trainer: Trainer, *, saved: bool = True) -> None:
        """Make `trainer` current: worker, plots, canvas and settings follow it."""
        self.trainer = trainer
        self.worker.set_trainer(trainer)
        self._saved_step = trainer.step_count if saved else -1
        self.settings_panel.set_config(trainer.config)
        self.loss_plot.set_history(trainer.history)
        self.metrics_plot.set_rows(trainer.eval_history)
        self.canvas.clear()
        self._rate_window.clear()
        self._samples_per_second = 0.0
        from ..core.explore import inference_copy

        self._set_inference_model(inference_copy(trainer.model))
        self._on_snapshot(trainer.latent_snapshot(), self.worker.generation)
        self._on_state(trainer.state, self.worker.generation)
        self.trainerChanged.emit(trainer)
        self._update_title()

    def _fresh_trainer(self, config: TrainConfig) -> None:
        from ..core.trainer import Trainer

        self._install_trainer(Trainer(config, self.dataset, publish_weights=True))
        self.checkpoint_path = None
        self._update_title()

    def _rebuild_keeping_weights(self, config: TrainConfig) -> None:
        """A new trainer for settings the old one fixed at construction (batch size, seed, ...),
        continuing from the same weights, optimiser state, step and history."""
        from ..core.trainer import Trainer

        old = self.trainer
        payload = {"optimizer": old.optimizer.state_dict(), "step": old.step_count,
                   "history": {k: list(v) for k, v in old.history.items()},
                   "eval_history": list(old.eval_history), "train_seconds": old.train_seconds}
        trainer = Trainer(config, self.dataset, model=old.model.cpu(), publish_weights=True)
        trainer.restore(payload)
        for group in trainer.optimizer.param_groups:
            group["weight_decay"] = config.weight_decay
        saved = self._saved_step == old.step_count
        self._install_trainer(trainer, saved=saved)

    @property
    def unsaved(self) -> bool:
        return self.trainer is not None and self.trainer.step_count > 0 and self.trainer.step_count != self._saved_step

    def _confirm_discard(self, what: str) -> bool:
        """Ask before throwing the current model away (training or unsaved); stop training if yes."""
        busy = self.worker.busy
        if not busy and not self.unsaved:
            return True
        parts = []
        if busy:
            parts.append("Training is running and will stop.")
        if self.unsaved:
            parts.append(f"The current model ({self.trainer.step_count} steps) is not saved.")
        if not self.show_message(what, " ".join(parts) + f"\n\n{what}?", "question"):
            return False
        self._stop_and_wait()
        return True

    def _stop_and_wait(self) -> None:
        if self.worker.busy and not self.worker.stop_and_wait(5.0):
            self.show_message("Training did not stop", "The training thread did not stop within 5 s.", "warning")

    # --- training control -------------------------------------------------------------------
    def start_training(self) -> None:
        if self.trainer.step_count >= self.trainer.total_steps and not self.worker.busy:
            self.show_message("Planned epochs done",
                              f"The run has reached its {self.trainer.config.epochs} planned epochs. "
                              "Raise 'epochs' in the settings to train further.", "info")
            return
        self.worker.start()

    def pause_training(self) -> None:
        self.worker.pause()

    def stop_training(self) -> None:
        self.worker.stop()

    def step_training(self) -> None:
        self.worker.step()

    def toggle_training(self) -> None:
        if self.state == "running":
            self.pause_training()
        elif self.action_start.isEnabled():
            self.start_training()

    def reset_model(self) -> None:
        if not self._confirm_discard("Reset to fresh weights"):
            return
        self._fresh_trainer(self.settings_panel.config())

    # --- worker signals (GUI thread) -----------------------------------------------------------
    def _current(self, generation: int) -> bool:
        return generation == self.worker.generation

    def _on_loss_batch(self, batch: dict, generation: int) -> None:
        if not self._current(generation):
            return
        self.loss_plot.append_batch(batch)
        now = time.monotonic()
        self._rate_window.append((now, int(batch["step"][-1])))
        while len(self._rate_window) > 2 and now - self._rate_window[0][0] > 2.0:
            self._rate_window.popleft()
        (t0, s0), (t1, s1) = self._rate_window[0], self._rate_window[-1]
        if t1 > t0:
            self._samples_per_second = (s1 - s0) * self.trainer.config.batch_size / (t1 - t0)
        self._update_title()

    def _on_evaluated(self, metrics: dict, generation: int) -> None:
        if self._current(generation):
            self.metrics_plot.add_metrics(metrics)

    def _on_snapshot(self, snapshot, generation: int) -> None:
        if self._current(generation):
            self.canvas.set_snapshot(snapshot)
            self.snapshotReceived.emit(snapshot)

    def _on_weights(self, model, generation: int) -> None:
        """A new CPU eval copy of a consistent weight snapshot (about once a second while
        training), built by the worker: decoding uses it, never the training model."""
        if self._current(generation):
            self._set_inference_model(model)

    def _set_inference_model(self, model) -> None:
        self.inference_model = model
        self.canvas.set_model(model)
        self.inferenceModelChanged.emit(model)

    def _on_state(self, state: str, generation: int) -> None:
        if not self._current(generation):
            return
        self.state = state
        if state != "running":
            self._rate_window.clear()
            self._samples_per_second = 0.0
        self._update_actions()
        self.settings_panel.set_running(state in ("running", "paused"))
        self._refresh_status()
        self.stateChanged.emit(state)

    def _on_run_finished(self, summary: dict, generation: int) -> None:
        if self._current(generation):
            self._update_actions()

    def _on_error(self, event, generation: int) -> None:
        if not self._current(generation):
            return
        if event.restored_step is not None:
            self.loss_plot.truncate_after(event.restored_step)
            self.metrics_plot.set_rows([r for r in self.metrics_plot.rows if r.get("step", 0) <= event.restored_step])
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
        if self.worker.busy:
            return
        config = self.trainer.config.with_values(lr=lr)
        self.trainer.config = config
        self.settings_panel.set_config(config)
        self.start_training()

    # --- enabled states, status, title ------------------------------------------------------------
    def _update_actions(self) -> None:
        state = self.state
        running, paused = state == "running", state == "paused"
        can_train = self.trainer is not None and (paused or self.trainer.step_count < self.trainer.total_steps)
        self.action_start.setEnabled(not running and can_train)
        self.action_pause.setEnabled(running)
        self.action_stop.setEnabled(running or paused)
        self.action_step.setEnabled(not running and self.trainer is not None)
        self.action_reset.setEnabled(not running and self.trainer is not None)
        self.action_toggle.setEnabled(running or can_train)
        self.action_start.setText("Resume" if paused else "Start")

    def _refresh_status(self) -> None:
        trainer = self.trainer
        if trainer is None:
            return
        labels = self.status_labels
        labels["state"].setText(STATE_TEXT.get(self.state, self.state))
        labels["step"].setText(f"step {trainer.step_count:,}")
        labels["epoch"].setText(f"epoch {trainer.epoch:.2f} / {trainer.config.epochs}")
        speed = f"{self._samples_per_second:,.0f} samples/s" if self.state == "running" and self._samples_per_second \
            else "— samples/s"
        labels["speed"].setText(speed)
        labels["device"].setText(f"device {trainer.device}")
        ds = self.dataset
        labels["dataset"].setText(f"{ds.name}: {len(ds.train_images):,} train · {len(ds.test_images):,} test · "
                                  f"{ds.num_labels} labels")
        labels["dataset"].setToolTip(ds.describe())

    def _update_title(self) -> None:
        name = Path(self.checkpoint_path).name if self.checkpoint_path else "untitled"
        title = f"{name}[*] — CLIP-VAE Studio"
        if title != self.windowTitle():
            self.setWindowTitle(title)
        if self.isWindowModified() != self.unsaved:
            self.setWindowModified(self.unsaved)

    # --- settings, preset, dataset ----------------------------------------------------------------------
    def _setting_edited(self, name: str, value) -> None:
        old = self.trainer.config
        try:
            config = old.with_values(**{name: value})
        except ValueError as exc:
            self.show_message("Invalid setting", str(exc), "warning")
            self.settings_panel.set_config(old)
            return
        if name in MODEL_FIELDS:
            if not self._confirm_discard(f"Change {name} (a fresh model)"):
                self.settings_panel.set_config(old)
                return
            self._fresh_trainer(config)
        elif name in LIVE_FIELDS or not self.worker.busy:
            if name in LIVE_FIELDS:
                self.trainer.config = config  # the loop reads it afresh on its next step
                self.settings_panel.set_config(config)
            else:
                try:
                    self._rebuild_keeping_weights(config)
                except Exception as exc:  # e.g. a device that is not there
                    self.show_message("Cannot apply setting", f"{name}: {exc}", "error")
                    self.settings_panel.set_config(old)
                    return
        else:
            self.settings_panel.set_config(old)
        self._update_actions()
        self._refresh_status()

    def _preset_combo_activated(self, _index: int) -> None:
        name = self.preset_combo.currentData()
        if name == self.preset_name:
            return
        if not self._confirm_discard(f"Switch to the {name} preset (a fresh model)"):
            self.preset_combo.setCurrentIndex(self.preset_combo.findData(self.preset_name))
            return
        self.set_preset(name)

    def set_preset(self, name: str) -> None:
        """Switch preset without asking (a fresh model); callers confirm first."""
        self._stop_and_wait()
        self.preset_name = name
        self.preset_combo.setCurrentIndex(self.preset_combo.findData(name))
        self.settings.setValue("training/preset", name)
        self._fresh_trainer(preset(name))

    def _fill_dataset_combo(self) -> None:
        combo = self.dataset_combo
        combo.blockSignals(True)
        combo.clear()
        for kind in BUILTIN_DATASETS:
            combo.addItem(DATASET_TITLES[kind], (kind, None))
        kind, path = self.dataset_source
        if kind in ("idx", "folder") and path:
            combo.addItem(f"{Path(path).name} ({DATASET_TITLES[kind]})", (kind, str(path)))
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
        if confirm and not self._confirm_discard(f"Switch to {DATASET_TITLES.get(kind, kind)} (a fresh model)"):
            return None
        self._stop_and_wait()
        load = DatasetLoad(kind, path, self)
        load.finished.connect(self._dataset_loaded)  # a bound method: queued to the GUI thread
        self._dataset_load = load
        load.start(self)
        return load

    def _dataset_loaded(self, dataset, error) -> None:
        load, self._dataset_load = self._dataset_load, None
        kind, path = (load.kind, load.path) if load is not None else (getattr(dataset, "name", "folder"), None)
        if error is not None:
            self.show_message("Could not open the dataset", error, "error")
            return
        self.set_dataset(dataset, (kind, path))

    def set_dataset(self, dataset, source=None) -> None:
        """Train on `dataset` from now on (a fresh model with the current settings)."""
        self._stop_and_wait()
        self.dataset = dataset
        self.dataset_source = tuple(source) if source else (dataset.name, None)
        self.settings.setValue("data/kind", self.dataset_source[0])
        self.settings.setValue("data/path", self.dataset_source[1] or "")
        self._fill_dataset_combo()
        self.canvas.set_dataset(dataset)
        self._fresh_trainer(self.settings_panel.config())
        self.datasetChanged.emit(dataset)
        if dataset.warnings:
            self.show_message("Dataset warnings", "\n".join(dataset.warnings), "warning")

    # --- messages ------------------------------------------------------------------------------------------
    def show_message(self, title: str, text: str, kind: str = "info", on_answer=None):
        """The one way the window talks to the user (tests replace it).

        kind: "info", "warning", "error" or "question". Info, warning and error boxes are
        non-modal. A question without `on_answer` is modal and returns True for Yes; with
        `on_answer` it is non-modal and calls on_answer(bool) when answered.
        """
        self.messages.append((kind, title, text))
        icons = {"info": QMessageBox.Icon.Information, "warning": QMessageBox.Icon.Warning,
                 "error": QMessageBox.Icon.Critical, "question": QMessageBox.Icon.Question}
        box = QMessageBox(icons.get(kind, QMessageBox.Icon.Information), title, text, parent=self)
        box.setObjectName("messageBox")
        if kind == "question":
            box.setStandardButtons(QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No)
            box.setDefaultButton(QMessageBox.StandardButton.Yes)
            if on_answer is None:
                return box.exec() == QMessageBox.StandardButton.Yes
            box.finished.connect(lambda result: on_answer(result == QMessageBox.StandardButton.Yes))
        box.setWindowModality(Qt.WindowModality.NonModal)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.show()
        return box

    def _show_shortcuts(self) -> None:
        rows = [("Space", "start / pause"), ("F5", "start or resume"), ("F6", "pause"), ("Shift+F5", "stop"),
                ("F10", "one step"), ("Ctrl+Shift+R", "reset to fresh weights"), ("Ctrl+O / Ctrl+S", "open / save"),
                ("Ctrl+D", "open a dataset folder"), ("left click / drag", "pick a point on the latent map"),
                ("right or middle drag", "pan the map"), ("wheel", "zoom")]
        self.show_message("Keyboard shortcuts", "\n".join(f"{k:<22}{v}" for k, v in rows), "info")

    def _show_about(self) -> None:
        self.show_message("About CLIP-VAE Studio", "Train a CLIP-VAE, watch it learn, and explore its latent "
                          "space by hand.", "info")

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

    def _restore_layout(self) -> None:
        geometry = self.settings.value("window/geometry")
        if isinstance(geometry, QByteArray) and not geometry.isEmpty():
            self.restoreGeometry(geometry)
        state = self.settings.value("window/state")
        self._layout_restored = isinstance(state, QByteArray) and not state.isEmpty() and self.restoreState(state)

    def _reload_last_dataset(self) -> None:
        kind, path = str(self.settings.value("data/kind", "mnist5k")), str(self.settings.value("data/path", "")) or None
        if (kind, path) != tuple(self.dataset_source) and kind in DATASET_TITLES and not self._explicit_dataset:
            # the last dataset: loaded after the window is up, so start-up stays fast
            QTimer.singleShot(0, lambda: self.load_dataset_async(kind, path, confirm=False))

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not getattr(self, "_layout_restored", True) and not getattr(self, "_default_sizes_applied", False):
            self._default_sizes_applied = True
            QTimer.singleShot(0, self._apply_default_dock_sizes)

    def _apply_default_dock_sizes(self) -> None:
        """First start (no saved layout): room for the plots under the map, settings at the left."""
        self.resizeDocks([self.settings_dock], [300], Qt.Orientation.Horizontal)
        # one dock per orientation: the two plots sit side by side in one row of the bottom area
        self.resizeDocks([self.loss_dock], [max(240, self.height() // 3)], Qt.Orientation.Vertical)
        self.resizeDocks([self.loss_dock, self.metrics_dock], [self.width() // 4, self.width() // 6],
                         Qt.Orientation.Horizontal)

    def save_layout(self) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.settings.setValue("training/preset", self.preset_name)
        self.settings.sync()

    def closeEvent(self, event) -> None:
        self.save_layout()
        self.worker.shutdown(1000)
        self.loss_plot.timer.stop()
        self._status_timer.stop()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Stop training and join the worker thread (also done on close)."""
        self.worker.shutdown(1000)
