"""The explorer's controller: builds the Point, Steer & mix, Gallery and Clusters docks around the
main window's LatentCanvas and keeps them on the latest inference model (a new CPU eval copy per
weight snapshot, never trained in place, so the background jobs may read it freely)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QDockWidget, QScrollArea, QVBoxLayout, QWidget

from .. import interaction
from ..background_jobs import BackgroundJobs
from .canvas_layers import DecisionMapLayer, LayerScheduler, ManifoldLayer
from .cluster_view import ClusterView
from .gallery_view import GalleryView
from .mixer_panel import LabelMixer
from .point_panel import PointPanel
from .steering_panel import SteeringPanel

if TYPE_CHECKING:  # core.explore needs torch, which loads after the window is shown
    from ...core.explore import Decoded


class Explorer(QObject):
    pointShown = Signal(object)  # core.explore.Decoded, whenever the Point dock shows a new point

    def __init__(self, window):
        super().__init__(window)
        self.window, self.canvas = window, window.canvas
        self.runner = BackgroundJobs(self, name="explorer")  # the decision map, manifold, t-SNE, steering
        self.model = None
        self.label_names: list[str] = []
        self.current_z: np.ndarray | None = None
        self._trained_model = None  # the training model of the current trainer (not the inference copy)

        self.point_panel = PointPanel()
        # One scheduler for both layers: they are always computed from the same map and weights.
        self.layers = LayerScheduler(self.canvas, self.runner, self)
        self.decision_layer = DecisionMapLayer(self.layers, self)
        self.manifold_layer = ManifoldLayer(self.layers, self)
        self.point_panel.decision_box.toggled.connect(self.decision_layer.set_enabled)
        self.point_panel.manifold_box.toggled.connect(self.manifold_layer.set_enabled)
        self.steering = SteeringPanel(self)
        self.mixer = LabelMixer(self)
        self.gallery = GalleryView(self)
        self.clusters = ClusterView(self)

        steer_mix = QWidget()
        steer_mix.setObjectName("steerMixPanel")
        column = QVBoxLayout(steer_mix)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(self.steering)
        column.addWidget(self.mixer, 1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setWidget(steer_mix)

        right = Qt.DockWidgetArea.RightDockWidgetArea
        self.point_dock = self._dock("Point", "pointDock", self.point_panel, right)
        self.steer_dock = self._dock("Steer && mix", "steerDock", scroll, right)
        self.gallery_dock = self._dock("Gallery", "galleryDock", self.gallery, right)
        self.cluster_dock = self._dock("Clusters", "clusterDock", self.clusters, right)
        window.splitDockWidget(self.point_dock, self.steer_dock, Qt.Orientation.Vertical)
        window.tabifyDockWidget(self.steer_dock, self.gallery_dock)
        window.tabifyDockWidget(self.gallery_dock, self.cluster_dock)
        self.steer_dock.raise_()
        window.resizeDocks([self.point_dock], [400], Qt.Orientation.Horizontal)
        window.resizeDocks([self.point_dock, self.steer_dock], [260, 520], Qt.Orientation.Vertical)
        self.gallery_dock.visibilityChanged.connect(lambda shown: shown and self.gallery.refresh())

        self.canvas.decoded.connect(self._picked)
        self.canvas.pickRefreshed.connect(self._pick_refreshed)
        window.inferenceModelChanged.connect(self.set_model)
        window.datasetChanged.connect(lambda _d: self.clusters.clear())
        signals = getattr(window, "signals", None)  # the studio's events (gui/studio_signals.py)
        if signals is not None:
            signals.trainerChanged.connect(self.forget_model_state)
        window.installEventFilter(self)
        self.set_model(getattr(window, "inference_model", None))

    def _dock(self, title: str, name: str, widget: QWidget, area) -> QDockWidget:
        dock = QDockWidget(title, self.window)
        dock.setObjectName(name)
        dock.setWidget(widget)
        self.window.addDockWidget(area, dock)
        return dock

    # --- model --------------------------------------------------------------------------------
    def set_model(self, model) -> None:
        self.model = model
        if model is None:
            return
        if list(model.label_names) != self.label_names:
            self.label_names = list(model.label_names)
            for view in (self.point_panel, self.steering, self.mixer, self.gallery, self.clusters):
                view.set_label_names(self.label_names)
        if self.current_z is not None and len(self.current_z) != model.z_dim:
            self.current_z = None
        self.layers.set_model(model)
        if interaction.dragging():
            return  # the next drag move decodes with these weights; the gallery catches up later
        if self.current_z is not None and not self.steering.replay.isActive() and not self.canvas.picked_by_click:
            # (a clicked point is decoded again by the canvas itself: pickRefreshed)
            # The same point, decoded by the newer weights: the image follows training.
            from ...core.explore import decode_point

            self.point_panel.show_decoded(decode_point(model, self.current_z), self.point_panel.caption.text())
        if not self.gallery_dock.visibleRegion().isEmpty():
            self.gallery.refresh()

    def forget_model_state(self, trainer=None) -> None:
        """Another model is current (preset, latent size, Reset, a checkpoint, a dataset): what the
        docks showed belonged to the old one. Its point, steering path and embedding go; the new
        model's first inference copy follows as its own event."""
        model = getattr(trainer, "model", None)
        if model is not None and model is self._trained_model:
            return  # a rebuilt trainer around the same weights (batch size, seed, ...): all still holds
        self._trained_model = model
        self.steering.cancel()
        self.steering.clear_path()
        self.current_z = None
        self.point_panel.clear()
        self.clusters.forget_embedding()

    # --- the current point ------------------------------------------------------------------------
    def current_latent(self) -> np.ndarray:
        """The point last shown (picked, steered or mixed); else the centre of the map's plane."""
        if self.current_z is not None:
            return self.current_z.copy()
        z = self.canvas.projection.lift(np.zeros((1, 2)))[0]
        if self.model is not None and len(z) != self.model.z_dim:
            z = np.zeros(self.model.z_dim)
        return z.astype(np.float32)

    def show_latent(self, z: np.ndarray, decoded: Decoded, caption: str, uv=None) -> None:
        """Show a latent point that did not come from a click: steering, the mixer."""
        self.current_z = np.asarray(z, dtype=np.float32).copy()
        self.point_panel.show_decoded(decoded, caption)
        projection = self.canvas.projection
        if uv is None and projection.lift(np.zeros((1, 2))).shape[1] == len(z):
            uv = projection.project(self.current_z[None].astype(np.float64))[0]
        if uv is not None:
            # The canvas redraws its marker at picked_uv on every snapshot: keep it on this point.
            self.canvas.picked_by_click = False  # this latent, not the map point under the marker
            self.canvas.picked_uv = (float(uv[0]), float(uv[1]))
            self.canvas.set_marker(float(uv[0]), float(uv[1]))
        self.pointShown.emit(decoded)

    def _picked(self, decoded: Decoded) -> None:
        self.steering.stop()
        u, v = self.canvas.picked_uv if self.canvas.picked_uv is not None else (0.0, 0.0)
        self.current_z = self._latent_of(decoded, u, v)
        self.point_panel.show_decoded(decoded, f"map point ({u:.2f}, {v:.2f})")
        self.pointShown.emit(decoded)

    def _pick_refreshed(self, decoded: Decoded) -> None:
        """The map or the weights changed: the Point dock shows the latent under the marker now."""
        u, v = self.canvas.picked_uv
        self.current_z = self._latent_of(decoded, u, v)
        self.point_panel.show_decoded(decoded, f"map point ({u:.2f}, {v:.2f})")
        self.pointShown.emit(decoded)

    def _latent_of(self, decoded: Decoded, u: float, v: float) -> np.ndarray:
        """The latent the canvas decoded at (u, v): carried by the decode (a drag move lifts once)."""
        z = decoded.z if decoded.z is not None else self.canvas.latent_at(u, v)
        return np.asarray(z, dtype=np.float32).copy()

    # --- shutdown ---------------------------------------------------------------------------------------
    def eventFilter(self, watched, event) -> bool:
        if watched is self.window and event.type() == QEvent.Type.Close:
            self.shutdown()
        elif watched is self.window and event.type() == QEvent.Type.PaletteChange:
            QTimer.singleShot(0, self.apply_theme)  # after the theme switch has finished
        return False

    def shutdown(self) -> None:
        """Stop background jobs and wait for them (they hold no locks; a decode is milliseconds)."""
        self.steering.stop()
        self.layers.timer.stop()
        self.runner.cancel_all()
        self.runner.wait(5000)

    def apply_theme(self) -> None:
        self.point_panel.scores.apply_theme()
        self.clusters.apply_theme()
