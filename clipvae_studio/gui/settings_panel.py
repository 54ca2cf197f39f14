"""Every TrainConfig field as an editor, grouped, with FIELD_HELP as tooltips.

Fields the running loop reads afresh on every step (learning rate, loss weights, ...) stay
editable while training; the others (architecture, batch size, seed, ...) lock while it runs.
"""
from __future__ import annotations

import math
import re
from dataclasses import fields

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QValidator
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QGroupBox, QLabel,
                               QScrollArea, QSpinBox, QVBoxLayout, QWidget)

from ..core.config import (ARCHITECTURES, CLIP_MODES, DEVICES, FIELD_HELP, LR_SCHEDULES, MODEL_FIELDS,
                           NOISE_KINDS, REDUCTIONS, TrainConfig)
from ..core.live_fields import LIVE_FIELDS  # the trainer's rule: which fields a running loop re-reads

CHOICES = {"arch": ARCHITECTURES, "noise": NOISE_KINDS, "clip_mode": CLIP_MODES, "rec_reduction": REDUCTIONS,
           "kld_reduction": REDUCTIONS, "lr_schedule": LR_SCHEDULES, "device": DEVICES}
INT_RANGES = {"z_dim": (1, 512), "width": (4, 4096), "depth": (0, 64), "kl_warmup_steps": (0, 10_000_000),
              "batch_size": (1, 16384), "epochs": (1, 1_000_000), "seed": (0, 2**31 - 1),
              "eval_every_steps": (1, 10_000_000), "snapshot_size": (10, 100_000),
              "augment_max_per_label": (0, 10_000_000)}
FLOAT_RANGES = {"free_bits": (0.0, 20.0, 2, 0.1), "snapshot_every_s": (0.1, 120.0, 1, 0.5),
                "label_pull": (0.0, 1.0, 2, 0.1), "label_match_reverse": (0.0, 1.0, 2, 0.1),
                "augment_px": (0.0, 8.0, 0, 1.0)}  # whole pixels
LOG_FLOATS = {"lr": (1e-7, 10.0), "weight_decay": (0.0, 10.0)}
GROUPS = (("Model", MODEL_FIELDS),
          ("Loss", ("clip_mode", "rec_reduction", "kld_reduction", "w_clip", "w_kld_image", "w_kld_label",
                    "w_rec_image", "w_ce_label", "kl_warmup_steps", "free_bits", "label_pull",
                    "label_match_reverse")),
          ("Optimisation", ("lr", "weight_decay", "lr_schedule", "batch_size", "epochs", "augment_px",
                            "augment_max_per_label", "seed",
                            "device")),
          ("Reporting", ("eval_every_steps", "snapshot_every_s", "snapshot_size")))


def _grouped() -> list[tuple[str, tuple[str, ...]]]:
    """GROUPS plus any field added to TrainConfig later: loss weights join Loss, the rest Other."""
    listed = {name for _, names in GROUPS for name in names}
    extra = [f.name for f in fields(TrainConfig) if f.name not in listed]
    groups = [(title, names + tuple(n for n in extra if title == "Loss" and n.startswith("w_")))
              for title, names in GROUPS]
    other = tuple(n for n in extra if not n.startswith("w_"))
    return groups + ([("Other", other)] if other else [])
LABELS = {"z_dim": "latent size", "w_clip": "weight CLIP", "w_kld_image": "weight KLD image",
          "w_kld_label": "weight KLD label", "w_rec_image": "weight rec. image", "w_ce_label": "weight CE label",
          "kl_warmup_steps": "KL warm-up steps", "free_bits": "free bits", "lr": "learning rate",
          "lr_schedule": "lr schedule", "batch_size": "batch size", "eval_every_steps": "evaluate every",
          "snapshot_every_s": "snapshot every (s)", "snapshot_size": "snapshot size",
          "shared_blocks": "shared blocks", "w_label_match": "weight label match", "w_prior_mmd": "weight prior MMD",
          "decoder_heads": "decoder heads", "label_match_reverse": "label match reverse", "clip_mode": "CLIP mode", "rec_reduction": "rec. reduction",
          "kld_reduction": "KLD reduction", "weight_decay": "weight decay", "augment_px": "shift images (px)",
          "augment_max_per_label": "shift up to (images/label)"}


