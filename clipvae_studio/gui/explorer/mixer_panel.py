"""The "Steer & mix" dock, second half: a weight slider per label in the blend; the blend of label
latents (weights @ label latents, core/generation.blend_latents) is decoded live into the Point dock.

Up to SLIDERS_FOR_ALL labels every label has its slider. With more (40, 200), a slider per label
would fill the screen: a search box filters a list of the labels, and clicking one adds it to the
blend (PICK_MAX at most), where it gets its slider and a remove button.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (QCheckBox, QGridLayout, QHBoxLayout, QLabel, QLineEdit, QListWidget,
                               QListWidgetItem, QPushButton, QSlider, QToolButton, QVBoxLayout, QWidget)

from ..palette import label_color, label_hex

SLIDERS_FOR_ALL = 12  # up to this many labels, every label has a slider
PICK_MAX = 8  # labels in one blend when they are picked from the list
NAME_CHARS = 24  # longer names are elided in the slider captions (full name in the tooltip)


def _swatch(i: int) -> QIcon:
    pixmap = QPixmap(12, 12)
    pixmap.fill(QColor(label_color(i)))
    return QIcon(pixmap)


def _short(name: str) -> str:
    return name if len(name) <= NAME_CHARS else name[:NAME_CHARS - 9] + "…" + name[-8:]


class LabelMixer(QWidget):
    def __init__(self, explorer, parent=None):
        super().__init__(parent)
        self.setObjectName("labelMixer")
        self.explorer = explorer
        self.picked: list[int] = []  # the labels with a slider, in the order of their rows
        self.sliders: list[QSlider] = []
        self._names: list[str] = []
        self.value_labels: list[QLabel] = []
        self.grid = QGridLayout()
        self.grid.setHorizontalSpacing(6)
        self.grid.setVerticalSpacing(1)
        self.search = QLineEdit()
        self.search.setObjectName("mixerSearch")
        self.search.setPlaceholderText("Search labels to blend…")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self._filter)
        self.label_list = QListWidget()
        self.label_list.setObjectName("mixerList")
        self.label_list.setToolTip("Click a label to add it to the blend")
        self.label_list.setMaximumHeight(140)
        self.label_list.itemClicked.connect(lambda item: self.pick(item.data(Qt.ItemDataRole.UserRole)))
        self.pick_note = QLabel()
        self.pick_note.setObjectName("mixerPickNote")
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
        layout.addWidget(self.search)
        layout.addWidget(self.label_list)
        layout.addWidget(self.pick_note)
        layout.addLayout(self.grid)
        layout.addLayout(row)
        layout.addStretch(1)
        self._set_searchable(False)

    @property
    def searchable(self) -> bool:
        """True when labels are picked from the search list (too many for a slider each)."""
        return len(self._names) > SLIDERS_FOR_ALL

    def _set_searchable(self, on: bool) -> None:
        for widget in (self.search, self.label_list, self.pick_note):
            widget.setVisible(on)

    def set_label_names(self, names) -> None:
        names = list(names)
        if names == self._names:
            return
        self._names = names
        self.label_list.clear()
        for i, name in enumerate(names):
            item = QListWidgetItem(_swatch(i), name)
            item.setData(Qt.ItemDataRole.UserRole, i)
            item.setToolTip(name)
            self.label_list.addItem(item)
        self.search.clear()
        self._set_searchable(self.searchable)
        self._rebuild([] if self.searchable else list(range(len(names))))

    # --- the rows of sliders ---------------------------------------------------------------------
    def _rebuild(self, picked: list[int], weights: dict[int, int] | None = None) -> None:
        while self.grid.count():
            widget = self.grid.takeAt(0).widget()
            if widget is not None:
                # hidden now: a widget added and taken out before the layout ran would otherwise be
                # shown (Qt queues that show) at its default size, over the whole mixer
                widget.hide()
                widget.deleteLater()
        self.picked, self.sliders, self.value_labels = list(picked), [], []
        for row, i in enumerate(self.picked):
            name = self._names[i]
            caption = QLabel(f"<span style='color:{label_hex(i)}'>■</span> {_short(name)}")
            caption.setToolTip(name)
            slider = QSlider(Qt.Orientation.Horizontal)
            slider.setObjectName(f"mixerSlider{i}")
            slider.setRange(0, 100)
            slider.setValue((weights or {}).get(i, 0))
            slider.setToolTip(f"Weight of label {name}'s latent in the blend")
            slider.valueChanged.connect(lambda _v: self.apply())
            value = QLabel("0")
            value.setMinimumWidth(28)
            value.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.grid.addWidget(caption, row, 0)
            self.grid.addWidget(slider, row, 1)
            self.grid.addWidget(value, row, 2)
            if self.searchable:
                remove = QToolButton()
                remove.setObjectName(f"mixerRemove{i}")
                remove.setText("×")
                remove.setToolTip(f"Take {name} out of the blend")
                remove.clicked.connect(lambda _checked=False, label=i: self.unpick(label))
                self.grid.addWidget(remove, row, 3)
            self.sliders.append(slider)
            self.value_labels.append(value)
        full = self.searchable and len(self.picked) >= PICK_MAX
        self.label_list.setEnabled(not full)
        self.pick_note.setText(f"At most {PICK_MAX} labels in a blend: remove one to add another." if full else
                               f"{len(self.picked)} of {len(self._names)} labels in the blend")

    def _current_weights(self) -> dict[int, int]:
        return {i: s.value() for i, s in zip(self.picked, self.sliders)}

    def pick(self, label: int) -> bool:
        """Add `label` to the blend at full weight (searchable mode); False if it is in or the blend is full."""
        label = int(label)
        if label in self.picked or len(self.picked) >= PICK_MAX or not 0 <= label < len(self._names):
            return False
        weights = self._current_weights() | {label: 100}
        self._rebuild(self.picked + [label], weights)
        self.apply()
        return True

    def unpick(self, label: int) -> None:
        weights = self._current_weights()
        self._rebuild([i for i in self.picked if i != label], weights)
        self.apply()

    def _filter(self, text: str) -> None:
        needle = text.strip().casefold()
        for row in range(self.label_list.count()):
            item = self.label_list.item(row)
            item.setHidden(bool(needle) and needle not in item.text().casefold())

    def visible_labels(self) -> list[int]:
        """The labels the search list shows now (those matching the search text)."""
        return [self.label_list.item(r).data(Qt.ItemDataRole.UserRole)
                for r in range(self.label_list.count()) if not self.label_list.item(r).isHidden()]

    # --- the blend ---------------------------------------------------------------------------------
    def weights(self) -> np.ndarray:
        w = np.zeros(len(self._names), dtype=np.float32)
        for i, slider in zip(self.picked, self.sliders):
            w[i] = slider.value() / 100.0
        if self.normalise_box.isChecked() and w.sum() > 0:
            w = w / w.sum()
        return w

    def reset(self) -> None:
        if self.searchable:
            self._rebuild([])
            return
        for slider in self.sliders:
            slider.blockSignals(True)
            slider.setValue(0)
            slider.blockSignals(False)
        for value in self.value_labels:
            value.setText("0")

    def apply(self) -> None:
        w = self.weights()
        for value, i in zip(self.value_labels, self.picked):
            value.setText(f"{w[i]:.2f}")
        model = self.explorer.model
        if model is None or not w.any() or len(w) != model.num_labels:
            return
        from ...core.explore import decode_point
        from ...core.generation import mix_labels

        z = mix_labels(model, w)
        parts = [f"{self.explorer.label_names[i]} {w[i]:.2f}" for i in np.flatnonzero(w)]
        self.explorer.show_latent(z, decode_point(model, z), "label mix: " + ", ".join(parts))
