"""The main window's actions, toolbar, menus and status bar: what a person can click, and where.

Object names are stable (tests and automation find the widgets by them: actionStart, actionPause,
actionStop, actionStep, actionReset, actionOpenRun, datasetCombo, presetCombo, ...)."""
from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QComboBox, QLabel, QSizePolicy, QToolBar, QWidget

from ..core.config import PRESETS
from . import style
from .icons import icon

DATASET_COMBO_CHARS = 20  # "MNIST 5k (bundled)" whole; longer folder names are cut, their tooltip says all


class WindowActions:
    """Mixin of MainWindow: builds the actions and bars that call the window's slots."""

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
        self.action_open_run = self._action("actionOpenRun", "Open run…", self.open_run_dialog,
                                            tip="Follow a run folder that another process trains")
        self.action_compare_run = self._action("actionCompareRun", "Add run to compare…", self.compare_run_dialog,
                                               tip="Overlay another run folder's losses in the loss plot")
        self.action_record_runs = self._action(
            "actionRecordRuns", "Record training in run folders…", lambda on: self.run_follow.choose_recording(on),
            tip="Keep each training's losses, metrics and checkpoints in a run folder (Open run and TensorBoard read it)")
        self.action_record_runs.setCheckable(True)
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
        # a fixed width: a long folder name must not push Save checkpoint off the toolbar
        self.dataset_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.dataset_combo.setMinimumContentsLength(DATASET_COMBO_CHARS)
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
        file_menu.addAction(self.action_open_run)
        file_menu.addAction(self.action_compare_run)
        file_menu.addAction(self.action_record_runs)
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