def field_label(name: str) -> str:
    """The name a setting goes by on screen (its label in this panel), never the config field's."""
    return LABELS.get(name, name.replace("_", " "))


def explain_invalid(name: str, message: str) -> str:
    """A config validation error in the panel's words, with what to do: other fields it names are
    called by their labels, and a conflict with another setting says to change that one first."""
    field_names = sorted((f.name for f in fields(TrainConfig)), key=len, reverse=True)
    others = [f for f in field_names if f != name and re.search(rf"\b{f}\b", message)]
    text = message
    for field_name in (f for f in field_names if field_label(f) != f):
        text = re.sub(rf"\b{field_name}\b", f"'{field_label(field_name)}'", text)
    if others:
        other = field_label(others[0])
        text += (f"\n\nTo change '{field_label(name)}', first change '{other}' in the settings, "
                 f"then set '{field_label(name)}' again.")
    return text


class ScientificSpinBox(QDoubleSpinBox):
    """A double spin box for values spanning decades (learning rate): shows 3 significant digits,
    accepts 1e-3 notation, and steps multiplicatively."""

    def __init__(self, minimum: float, maximum: float, parent=None):
        super().__init__(parent)
        self.setDecimals(12)
        self.setRange(minimum, maximum)

    def textFromValue(self, value: float) -> str:
        return f"{value:.3g}"

    def valueFromText(self, text: str) -> float:
        try:
            return float(text)
        except ValueError:
            return self.value()

    def validate(self, text: str, pos: int):
        try:
            value = float(text)
        except ValueError:
            return QValidator.State.Intermediate, text, pos
        ok = self.minimum() <= value <= self.maximum()
        return (QValidator.State.Acceptable if ok else QValidator.State.Intermediate), text, pos

    def stepBy(self, steps: int) -> None:
        value = self.value()
        if value <= 0:
            value = max(self.minimum(), 1e-4)
        new = value * 10 ** (steps / 10)
        digits = 3 - int(math.floor(math.log10(abs(new)))) - 1
        self.setValue(round(new, digits))


