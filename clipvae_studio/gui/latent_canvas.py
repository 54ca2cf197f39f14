"""The live latent map: image-latent means of a fixed test subset, coloured by label, the label
latents as named anchors, on a map that goes both ways (core/projection.py): by default the
neighbourhood map (t-SNE, core/neighbourhood_map.py), refitted off the GUI thread from each new
snapshot (map_fitter.py); PCA, the label plane and exact 2D on request.

Interaction contract (the explorer builds on it): a left click or left drag anywhere picks a
point (pointPicked, then decoded with the latest inference model); right or middle drag pans,
the wheel zooms.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QPoint, QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QImage, QPixmap
from PySide6.QtWidgets import (QComboBox, QFrame, QGraphicsItem, QHBoxLayout, QLabel, QPushButton, QVBoxLayout,
                               QWidget)

from .label_names import MAX_NAMES, elide, names_to_show, points_in_view, to_pixels
from .label_names import bounds as label_bounds
from ..core.events import LatentSnapshot
from ..core.projection import (IdentityProjection, LabelPlaneProjection, NeighbourhoodMap, PCAProjection,
                               PlaneProjection)
from . import interaction
from .map_fitter import ExtrapolationShade, MapFitter
from .name_items import LazyItems, view_pixels
from .pyqtgraph_compat import (auto_range_in_progress, forget_zoom_target, move_points, scatter_pixel_padding,
                               skip_auto_range, skip_hover_while_dragging)
from .palette import label_brushes, label_color
from .style import current_theme, light_grid, style_plot

if TYPE_CHECKING:
    from ..core.explore import Decoded
    from ..core.projection import Projection

POINT_SIZE = 5
HOVER_RADIUS_PX = 7
INSET_SCALE = 3  # hover inset: source image enlarged this many times
PROJECTIONS = (("neighbourhood", "Neighbourhood map"), ("pca", "PCA"), ("label-plane", "Label plane"),
               ("exact-2d", "Exact 2D"))
FIT_PADDING = 0.08  # room left around the points when the view fits them, so they can move a little
FIT_MIN_FILL = 0.7  # the view fits again once the points span less than this share of it
# Where a label's name sits around its star (TextItem anchors), in order of preference: above,
# below, left, right; a name takes the first place where it covers no name placed before it.
NAME_PLACES = ((0.5, 1.25), (0.5, -0.25), (1.55, 0.5), (-0.55, 0.5))


class PickViewBox(pg.ViewBox):
    """Left button picks (click and drag); right/middle drag pans; the wheel zooms."""

    sigPicked = Signal(float, float, bool)  # u, v, is_drag_finish

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.setDefaultPadding(FIT_PADDING)

    def updateAutoRange(self):
        # The points move a little with every live snapshot. Fitting the view to them each time
        # redraws both axes and the grid (half of a snapshot's ~10 ms repaint) and makes the map
        # twitch; keep the view while it holds every point and they still fill most of it.
        if all(self.state["autoRange"]) and not auto_range_in_progress(self) and self._holds_points():
            skip_auto_range(self)
            return
        super().updateAutoRange()

    def _holds_points(self) -> bool:
        bounds = self.childrenBounds()
        if any(b is None for b in bounds):
            return False
        fill = 0.0
        for (lo, hi), (view_lo, view_hi) in zip(bounds, self.viewRange()):
            if lo < view_lo or hi > view_hi or view_hi <= view_lo:
                return False
            fill = max(fill, (hi - lo) / (view_hi - view_lo))
        return fill >= FIT_MIN_FILL

    def addItem(self, item, ignoreBounds=False):
        if ignoreBounds:
            self._bounds_ignored = getattr(self, "_bounds_ignored", set()) | {item}
        super().addItem(item, ignoreBounds=ignoreBounds)

    def itemBoundsChanged(self, item):
        # pyqtgraph queues an auto-range update, and so a repaint of the whole view (every point
        # of the scatter), whenever any item moves, even one added with ignoreBounds: the
        # crosshair on every drag move. Such items cannot change the range; only they repaint.
        if item in getattr(self, "_bounds_ignored", ()):
            return
        super().itemBoundsChanged(item)

    def mouseClickEvent(self, ev):
        if ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            p = self.mapSceneToView(ev.scenePos())
            self.sigPicked.emit(p.x(), p.y(), True)
        else:
            super().mouseClickEvent(ev)  # right click: the view menu

    def mouseDragEvent(self, ev, axis=None):
        button = ev.button()
        if button == Qt.MouseButton.LeftButton:
            ev.accept()
            if ev.isFinish():
                interaction.release()
            else:
                interaction.mark_dragging()  # live redraws wait while the pointer moves (interaction.py)
            p = self.mapSceneToView(ev.scenePos())
            self.sigPicked.emit(p.x(), p.y(), ev.isFinish())
        elif button in (Qt.MouseButton.RightButton, Qt.MouseButton.MiddleButton):
            ev.accept()
            delta = self.mapToView(ev.lastPos()) - self.mapToView(ev.pos())
            forget_zoom_target(self)
            self.translateBy(x=delta.x(), y=delta.y())
            self.sigRangeChangedManually.emit(self.state["mouseEnabled"])
        else:
            ev.ignore()


class _PassiveScatter(pg.ScatterPlotItem):
    """A scatter that never takes a click, so clicks on points reach the ViewBox as picks."""

    _rect_cache = None  # (the bounds list it was computed from, pixel padding, QRectF)
    _exposed = None  # the part of the item being repainted, during paint()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemUsesExtendedStyleOption)  # fills exposedRect

    def mouseClickEvent(self, ev):
        ev.ignore()

    def paint(self, p, option, widget):
        # A drag repaints only the few pixels around the crosshair; pyqtgraph would still hand all
        # points to Qt (it culls to the whole view). Cull to the exposed part instead.
        self._exposed = QRectF(option.exposedRect)
        try:
            super().paint(p, option, widget)
        finally:
            self._exposed = None

    def viewRect(self):
        if self._exposed is not None and not self._exposed.isEmpty():
            return self._exposed
        return super().viewRect()

    def boundingRect(self):
        # Qt asks ~40 times per repaint; pyqtgraph recomputes it from the view transform each
        # time (~45 us). It only changes when pyqtgraph replaces self.bounds (new data, a zoom
        # or pan: viewTransformChanged) or the symbol size changes; holding the list itself
        # keeps its identity from being reused by a new one.
        cache = self._rect_cache
        pad = scatter_pixel_padding(self)
        if cache is not None and cache[0] is self.bounds and cache[1] == pad:
            return QRectF(cache[2])
        rect = super().boundingRect()
        self._rect_cache = (self.bounds, pad, QRectF(rect))
        return rect


class LatentCanvas(QWidget):
    pointPicked = Signal(float, float)
    decoded = Signal(object)  # core.explore.Decoded
    projectionChanged = Signal()
    # The map itself changed (another plane or basis, a new fit landed): map_version counts them,
    # and whatever was computed on an older version (background layers) no longer fits the map.
    mapChanged = Signal()
    # The clicked point decoded again under the current map and weights (the marker may have moved).
    pickRefreshed = Signal(object)  # core.explore.Decoded

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("latentCanvas")
        self.model = None
        self.dataset = None
        self.snapshot: LatentSnapshot | None = None
        self.label_names: list[str] = []
        self.picked_uv: tuple[float, float] | None = None
        self.picked_by_click = False  # the point is a click's (not a steered or mixed latent's)
        self.map_version = 0
        self._map_key: tuple | None = None
        self._picked_z: np.ndarray | None = None  # the latent picked_uv named when it was set
        self._picked_z_uv: tuple[float, float] | None = None
        self._uv = np.zeros((0, 2))
        self._labels_key = None
        self._axis_labels = None
        self._deferred_snapshot: LatentSnapshot | None = None
        self._deferred_timer = QTimer(self)
        self._deferred_timer.setSingleShot(True)
        self._deferred_timer.setInterval(int(interaction.HOLD_S * 1000) + 20)
        self._deferred_timer.timeout.connect(self._apply_deferred_snapshot)
        self._pca = PCAProjection()
        self._label_plane: LabelPlaneProjection | None = None
        self._identity = IdentityProjection()
        self._neighbourhood = NeighbourhoodMap()  # replaced, never changed in place, by each fit that lands
        self._landed: tuple | None = None  # a fit (map, rows) that landed while the pointer was dragging
        self._neighbourhood_rows: np.ndarray | None = None  # the snapshot rows the map was fitted on
        self.fitter = MapFitter(self)
        self.fitter.fitted.connect(self._fit_landed)
        self.fitter.failed.connect(self._say_fit_failed)
        self.projection: Projection = self._pca
        self.mode = "neighbourhood"
        self._mode_chosen = False  # a person picked the projection: no automatic switch to exact 2D

        self.view_box = PickViewBox()
        self.view_box.setAspectLocked(True)
        self.plot_widget = pg.PlotWidget(viewBox=self.view_box)
        self.plot_widget.setObjectName("latentPlot")
        self.plot_item = self.plot_widget.getPlotItem()
        # A GridItem, not showGrid: the axes' grid costs ~20 ms per repaint here, the item <1 ms,
        # and the canvas repaints on every drag move.
        self.grid_item = light_grid()
        self.grid_item.setZValue(-100)
        self.plot_item.addItem(self.grid_item, ignoreBounds=True)
        self.plot_item.hideButtons()
        # One item for all points, coloured per point: one paint per repaint instead of one per label.
        self.scatter = _PassiveScatter(pen=None, pxMode=True, size=POINT_SIZE, symbol="o")
        self.scatter.setZValue(1)
        self.view_box.addItem(self.scatter)
        self._point_brushes = []
        self.anchor_item = _PassiveScatter(size=15, symbol="star", pxMode=True)
        self.anchor_item.setZValue(10)
        self.view_box.addItem(self.anchor_item)
        # One name per label, built when first shown (gui/name_items.py): a dozen show at most.
        self.anchor_texts: LazyItems[pg.TextItem] = LazyItems(0, self._make_name)
        self._anchor_uv = np.zeros((0, 2))  # the label latents on the map, as last drawn
        # One point at the item's origin, moved with setPos: setData would make the view box
        # recompute its auto-range over every item on each drag move (~2 ms).
        self.marker = _PassiveScatter(x=[0.0], y=[0.0], size=17, symbol="crosshair", pxMode=True, brush=None)
        self.marker.setZValue(20)
        self.marker.hide()
        self.view_box.addItem(self.marker, ignoreBounds=True)
        self.view_box.sigPicked.connect(self._picked)
        self.view_box.sigTransformChanged.connect(lambda *_: self._place_names())
        self.shade = ExtrapolationShade(self)  # greys the areas where the map's latents are guesses

        self.projection_combo = QComboBox()
        self.projection_combo.setObjectName("projectionCombo")
        self.projection_combo.setToolTip("How the latent space is flattened onto this map")
        for key, name in PROJECTIONS:
            self.projection_combo.addItem(name, key)
        self.projection_combo.currentIndexChanged.connect(self._mode_picked)
        self.info_label = QLabel()
        self.info_label.setObjectName("canvasInfo")
        self.fit_button = QPushButton("Fit")
        self.fit_button.setObjectName("canvasFit")
        self.fit_button.setToolTip("Show all points (panning or zooming stops following them)")
        self.fit_button.clicked.connect(lambda: self.view_box.enableAutoRange())
        top = QHBoxLayout()
        top.setContentsMargins(6, 2, 6, 0)
        top.addWidget(QLabel("Projection"))
        top.addWidget(self.projection_combo)
        top.addSpacing(8)
        top.addWidget(self.info_label, 1)
        top.addWidget(self.fit_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(top)
        layout.addWidget(self.plot_widget, 1)

        # Hover: the source image and its label. A child of the canvas, not of the plot widget, so
        # that "Export plot as PNG" (a grab of the plot widget) never bakes it into the picture.
        self.inset = QFrame(self)
        self.inset.setObjectName("canvasInset")
        self.inset.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.inset_image = QLabel()
        self.inset_image.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.inset_caption = QLabel()
        self.inset_caption.setObjectName("canvasInsetCaption")
        self.inset_caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
        inset_layout = QVBoxLayout(self.inset)
        inset_layout.setContentsMargins(5, 5, 5, 4)
        inset_layout.setSpacing(2)
        inset_layout.addWidget(self.inset_image)
        inset_layout.addWidget(self.inset_caption)
        self.inset.hide()
        self.hovered_index: int | None = None
        scene = self.plot_widget.scene()
        scene.sigMouseMoved.connect(self._mouse_moved)
        skip_hover_while_dragging(scene)
        self.plot_widget.viewport().installEventFilter(self)  # the hover card goes when the pointer leaves
        self._update_mode_availability(None)
        self.apply_theme()

    # --- public API -----------------------------------------------------------------
    def set_model(self, model) -> None:
        """The latest CPU eval copy; picks decode with it (never with the training model)."""
        self.model = model
        if model is not None and len(model.label_names) != len(self.label_names):
            self._set_label_names(model.label_names)
        elif model is not None and list(model.label_names) != self.label_names:
            self._rename_labels(model.label_names)
        self._refresh_picked()

    def set_dataset(self, dataset) -> None:
        self.dataset = dataset
        self._set_label_names(dataset.label_names if dataset is not None else [])
        self.clear()

    def clear(self) -> None:
        """Forget the points and the basis (a new model or dataset)."""
        self.snapshot = None
        self._deferred_snapshot = None
        self._uv = np.zeros((0, 2))
        self._labels_key = None
        self._forget_maps()
        self.scatter.setData(x=[], y=[])
        self.anchor_item.setData(x=[], y=[])
        self._anchor_uv = np.zeros((0, 2))
        for _, text in self.anchor_texts.made():
            text.hide()
        self.marker.hide()
        self.picked_uv = self._picked_z = self._picked_z_uv = None
        self.picked_by_click = False
        self.shade.clear()
        self.inset.hide()
        self._note_map()
        self.view_box.enableAutoRange()

    def _forget_maps(self) -> None:
        """Drop the fitted planes and map: the next snapshot fits them afresh (cold)."""
        self._pca = PCAProjection()
        self._label_plane = None
        self._neighbourhood = NeighbourhoodMap()
        self._landed = self._neighbourhood_rows = None
        self.fitter.cancel()
        if self.mode in ("pca", "neighbourhood"):
            self.projection = self._pca

    def set_snapshot(self, snapshot: LatentSnapshot) -> None:
        if interaction.dragging():  # the map holds still under a dragging pointer; catch up after
            self._deferred_snapshot = snapshot
            if not self._deferred_timer.isActive():
                self._deferred_timer.start()
            return
        self._deferred_snapshot = None
        if self.snapshot is not None and snapshot.step < self.snapshot.step:
            self._picked_latent()  # read on the old map before it goes (kept with the point)
            self._forget_maps()  # a roll-back: the maps were fitted on latents that no longer exist
        self.snapshot = snapshot
        z_dim = snapshot.mu.shape[1]
        self._update_mode_availability(z_dim)
        if self.mode == "exact-2d" and z_dim != 2:
            self.set_projection_mode("neighbourhood")
            return  # set_projection_mode redraws with this snapshot
        if self.mode == "neighbourhood" and z_dim == 2 and not self._mode_chosen:
            self.set_projection_mode("exact-2d")  # the latent is the map: nothing to flatten
            return
        self._refit(snapshot)
        self._draw()

    def _apply_deferred_snapshot(self) -> None:
        if self._landed is not None:
            landed, self._landed = self._landed, None
            self._fit_landed(*landed)
        if self._deferred_snapshot is not None:
            self.set_snapshot(self._deferred_snapshot)

    def decode_at(self, u: float, v: float):
        """(image float HxW or HxWxC in [0, 1], scores over labels summing to 1) at map point (u, v)."""
        decoded = self.decode_point(u, v)
        if decoded is None:
            raise RuntimeError("no model to decode with yet")
        return decoded.image, decoded.scores

    def decode_point(self, u: float, v: float) -> Decoded | None:
        if self.model is None:
            return None
        z = self.projection.lift(np.array([[u, v]], dtype=np.float64))
        if z.shape[1] != self.model.z_dim:
            return None  # the basis belongs to another model; wait for its first snapshot
        from ..core.explore import decode_point  # torch: loaded after the window is shown (a look-up here)

        return decode_point(self.model, z.astype(np.float32))

    def latent_at(self, u: float, v: float) -> np.ndarray:
        return self.projection.lift(np.array([[u, v]], dtype=np.float64))[0]

    def set_projection_mode(self, mode: str) -> None:
        if mode == "exact-2d" and (self.snapshot is None or self.snapshot.mu.shape[1] != 2):
            mode = "neighbourhood"
        if mode == "label-plane" and len(self.label_names) < 3:
            mode = "neighbourhood"
        self.mode = mode
        index = self.projection_combo.findData(mode)
        if index != self.projection_combo.currentIndex():
            self.projection_combo.blockSignals(True)
            self.projection_combo.setCurrentIndex(index)
            self.projection_combo.blockSignals(False)
        if self.snapshot is not None:
            self._refit(self.snapshot)
            self._draw()
        else:
            self.projection = self._projection_for(mode)
            self._note_map()
        self.view_box.enableAutoRange()

    @property
    def neighbourhood_map(self) -> NeighbourhoodMap:
        """The latest neighbourhood map that landed (not fitted until the first fit lands)."""
        return self._neighbourhood

    def _projection_for(self, mode: str):
        if mode == "neighbourhood":
            return self._neighbourhood if self._neighbourhood.is_fitted else self._pca
        return {"pca": self._pca, "exact-2d": self._identity}.get(mode, self._label_plane or self._pca)

    def _mode_picked(self, _index: int) -> None:
        self._mode_chosen = True
        self.set_projection_mode(self.projection_combo.currentData())

    def set_marker(self, u: float, v: float) -> None:
        """Show the crosshair at map point (u, v)."""
        self.marker.setPos(float(u), float(v))
        self.marker.show()

    def marker_position(self) -> tuple[float, float] | None:
        """Where the crosshair is, in map coordinates (None while hidden)."""
        if not self.marker.isVisible():
            return None
        return self.marker.pos().x(), self.marker.pos().y()

    def points_uv(self) -> np.ndarray:
        """Map coordinates of the snapshot's points (N x 2), in snapshot order."""
        return self._uv

    def shown_names(self) -> list[int]:
        """The labels whose names the map shows now (builds no name item)."""
        return [i for i, text in self.anchor_texts.made() if text.isVisible()]

    def apply_theme(self) -> None:
        style_plot(self.plot_widget)
        dark = current_theme() == "dark"
        self.marker.setPen(pg.mkPen("#ffffff" if dark else "#111111", width=2.5))
        self.anchor_item.setPen(pg.mkPen("#ffffff" if dark else "#202020", width=1.3))
        for _, text in self.anchor_texts.made():
            self._style_name(text)

    @staticmethod
    def _style_name(text: pg.TextItem) -> None:
        dark = current_theme() == "dark"
        text.setColor("#f0f0f0" if dark else "#111111")
        text.fill = pg.mkBrush(QColor(30, 31, 34, 170) if dark else QColor(255, 255, 255, 190))
        text.update()

    def eventFilter(self, watched, event) -> bool:
        if event.type() == QEvent.Type.Leave and watched is self.plot_widget.viewport():
            self._hide_inset()
        return False

    # --- internals --------------------------------------------------------------------
    def _set_label_names(self, names) -> None:
        self.label_names = list(names)
        n = len(self.label_names)
        self._point_brushes = label_brushes(n)
        self.scatter.setData(x=[], y=[])
        self._labels_key = None
        for _, text in self.anchor_texts.made():
            self.view_box.removeItem(text)
        self.anchor_texts = LazyItems(n, self._make_name)
        self.anchor_item.setData(x=[], y=[])  # the next draw colours the stars for these labels
        self._anchor_uv = np.zeros((0, 2))
        self._anchor_brushes = label_brushes(n, alpha=255)

    def _rename_labels(self, names) -> None:
        """The same number of labels under other names (another model): the names built so far
        follow; the others are built with the new names when first shown."""
        self.label_names = list(names)
        for i, text in self.anchor_texts.made():
            text.setText(elide(self.label_names[i]))
            text.setToolTip(str(self.label_names[i]))

    def _make_name(self, i: int) -> pg.TextItem:
        name = self.label_names[i]
        text = pg.TextItem(elide(name), anchor=NAME_PLACES[0], border=pg.mkPen(label_color(i), width=1))
        text.setToolTip(str(name))
        font = text.textItem.font()
        font.setPointSizeF(8.5)
        font.setBold(True)
        text.setFont(font)
        text.setZValue(11)
        self._style_name(text)
        text.hide()
        self.view_box.addItem(text, ignoreBounds=True)
        return text

    def _update_mode_availability(self, z_dim) -> None:
        model = self.projection_combo.model()
        exact_row = self.projection_combo.findData("exact-2d")
        model.item(exact_row).setEnabled(z_dim == 2)
        plane_row = self.projection_combo.findData("label-plane")
        model.item(plane_row).setEnabled(len(self.label_names) >= 3)

    def _refit(self, snapshot: LatentSnapshot) -> None:
        picked_z = self._picked_latent()  # read on the map as it was, placed again on the new one
        before = self.projection
        changed = False
        fitted = self._neighbourhood.is_fitted and self._neighbourhood.z_dim == snapshot.mu.shape[1]
        if self.mode == "neighbourhood" and len(snapshot.mu) >= 3:
            self.fitter.request(self._neighbourhood if fitted else NeighbourhoodMap(), snapshot.mu,
                                np.array(snapshot.indices))
        if self.mode == "neighbourhood" and fitted:
            self.projection, changed = self._neighbourhood, True
            self._say_neighbourhood_map()
            self._set_axis_labels("t-SNE 1", "t-SNE 2")
        elif self.mode in ("pca", "neighbourhood") and len(snapshot.mu) >= 2:
            self._pca.update(snapshot.mu)
            self.projection, changed = self._pca, True
            ev = self._pca.explained
            waiting = "PCA until the neighbourhood map's first fit lands · " if self.mode == "neighbourhood" else ""
            self.info_label.setToolTip("")
            self.info_label.setText(f"{waiting}PC1 {ev[0]:.0%} · PC2 {ev[1]:.0%} of the variance")
            self._set_axis_labels("PC 1", "PC 2")
        elif self.mode == "label-plane" and len(snapshot.label_mu) >= 3:
            if self._label_plane is None:
                self._label_plane = LabelPlaneProjection(snapshot.label_mu)
            else:
                self._label_plane.update(snapshot.label_mu)
            self.projection, changed = self._label_plane, True
            a, b, c = (self.label_names[i] for i in self._label_plane.labels)
            self.info_label.setToolTip("")
            self.info_label.setText(f"plane through the label latents {a}, {b}, {c}")
            self._set_axis_labels(f"{a} → {b}", f"toward {c}")
        elif self.mode == "exact-2d":
            self.projection = self._identity
            self.info_label.setToolTip("")
            self.info_label.setText("the latent space itself (z_dim = 2)")
            self._set_axis_labels("z₁", "z₂")
        if self.projection is not before or isinstance(before, (PCAProjection, LabelPlaneProjection)):
            self._place_picked(picked_z)  # (the same neighbourhood map: the point stays where it is)
        if changed:
            self.projectionChanged.emit()
        self._note_map()
        self.shade.request()

    def _fit_landed(self, fitted: NeighbourhoodMap, rows=None) -> None:
        """A background fit is done: the map moves to it (after the drag, if one is going on)."""
        if self.snapshot is None or fitted.z_dim != self.snapshot.mu.shape[1]:
            return  # fitted for another model or dataset
        if interaction.dragging():
            self._landed = (fitted, rows)
            if not self._deferred_timer.isActive():
                self._deferred_timer.start()
            return
        picked_z = self._picked_latent()
        previous, self._neighbourhood = self._neighbourhood, fitted
        self._neighbourhood_rows = rows
        if self.mode != "neighbourhood":
            return
        self.projection = fitted
        first = self.info_label.text().startswith("PCA until")
        self._say_neighbourhood_map()
        self._set_axis_labels("t-SNE 1", "t-SNE 2")
        if picked_z is not None and previous.is_fitted and len(previous.uv) == len(fitted.uv):
            # The same mixture of the same data points' places on the new layout: the point keeps
            # its place among its neighbours and names the same latent while they hold still.
            u, v = previous.carry(np.array([self.picked_uv]), fitted)[0]
            self.picked_uv = self._picked_z_uv = (float(u), float(v))
        else:
            self._place_picked(picked_z)
        self.projectionChanged.emit()
        self._draw()
        self._note_map()
        self.shade.request()
        if first:
            self.view_box.enableAutoRange()  # from the PCA plane's scale to the map's

    def _note_map(self) -> None:
        """Count a change of the map (a plane refitted in place counts; the same map does not)."""
        projection = self.projection
        plane = isinstance(projection, PlaneProjection)
        key = (projection, projection.origin.tobytes() if plane else b"", projection.axes.tobytes() if plane else b"")
        old = self._map_key
        if old is not None and old[0] is key[0] and old[1:] == key[1:]:
            return
        self._map_key = key
        self.map_version += 1
        self.mapChanged.emit()
        self._refresh_picked()

    def _refresh_picked(self) -> None:
        """The clicked point's picture under the current map and weights: the marker is where the
        point is, and the Point dock must describe the latent under it (as a click there would)."""
        if not self.picked_by_click or self.picked_uv is None or interaction.dragging():
            return  # a drag decodes every move itself
        decoded = self.decode_point(*self.picked_uv)
        if decoded is not None:
            self.pickRefreshed.emit(decoded)

    def _picked_latent(self) -> np.ndarray | None:
        """The latent the picked point names (kept as it was picked, so no refit drifts it)."""
        if self.picked_uv is None or self.snapshot is None:
            return None
        if self._picked_z is None or self._picked_z_uv != self.picked_uv:  # set from outside (steering)
            z = self.projection.lift(np.array([self.picked_uv], dtype=np.float64))[0]
            if len(z) != self.snapshot.mu.shape[1]:
                return None
            self._picked_z, self._picked_z_uv = z, self.picked_uv
        return self._picked_z

    def _place_picked(self, picked_z: np.ndarray | None) -> None:
        """The picked point on the (new) map: where its latent is now."""
        if picked_z is None or getattr(self.projection, "z_dim", len(picked_z)) != len(picked_z):
            return
        u, v = self.projection.project(picked_z[None])[0]
        self.picked_uv = self._picked_z_uv = (float(u), float(v))

    def _set_axis_labels(self, bottom: str, left: str) -> None:
        # Setting a label, even the same one, throws away the axis' drawing (~2 ms to redo).
        if self._axis_labels != (bottom, left):
            self._axis_labels = (bottom, left)
            self.plot_item.setLabel("bottom", bottom)
            self.plot_item.setLabel("left", left)

    def _draw(self) -> None:
        snapshot = self.snapshot
        if snapshot is None or snapshot.mu.shape[1] != self.projection.z_dim:
            return
        rows = self._neighbourhood_rows
        if self.projection is self._neighbourhood and rows is not None and np.array_equal(rows, snapshot.indices):
            # The same test images the map was fitted on: each stays at its fitted place until the
            # next fit lands (it accounts for the new latents), so points move once per fit, and a
            # 10,000-point snapshot costs no neighbour search on the GUI thread.
            self._uv = self._neighbourhood.uv
        else:
            self._uv = self.projection.project(snapshot.mu)
        labels = snapshot.labels
        key = (len(labels), hash(np.ascontiguousarray(labels).tobytes()))  # ~10 us for 10,000 labels
        if key != self._labels_key or len(self.scatter.data) != len(labels):
            # A new subset of points: colours per point (~10 ms for 10,000; once per dataset).
            brushes = self._point_brushes
            fallback = pg.mkBrush(128, 128, 128, 160)
            self.scatter.setData(x=self._uv[:, 0], y=self._uv[:, 1],
                                 brush=[brushes[k] if k < len(brushes) else fallback for k in labels.tolist()])
            self._labels_key = key
        else:
            move_points(self.scatter, self._uv[:, 0], self._uv[:, 1])
        anchors = self.projection.project(snapshot.label_mu) if len(snapshot.label_mu) else np.zeros((0, 2))
        if len(anchors) and len(self.anchor_item.data) == len(anchors):
            move_points(self.anchor_item, anchors[:, 0], anchors[:, 1])  # the same stars: colours kept
        else:  # (setData styles every star again: ~40 us each)
            self.anchor_item.setData(x=anchors[:, 0], y=anchors[:, 1], brush=self._anchor_brushes[:len(anchors)])
        self._anchor_uv = anchors
        self._place_names()
        if self.picked_uv is not None:
            self.set_marker(*self.picked_uv)

    def _place_names(self) -> None:
        """Keep the label names from covering each other where label latents lie close together
        on the map (names are a fixed size on screen, so this follows zooms too). With more labels
        than fit (gui/label_names.py), only the names of the labels with most points in view show;
        only those are moved (and built: gui/name_items.py)."""
        shown = self._names_to_show()
        for i, text in self.anchor_texts.made():
            if i not in shown and text.isVisible():
                text.hide()
        placed = []
        for i in sorted(shown):
            text = self.anchor_texts[i]
            u, v = (float(c) for c in self._anchor_uv[i])
            if text.pos().x() != u or text.pos().y() != v:
                text.setPos(u, v)
            if not text.isVisible():
                text.show()
            text.updateTransform()  # the view may have changed before the text heard of it
            for place in NAME_PLACES:
                if tuple(text.anchor) != place:
                    text.setAnchor(place)
                rect = text.mapRectToScene(text.boundingRect())
                if not any(rect.intersects(other) for other in placed):
                    break
            else:  # crowded on every side: above, as usual
                text.setAnchor(NAME_PLACES[0])
                rect = text.mapRectToScene(text.boundingRect())
            placed.append(rect)

    def _names_to_show(self) -> set[int]:
        texts, snap = self.anchor_texts, self.snapshot
        count = min(len(texts), len(self._anchor_uv))
        if snap is None or count == 0:
            return set()
        if len(texts) <= MAX_NAMES:
            return set(range(count))
        if len(self._uv) != len(snap.labels):
            return set(self.shown_names())
        stars = self._anchor_uv[:count]
        r = self.view_box.viewRect()
        counts = points_in_view(self._uv, snap.labels, (r.left(), r.top(), r.right(), r.bottom()), count)
        viewport = (self.plot_widget.width(), self.plot_widget.height())
        box = texts[0].boundingRect()
        box = (box.width(), box.height())
        anchors = view_pixels(self.view_box, self.plot_widget, stars)
        chosen = set(names_to_show(anchors, counts, box_px=box, viewport_px=viewport))
        if not chosen:  # new points the view has not caught up with (its auto-range runs at the next
            # paint): name them as the view that shows them all will, not none until the view changes
            rect = label_bounds(self._uv, stars)
            counts = points_in_view(self._uv, snap.labels, rect, count)
            chosen = set(names_to_show(to_pixels(stars, rect, viewport), counts, box_px=box, viewport_px=viewport))
        return chosen

    def _say_neighbourhood_map(self) -> None:
        # short enough to stay whole beside the Fit button at the window's minimum size
        self.info_label.setText("t-SNE of the latents · grey: far from data")
        self.info_label.setToolTip("A neighbourhood map (t-SNE) of the image latents, refitted as the model "
                                   "learns. Grey areas are far from any point: a picture decoded there is a guess.")

    def _say_fit_failed(self, message: str) -> None:
        self.info_label.setText("⚠ " + message.split(";")[0])  # the first clause stays whole beside Fit
        self.info_label.setToolTip(message)

    def _picked(self, u: float, v: float, _finished: bool) -> None:
        self.picked_by_click = True
        self.picked_uv = (u, v)  # its latent is read from the map when the map is about to change
        self.set_marker(u, v)
        self.pointPicked.emit(u, v)
        decoded = self.decode_point(u, v)
        if decoded is not None:
            self.decoded.emit(decoded)

    def _mouse_moved(self, scene_pos: QPointF) -> None:
        if interaction.dragging() or len(self._uv) == 0 or self.dataset is None or self.snapshot is None \
                or not self.view_box.sceneBoundingRect().contains(scene_pos):
            self._hide_inset()
            return
        p = self.view_box.mapSceneToView(scene_pos)
        px, py = self.view_box.viewPixelSize()
        d2 = ((self._uv[:, 0] - p.x()) / max(px, 1e-12)) ** 2 + ((self._uv[:, 1] - p.y()) / max(py, 1e-12)) ** 2
        i = int(np.argmin(d2))
        if d2[i] > HOVER_RADIUS_PX ** 2:
            self._hide_inset()
            return
        if i != self.hovered_index:
            self._show_inset(i, scene_pos)

    def _hide_inset(self) -> None:
        if self.hovered_index is not None:
            self.hovered_index = None
            self.inset.hide()

    def _show_inset(self, i: int, scene_pos: QPointF) -> None:
        self.hovered_index = i
        row = int(self.snapshot.indices[i])
        label = int(self.snapshot.labels[i])
        image = self.dataset.test_images[row].numpy()  # C x H x W uint8
        if image.shape[0] == 1:
            arr = np.ascontiguousarray(image[0])
            qimage = QImage(arr.data, arr.shape[1], arr.shape[0], arr.strides[0], QImage.Format.Format_Grayscale8)
        else:
            arr = np.ascontiguousarray(image[:3].transpose(1, 2, 0))
            qimage = QImage(arr.data, arr.shape[1], arr.shape[0], arr.strides[0], QImage.Format.Format_RGB888)
        pixmap = QPixmap.fromImage(qimage.copy()).scaled(
            arr.shape[1] * INSET_SCALE, arr.shape[0] * INSET_SCALE, Qt.AspectRatioMode.KeepAspectRatio,
            Qt.TransformationMode.FastTransformation)
        name = self.label_names[label] if label < len(self.label_names) else str(label)
        self.inset_image.setPixmap(pixmap)
        self.inset_caption.setText(f"<b>{name}</b> · #{row}")
        self.inset.adjustSize()
        view_pos = self.plot_widget.mapFromScene(scene_pos)
        x = view_pos.x() + 14
        y = view_pos.y() + 14
        if x + self.inset.width() > self.plot_widget.width():
            x = view_pos.x() - 14 - self.inset.width()
        if y + self.inset.height() > self.plot_widget.height():
            y = view_pos.y() - 14 - self.inset.height()
        self.inset.move(self.plot_widget.mapTo(self, QPoint(int(x), int(y))))
        self.inset.show()
        self.inset.raise_()
