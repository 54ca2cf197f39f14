"""The "Steer & mix" dock, second half: one slider per label; the blend of label latents
(weights @ label latents, core/generation.blend_latents) is decoded live into the Point dock."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QGridLayout, QHBoxLayout, QLabel, QPushButton, QSlider, QVBoxLayout, QWidget

from ..palette import label_hex


class LabelMixer(QWidget):
    def __init__(self, explorer, parent=None):
        super().__init__(parent)
        self.setObjectName("labelMixer")
        self.explorer = explorer
        self.sliders: list[QSlider] = []
        self._names: list[str] = []
        self.value_labels: list[QLabel] = []
        self.grid = QGridLayout()
        self.grid.setHorizontalSpacing(6)
        self.grid.setVerticalSpacing(1)
        self.normalise_box = QCheckBox("Weights sum to 1")
        self.normalise_box.setObjectName("mixerNormalise")
        self.normalise_box.setChecked(True)
        self.normalise_box.setToolTip("Blend (weights divided by their sum) rather than add label latents")
        self.normalise_box.toggled.connect(lambda _on: self.apply())
        self.reset_button = QPushButton("Reset")
        self.reset_button.setObjectName("mixerReset")
        self.reset_button.clicked.connect(self.reset)
        row = QHBoxLayout()
        row.addWidget(self.normalise_box, 1)
        row.addWidget(self.reset_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 2, 6, 4)
        title = QLabel("<b>Label mixer</b>")
        layout.addWidget(title)
        layout.addLayout(self.grid)
        layout.addLayout(row)
        layout.addStretch(1)

    def set_label_names(self, names) -> None:
        names = list(names)
        if names == self._names:
            return
        self._names = names
        while self.grid.count():
            widget = self.grid.takeAt(0).widget()
            if widget is not None:
                widget.deleteLater()
        self.sliders, self.value_labels = [], []
        for i, name in enumerate(names):
            caption = QLabel(f"<span style='color:{label_hex(i)}'>■</span> {name}")
            slider = QSlider(Qt.Orientation.Horizontal)
            slider.setObjectName(f"mixerSlider{i}")
            slider.setRange(0, 100)
            slider.setToolTip(f"Weight of label {name}'s latent in the blend")
            slider.valueChanged.connect(lambda _v: self.apply())
            value = QLabel("0")
            value.setMinimumWidth(28)
            value.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.grid.addWidget(caption, i, 0)
            self.grid.addWidget(slider, i, 1)
            self.grid.addWidget(value, i, 2)
            self.sliders.append(slider)
            self.value_labels.append(value)

    def weights(self) -> np.ndarray:
        w = np.array([s.value() / 100.0 for s in self.sliders], dtype=np.float32)
        if self.normalise_box.isChecked() and w.sum() > 0:
            w = w / w.sum()
        return w

    def reset(self) -> None:
        for slider in self.sliders:
            slider.blockSignals(True)
            slider.setValue(0)
            slider.blockSignals(False)
        for value in self.value_labels:
            value.setText("0")

    def apply(self) -> None:
        w = self.weights()
        for value, weight in zip(self.value_labels, w):
            value.setText(f"{weight:.2f}")
        model = self.explorer.model
        if model is None or not w.any() or len(w) != model.num_labels:
            return
        from ...core.explore import decode_point
        from ...core.generation import mix_labels

        z = mix_labels(model, w)
        parts = [f"{self.explorer.label_names[i]} {w[i]:.2f}" for i in np.flatnonzero(w)]
        self.explorer.show_latent(z, decode_point(model, z), "label mix: " + ", ".join(parts))