class SettingsPanel(QWidget):
    valueChanged = Signal(str, object)  # field name, new value (a user edit)

    def __init__(self, config: TrainConfig | None = None, parent=None):
        super().__init__(parent)
        self.setObjectName("settingsPanel")
        self.editors: dict[str, QWidget] = {}
        self._config = config or TrainConfig()
        self._running = False
        self._types = {f.name: type(getattr(self._config, f.name)) for f in fields(TrainConfig)}
        inner = QWidget()
        column = QVBoxLayout(inner)
        column.setContentsMargins(6, 2, 6, 6)
        self.locked_note = QLabel("Grey fields are fixed while training runs; stop to change them.")
        self.locked_note.setObjectName("lockedNote")
        self.locked_note.setWordWrap(True)
        self.locked_note.hide()
        column.addWidget(self.locked_note)
        for title, names in _grouped():
            box = QGroupBox(title)
            form = QFormLayout(box)
            form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
            form.setContentsMargins(8, 6, 8, 6)
            form.setVerticalSpacing(4)
            for name in names:
                editor = self._make_editor(name)
                editor.setObjectName(f"setting_{name}")
                editor.setToolTip(FIELD_HELP.get(name, name))
                label = QLabel(field_label(name))
                label.setToolTip(FIELD_HELP.get(name, name))
                form.addRow(label, editor)
                self.editors[name] = editor
            column.addWidget(box)
        model_note = QLabel("Changing a model field starts a fresh model.")
        model_note.setObjectName("lockedNote")
        model_note.setWordWrap(True)
        column.insertWidget(1, model_note)
        column.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(inner)
        # Never narrower than its labels and editors (it scrolls up and down only): a dock squeezed
        # below that cut every label off (~70 px at the window's old minimum size).
        self.setMinimumWidth(inner.minimumSizeHint().width() + scroll.verticalScrollBar().sizeHint().width())
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(scroll)
        self.set_config(self._config)

    # --- editors -----------------------------------------------------------------------
    def _make_editor(self, name: str) -> QWidget:
        kind = self._types[name]
        if name in CHOICES:
            editor = QComboBox()
            editor.addItems(CHOICES[name])
            # by index: an item's text may carry a note, e.g. "auto (conv)" (show_resolved_arch)
            editor.currentIndexChanged.connect(lambda i, n=name: self._edited(n, CHOICES[n][i]))
        elif kind is bool:
            editor = QCheckBox()
            editor.toggled.connect(lambda on, n=name: self._edited(n, bool(on)))
        elif kind is int:
            editor = QSpinBox()
            editor.setRange(*INT_RANGES.get(name, (0, 10**9)))
            editor.setKeyboardTracking(False)
            editor.setAccelerated(True)
            if name in ("batch_size", "eval_every_steps", "snapshot_size"):
                editor.setStepType(QSpinBox.StepType.AdaptiveDecimalStepType)
            editor.valueChanged.connect(lambda value, n=name: self._edited(n, int(value)))
        elif name in LOG_FLOATS:
            editor = ScientificSpinBox(*LOG_FLOATS[name])
            editor.setKeyboardTracking(False)
            editor.valueChanged.connect(lambda value, n=name: self._edited(n, float(value)))
        else:
            lo, hi, decimals, step = FLOAT_RANGES.get(name, (0.0, 1000.0, 3, 0.1))
            editor = QDoubleSpinBox()
            editor.setRange(lo, hi)
            editor.setDecimals(decimals)
            editor.setSingleStep(step)
            editor.setKeyboardTracking(False)
            editor.valueChanged.connect(lambda value, n=name: self._edited(n, float(value)))
        return editor

    def _edited(self, name: str, value) -> None:
        if getattr(self._config, name) != value:
            self.valueChanged.emit(name, value)

    # --- state -------------------------------------------------------------------------
    def config(self) -> TrainConfig:
        return self._config

    def set_config(self, config: TrainConfig) -> None:
        """Show `config` (no valueChanged signals)."""
        self._config = config
        for name, editor in self.editors.items():
            value = getattr(config, name)
            editor.blockSignals(True)
            if isinstance(editor, QComboBox):
                editor.setCurrentIndex(CHOICES[name].index(value) if value in CHOICES[name] else -1)
            elif isinstance(editor, QCheckBox):
                editor.setChecked(bool(value))
            else:
                editor.setValue(value)
            editor.blockSignals(False)

    def show_resolved_arch(self, resolved: str | None) -> None:
        """Name the architecture "auto" picked for this data in the arch box: "auto (conv)".
        None (no model yet) shows plain "auto"."""
        combo = self.editors["arch"]
        row = CHOICES["arch"].index("auto") if "auto" in CHOICES["arch"] else -1
        if row >= 0:
            combo.setItemText(row, f"auto ({resolved})" if resolved and resolved != "auto" else "auto")

    def set_running(self, running: bool) -> None:
        """Lock the fields the running loop cannot take."""
        self._running = running
        for name, editor in self.editors.items():
            editor.setEnabled(not running or name in LIVE_FIELDS)
        self.locked_note.setVisible(running)

    def lock_all(self) -> None:
        """Every field read-only until set_running() is called (the window is still loading).
        Each editor is disabled itself: a spin box disabled only through its parent keeps bright
        text in the dark theme, so it would look editable."""
        for editor in self.editors.values():
            editor.setEnabled(False)

    @property
    def running(self) -> bool:
        return self._running
