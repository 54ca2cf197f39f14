"""The "Point" dock: the image decoded at the picked latent point, CLIP's scores for it, and the
switches of the canvas background layers."""
from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

from .image_view import PixelImageView
from .score_bars import ScoreBars

if TYPE_CHECKING:
    from ...core.explore import Decoded


class PointPanel(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("pointPanel")
        self.image_view = PixelImageView("decodedImage", min_side=112)
        self.image_view.setToolTip("The image decoded at the picked point (click or drag on the map)")
        self.image_view.clear_image("Click or drag on the map\nto decode a point")
        self.scores = ScoreBars("clipScores")
        self.scores.setToolTip("CLIP's score of the decoded image, encoded again, against every label;\n"
                               "ticks: the score of the latent point itself, where it differs")
        self.caption = QLabel()
        self.caption.setObjectName("pointCaption")
        # Its text changes on every drag move: a fixed-height line that never asks for a re-layout.
        self.caption.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.decision_box = QCheckBox("Decision map")
        self.decision_box.setObjectName("decisionMapToggle")
        self.decision_box.setToolTip("Colour the map by CLIP's top label for the image decoded at each place;\n"
                                     "stronger colour = more confident. Computed in the background.")
        self.manifold_box = QCheckBox("Manifold")
        self.manifold_box.setObjectName("manifoldToggle")
        self.manifold_box.setToolTip("Tile the visible map with the images decoded there")
        toggles = QHBoxLayout()
        toggles.addWidget(QLabel("Map layers:"))
        toggles.addWidget(self.decision_box)
        toggles.addWidget(self.manifold_box)
        toggles.addStretch(1)
        row = QHBoxLayout()  # image and bars side by side: both stay large in a narrow dock
        row.addWidget(self.image_view, 2)
        row.addWidget(self.scores, 3)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 4)
        layout.addLayout(row, 1)
        layout.addWidget(self.caption)
        layout.addLayout(toggles)

    def set_label_names(self, names) -> None:
        self.scores.set_label_names(names)

    def clear(self) -> None:
        """Show no point (a new model: the old decode and scores no longer hold)."""
        self.image_view.clear_image("Click or drag on the map\nto decode a point")
        self.scores.clear_scores()
        self.caption.setText("")

    def show_decoded(self, decoded: Decoded, caption: str = "") -> None:
        self.image_view.set_image(decoded.image)
        self.scores.set_scores(decoded.scores, decoded.direct_scores)
        self.caption.setText(caption)
