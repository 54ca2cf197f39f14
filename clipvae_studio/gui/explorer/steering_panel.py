"""The "Steer & mix" dock, first half: pick a label, press Steer, and the point climbs that
label's CLIP score by gradient ascent (core/steering.py, run in the background). The path is
drawn on the canvas and replayed in the Point dock so the image visibly morphs into the label."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import QComboBox, QFormLayout, QHBoxLayout, QPushButton, QSpinBox, QWidget

from ..palette import label_color, label_pen

REPLAY_MS = 45  # one path step per frame of the replay


class SteeringPanel(QWidget):
    steered = Signal(object)  # core.steering.SteeringPath, once its replay has finished

    def __init__(self, explorer, parent=None):
        super().__init__(parent)
        self.explorer = explorer
        self.path = None
        self.decoded = []
        self.job = None
        self._frame = 0
        self.label_combo = QComboBox()
        self.label_combo.setObjectName("steerLabelCombo")
        self.objective_combo = QComboBox()
        self.objective_combo.setObjectName("steerObjectiveCombo")
        self.objective_combo.addItem("score of the decoded image", "reencoded")
        self.objective_combo.addItem("score of the latent point", "direct")
        self.objective_combo.setToolTip("What to climb: CLIP's score of the image decoded at z and encoded\n"
                                        "again (what the picture shows), or of z itself")
        self.steps_spin = QSpinBox()
        self.steps_spin.setObjectName("steerSteps")
        self.steps_spin.setRange(1, 300)
        self.steps_spin.setValue(40)
        self.steer_button = QPushButton("Steer")
        self.steer_button.setObjectName("steerButton")
        self.steer_button.setToolTip("Move the picked point uphill on the chosen label's CLIP score")
        self.steer_button.clicked.connect(self.start)
        self.clear_button = QPushButton("Clear path")
        self.clear_button.setObjectName("steerClear")
        self.clear_button.clicked.connect(self.clear_path)
        buttons = QHBoxLayout()
        buttons.addWidget(self.steer_button, 1)
        buttons.addWidget(self.clear_button)
        form = QFormLayout(self)
        form.setContentsMargins(6, 4, 6, 4)
        form.addRow("Toward label", self.label_combo)
        form.addRow("Climb", self.objective_combo)
        form.addRow("Steps", self.steps_spin)
        form.addRow(buttons)

        self.path_item = pg.PlotDataItem(symbol="o", symbolSize=7)
        self.path_item.setZValue(15)
        self.explorer.canvas.plot_item.addItem(self.path_item, ignoreBounds=True)
        self.explorer.canvas.projectionChanged.connect(self._reproject)
        self.replay = QTimer(self)
        self.replay.setInterval(REPLAY_MS)
        self.replay.timeout.connect(self._next_frame)

    def set_label_names(self, names) -> None:
        current = self.label_combo.currentIndex()
        self.label_combo.clear()
        for i, name in enumerate(names):
            self.label_combo.addItem(name, i)
        self.label_combo.setCurrentIndex(current if 0 <= current < len(names) else 0)

    def start(self) -> None:
        from ...core.explore import decode_points
        from ...core.steering import steer

        model = self.explorer.model
        if model is None or self.label_combo.count() == 0:
            return
        z0 = self.explorer.current_latent()
        label = int(self.label_combo.currentData())
        objective = self.objective_combo.currentData()
        steps = self.steps_spin.value()
        self.explorer.runner.cancel(self.job)
        self.replay.stop()
        self.requested_steps = steps
        self.steer_button.setEnabled(False)
        self.steer_button.setText("Steering…")

        def work(_should_stop, _progress):
            path = steer(model, z0, label, steps=steps, objective=objective)
            return path, decode_points(model, path.z)

        self.job = self.explorer.runner.submit(work, self._computed, self._failed)

    def clear_path(self) -> None:
        self.replay.stop()
        self.path = None
        self.path_item.setData(x=[], y=[])

    def _computed(self, result) -> None:
        self.job = None
        self.steer_button.setEnabled(True)
        self.steer_button.setText("Steer")
        self.path, self.decoded = result
        color = label_color(self.path.label)
        self.path_item.setPen(label_pen(self.path.label, 3.0))
        self.path_item.setSymbolBrush(pg.mkBrush(color))
        self.path_item.setSymbolPen(pg.mkPen("#202020", width=1))
        self._uv = self.explorer.canvas.projection.project(self.path.z)
        self._frame = 0
        self.path_item.setData(x=self._uv[:1, 0], y=self._uv[:1, 1])
        self.replay.start()
        self._next_frame()

    def _next_frame(self) -> None:
        path, i = self.path, self._frame
        if path is None or i >= len(path.z):
            self.replay.stop()
            if path is not None:
                self.steered.emit(path)
            return
        self.path_item.setData(x=self._uv[:i + 1, 0], y=self._uv[:i + 1, 1])
        name = self.label_combo.itemText(path.label)
        score = path.label_scores[i]
        last = len(path.z) - 1
        caption = f"steering toward {name}: step {i}/{last}, score {score:.0%}"
        if i == last and last < getattr(self, "requested_steps", last):
            # steer() ends early where no step raises the score any more (core/steering.py)
            caption += f": stopped before {self.requested_steps} steps, no step raises the score further"
        self.explorer.show_latent(path.z[i], self.decoded[i], caption, uv=self._uv[i])
        self._frame += 1

    def _reproject(self) -> None:
        """The map's plane moved (a new snapshot, another projection): redraw the path on it."""
        projection = self.explorer.canvas.projection
        if self.path is None or projection.lift(np.zeros((1, 2))).shape[1] != self.path.z.shape[1]:
            return
        self._uv = projection.project(self.path.z)
        shown = len(self.path.z) if not self.replay.isActive() else self._frame
        self.path_item.setData(x=self._uv[:shown, 0], y=self._uv[:shown, 1])

    def _failed(self, message: str) -> None:
        self.job = None
        self.steer_button.setEnabled(True)
        self.steer_button.setText("Steer")
        self.explorer.window.show_message("Steering failed", message.splitlines()[0], "warning")

    def stop(self) -> None:
        self.replay.stop()

    def cancel(self) -> None:
        """Drop a path still being computed (it climbs a model that is no longer current)."""
        if self.job is not None:
            self.explorer.runner.cancel(self.job)
            self.job = None
        self.replay.stop()
        self.steer_button.setEnabled(True)
        self.steer_button.setText("Steer")
