"""The "Gallery" dock (galleryView): samples from noise, a row per label from the label encoder,
the reference's 10x10 four-corner label blend, and the path between two picked points, each as
one torchvision make_grid picture that can be saved as PNG or copied."""
from __future__ import annotations

import os

import numpy as np
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QApplication, QComboBox, QDoubleSpinBox, QFileDialog, QGridLayout, QHBoxLayout, QLabel,
                               QPushButton, QSpinBox, QStackedWidget, QVBoxLayout, QWidget)

from .image_view import PixelImageView
from .images import to_qimage

NOISE_NOTE = "Decoded samples of the prior."
NOISE_NOTE_HEADS = (" Every decoder head draws each sample, and CLIP keeps the picture that best shows its "
                    "head's label.")
MODES = (("noise", "Noise z ~ N(0, I)"), ("labels", "A row per label"), ("corners", "Four-corner label blend"),
         ("interpolate", "Between two points"))


class GalleryView(QWidget):
    generated = Signal()

    def __init__(self, explorer, parent=None):
        super().__init__(parent)
        self.setObjectName("galleryView")
        self.explorer = explorer
        self.picture = None  # torch.Tensor  # C x H x W in [0, 1], what is shown
        self.seed = 0
        self.ends: list[np.ndarray | None] = [None, None]  # interpolation end points (latents)

        self.mode_combo = QComboBox()
        self.mode_combo.setObjectName("galleryMode")
        for key, text in MODES:
            self.mode_combo.addItem(text, key)
        self.mode_combo.currentIndexChanged.connect(self._mode_changed)
        self.count_spin = QSpinBox()
        self.count_spin.setObjectName("galleryCount")
        self.count_spin.setRange(2, 20)
        self.count_spin.setValue(10)
        self.count_spin.setToolTip("Images per row (and rows, for noise and the corner blend)")
        self.count_spin.valueChanged.connect(lambda _v: self.refresh())
        self.regenerate_button = QPushButton("New samples")
        self.regenerate_button.setObjectName("galleryRegenerate")
        self.regenerate_button.setToolTip("Draw new noise (noise and label rows)")
        self.regenerate_button.clicked.connect(self.regenerate)
        top = QHBoxLayout()
        top.addWidget(self.mode_combo, 1)
        top.addWidget(QLabel("per row"))
        top.addWidget(self.count_spin)
        top.addWidget(self.regenerate_button)

        # Options per mode, in a stack that follows the mode combo.
        self.options = QStackedWidget()
        self.noise_note = QLabel(NOISE_NOTE)  # the model's own variant: refresh
        self.noise_note.setObjectName("galleryNoiseNote")
        self.noise_note.setWordWrap(True)
        self.options.addWidget(self.noise_note)
        labels_page = QWidget()
        labels_row = QHBoxLayout(labels_page)
        labels_row.setContentsMargins(0, 0, 0, 0)
        self.temperature_spin = QDoubleSpinBox()
        self.temperature_spin.setObjectName("galleryTemperature")
        self.temperature_spin.setRange(0.0, 3.0)
        self.temperature_spin.setSingleStep(0.1)
        self.temperature_spin.setValue(1.0)
        self.temperature_spin.setToolTip("Spread of the label encoder's posterior samples (0 = its mean)")
        self.temperature_spin.valueChanged.connect(lambda _v: self.refresh())
        labels_row.addWidget(QLabel("Posterior samples, temperature"))
        labels_row.addWidget(self.temperature_spin)
        labels_row.addStretch(1)
        self.options.addWidget(labels_page)
        corners_page = QWidget()
        corners = QGridLayout(corners_page)
        corners.setContentsMargins(0, 0, 0, 0)
        self.corner_combos = []
        self.length_spin = QDoubleSpinBox()
        self.length_spin.setObjectName("galleryLength")
        self.length_spin.setRange(0.1, 10.0)
        self.length_spin.setSingleStep(0.5)
        self.length_spin.setValue(1.0)
        self.length_spin.setToolTip("Multiply the blended label latents by this. CLIP compares directions only,\n"
                                    "so label latents are often short; longer ones decode to sharper digits.")
        self.length_spin.valueChanged.connect(lambda _v: self.refresh())
        corners.addWidget(QLabel("length ×"), 2, 0)
        corners.addWidget(self.length_spin, 2, 1)
        for i, name in enumerate(("top left", "top right", "bottom left", "bottom right")):
            combo = QComboBox()
            combo.setObjectName(f"galleryCorner{i}")
            combo.setToolTip(f"Label at the {name} corner")
            combo.currentIndexChanged.connect(lambda _i: self.refresh())
            corners.addWidget(QLabel(name), i // 2, 2 * (i % 2))
            corners.addWidget(combo, i // 2, 2 * (i % 2) + 1)
            self.corner_combos.append(combo)
        self.options.addWidget(corners_page)
        ends_page = QWidget()
        ends = QHBoxLayout(ends_page)
        ends.setContentsMargins(0, 0, 0, 0)
        self.end_buttons = []
        for i, name in enumerate("AB"):
            button = QPushButton(f"{name} = picked point")
            button.setObjectName(f"galleryEnd{name}")
            button.setToolTip(f"Use the point last picked on the map (or steered, or mixed) as end {name}")
            button.clicked.connect(lambda _c=False, i=i: self.set_end(i, self.explorer.current_latent()))
            ends.addWidget(button)
            self.end_buttons.append(button)
        self.ends_label = QLabel()
        ends.addWidget(self.ends_label, 1)
        self.options.addWidget(ends_page)

        self.image_view = PixelImageView("galleryImage", min_side=200)
        self.export_button = QPushButton("Export PNG…")
        self.export_button.setObjectName("galleryExport")
        self.export_button.clicked.connect(self.export_dialog)
        self.copy_button = QPushButton("Copy image")
        self.copy_button.setObjectName("galleryCopy")
        self.copy_button.clicked.connect(self.copy_to_clipboard)
        bottom = QHBoxLayout()
        bottom.addStretch(1)
        bottom.addWidget(self.copy_button)
        bottom.addWidget(self.export_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 4)
        layout.addLayout(top)
        layout.addWidget(self.options)
        layout.addWidget(self.image_view, 1)
        layout.addLayout(bottom)

    # --- inputs -----------------------------------------------------------------------------
    @property
    def mode(self) -> str:
        return self.mode_combo.currentData()

    def set_label_names(self, names) -> None:
        names = list(names)
        for i, combo in enumerate(self.corner_combos):
            keep = combo.currentIndex()
            combo.blockSignals(True)
            combo.clear()
            for j, name in enumerate(names):
                combo.addItem(name, j)
            default = (0, 1, 2, 3)[i] if len(names) > 3 else i % max(1, len(names))
            combo.setCurrentIndex(keep if 0 <= keep < len(names) else default)
            combo.blockSignals(False)

    def set_corners(self, labels) -> None:
        for combo, label in zip(self.corner_combos, labels):
            combo.blockSignals(True)
            combo.setCurrentIndex(int(label))
            combo.blockSignals(False)
        self.refresh()

    def set_end(self, which: int, z: np.ndarray | None) -> None:
        self.ends[which] = None if z is None else np.asarray(z, dtype=np.float32).copy()
        self.refresh()

    def regenerate(self) -> None:
        self.seed += 1
        self.refresh()

    def _mode_changed(self, index: int) -> None:
        self.options.setCurrentIndex(index)
        self.refresh()

    # --- output ----------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Generate the current mode's picture with the latest model (fixed seed: while training the
        same noise is decoded by newer weights, so the samples visibly sharpen)."""
        from ...core.generation import gallery_picture

        model = self.explorer.model
        if model is None:
            return
        # only a model with routed decoder heads picks among its heads' pictures
        self.noise_note.setText(NOISE_NOTE + (NOISE_NOTE_HEADS if getattr(model, "decoder_heads", False) else ""))
        mode = self.mode
        self.picture = gallery_picture(model, mode, self.count_spin.value(), self.seed,
                                       temperature=self.temperature_spin.value(),
                                       corners=tuple(max(0, c.currentIndex()) for c in self.corner_combos),
                                       length=self.length_spin.value(),
                                       ends=self._ends(model) if mode not in ("noise", "labels", "corners") else None)
        # a row per label: each row carries its label's name
        self.image_view.set_image(self.picture, self.explorer.label_names if mode == "labels" else None)
        self.generated.emit()

    def _ends(self, model):
        """The interpolation's end points; until the user sets them, the first two label latents."""
        from ...core.generation import label_points

        names = self.explorer.label_names
        defaults = label_points(model, (0, 1 % model.num_labels))
        ends = [e if e is not None and len(e) == model.z_dim else defaults[i] for i, e in enumerate(self.ends)]
        text = [("picked" if e is not None and len(e) == model.z_dim else f"label {names[i]}")
                for i, e in enumerate(self.ends)]
        self.ends_label.setText(f"A: {text[0]} → B: {text[1]}")
        return ends

    def export_png(self, path) -> bool:
        from ...core.generation import save_grid

        if self.picture is None:
            return False
        try:
            save_grid(self.picture, path)
        except (OSError, ValueError) as exc:
            self.explorer.window.show_message("Could not export", f"Could not write {path}: {exc}", "error")
            return False
        return True

    def export_dialog(self) -> None:
        if self.picture is None:
            return
        folder = str(self.explorer.window.settings.value("paths/export", "")) if hasattr(
            self.explorer.window, "settings") else ""
        path, _ = QFileDialog.getSaveFileName(self, "Export gallery", os.path.join(folder, f"gallery-{self.mode}.png"),
                                              "PNG image (*.png)")
        if path:
            if self.export_png(path) and hasattr(self.explorer.window, "settings"):
                self.explorer.window.settings.setValue("paths/export", os.path.dirname(path))

    def copy_to_clipboard(self) -> None:
        if self.picture is not None:
            QApplication.clipboard().setImage(to_qimage(self.picture))
