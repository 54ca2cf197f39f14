"""The "Clusters" dock (clusterView): the reference's t-SNE figure of image latents together with
the label latents, computed in the background with progress and cancel (core/clusters.py).
Clicking a point shows that test image, its reconstruction and CLIP's scores for it."""
from __future__ import annotations

import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QHBoxLayout, QLabel, QProgressBar, QPushButton, QSpinBox, QVBoxLayout, QWidget)

from ..label_names import MAX_NAMES, elide, names_to_show
from ..name_items import LazyItems, view_pixels
from ..palette import label_brushes, label_color
from ..style import current_theme, style_plot
from .image_view import PixelImageView
from .score_bars import ScoreBars


class ClusterView(QWidget):
    embedded = Signal()  # a new embedding is drawn
    pointShown = Signal(int)  # test-split row of the clicked point

    def __init__(self, explorer, parent=None):
        super().__init__(parent)
        self.setObjectName("clusterView")
        self.explorer = explorer
        self.job = None
        self.embedding = None
        self.embedded_step = None
        self.shown_row: int | None = None
        self.last_seconds = None

        self.count_spin = QSpinBox()
        self.count_spin.setObjectName("clusterCount")
        self.count_spin.setRange(50, 10000)
        self.count_spin.setSingleStep(500)
        self.count_spin.setValue(2000)
        self.count_spin.setToolTip("Test images to embed (t-SNE takes about a second per 200 on a small CPU)")
        self.compute_button = QPushButton("Compute t-SNE")
        self.compute_button.setObjectName("clusterCompute")
        self.compute_button.clicked.connect(self.compute)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("clusterCancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.progress = QProgressBar()
        self.progress.setObjectName("clusterProgress")
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        self.progress.setMaximumWidth(140)
        self.status = QLabel("t-SNE of image latents (dots) and label latents (stars)")
        self.status.setObjectName("clusterStatus")
        self.status.setWordWrap(True)
        controls = QHBoxLayout()
        controls.addWidget(QLabel("Points"))
        controls.addWidget(self.count_spin)
        controls.addWidget(self.compute_button)
        controls.addWidget(self.cancel_button)
        controls.addWidget(self.progress)
        controls.addStretch(1)

        self.plot_widget = pg.PlotWidget()
        self.plot_widget.setObjectName("clusterPlot")
        self.plot_item = self.plot_widget.getPlotItem()
        self.plot_item.hideAxis("left")
        self.plot_item.hideAxis("bottom")
        self.plot_item.hideButtons()
        self.plot_item.setAspectLocked(True)
        # One item for the dots of every label, coloured per dot; the names are built when first
        # shown (gui/name_items.py): nothing here grows with the label count until a t-SNE is drawn.
        self.scatter = pg.ScatterPlotItem(pen=None, size=6, pxMode=True)
        self.scatter.sigClicked.connect(self._clicked)
        self.plot_item.addItem(self.scatter)
        self.plot_item.getViewBox().sigTransformChanged.connect(lambda *_: self._show_names())
        self.label_names: list[str] = []
        self.anchor_item = pg.ScatterPlotItem(size=18, symbol="star", pxMode=True)
        self.anchor_item.setZValue(10)
        self.plot_item.addItem(self.anchor_item)
        self.anchor_texts: LazyItems[pg.TextItem] = LazyItems(0, self._make_name)
        self.highlight = pg.ScatterPlotItem(size=16, symbol="o", pxMode=True, brush=None)
        self.highlight.setZValue(20)
        self.plot_item.addItem(self.highlight)
        for overlay in (self.anchor_item, self.highlight):
            overlay.setEnabled(False)  # pyqtgraph skips disabled items: a click on a dot under a star reaches the dot

        self.original_view = PixelImageView("clusterOriginal", min_side=84)
        self.reconstruction_view = PixelImageView("clusterReconstruction", min_side=84)
        self.scores = ScoreBars("clusterScores")
        self.detail_caption = QLabel("Click a point")
        self.detail_caption.setObjectName("clusterDetailCaption")
        self.detail_caption.setWordWrap(True)
        pair = QHBoxLayout()
        for title, view in (("image", self.original_view), ("reconstruction", self.reconstruction_view)):
            column = QVBoxLayout()
            caption = QLabel(title)
            caption.setStyleSheet("color: gray")
            column.addWidget(caption)
            column.addWidget(view, 1)
            pair.addLayout(column)
        details = QVBoxLayout()
        details.addLayout(pair, 2)
        details.addWidget(self.detail_caption)
        details.addWidget(self.scores, 3)
        body = QHBoxLayout()
        body.addWidget(self.plot_widget, 3)
        body.addLayout(details, 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 4)
        layout.addLayout(controls)
        layout.addWidget(self.status)
        layout.addLayout(body, 1)
        self.apply_theme()

    # --- computing ---------------------------------------------------------------------------
    def compute(self) -> None:
        from ...core.clusters import cluster_input, embed_clusters  # torch: not needed to show the window

        model, dataset = self.explorer.model, self.explorer.window.dataset
        if model is None or dataset is None or len(dataset.test_images) < 5:
            self.status.setText("Needs a model and a dataset with a test split")
            return
        self.cancel()
        count = min(self.count_spin.value(), len(dataset.test_images))
        images, labels = dataset.test_images, dataset.test_labels
        step = getattr(self.explorer.window.trainer, "step_count", None)
        started = time.perf_counter()

        def work(should_stop, progress):
            data = cluster_input(model, images, labels, count)
            return embed_clusters(data, progress=progress, should_stop=should_stop), time.perf_counter() - started

        self.progress.setValue(0)
        self.compute_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status.setText(f"Embedding {count} image latents and {model.num_labels} label latents…")
        self.embedded_step = step
        self.job = self.explorer.runner.submit(work, self._computed, self._failed,
                                               lambda f: self.progress.setValue(int(100 * f)))

    def cancel(self) -> None:
        if self.job is not None:
            self.explorer.runner.cancel(self.job)
            self.job = None
            self.status.setText("Cancelled")
        self.progress.setValue(0)  # a cancelled run has no progress to show
        self.compute_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    def _failed(self, message: str) -> None:
        self.job = None
        self.compute_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.status.setText("t-SNE failed: " + message.splitlines()[0])

    def _computed(self, result) -> None:
        self.job = None
        self.embedding, self.last_seconds = result
        self.compute_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.progress.setValue(100)
        where = f" at step {self.embedded_step}" if self.embedded_step is not None else ""
        self.status.setText(f"{len(self.embedding.image_xy)} image latents (dots) and the label latents (stars), "
                            f"directions only, embedded by t-SNE{where} in {self.last_seconds:.1f} s. "
                            "Click a dot to see its image.")
        self._draw()
        self.embedded.emit()

    # --- drawing -------------------------------------------------------------------------------------
    def set_label_names(self, names) -> None:
        for _, text in self.anchor_texts.made():
            self.plot_item.removeItem(text)
        self.label_names = list(names)
        self.anchor_texts = LazyItems(len(self.label_names), self._make_name)
        self.scores.set_label_names(self.label_names)
        self.clear()

    def _make_name(self, i: int) -> pg.TextItem:
        name = self.label_names[i]
        text = pg.TextItem(elide(name), anchor=(0.5, 1.3), border=pg.mkPen(label_color(i), width=1.5),
                           fill=pg.mkBrush(255, 255, 255, 190))
        text.setToolTip(str(name))
        text.setColor("#111111")
        text.setZValue(11)
        text.hide()
        self.plot_item.addItem(text)
        return text

    def forget_embedding(self) -> None:
        """A new model is current: the embedding (and its "at step N") described the old one."""
        self.cancel()
        self.clear()
        self.embedded_step = None
        self.status.setText("t-SNE of image latents (dots) and label latents (stars)")
        self.original_view.clear_image()
        self.reconstruction_view.clear_image()
        self.scores.clear_scores()
        self.detail_caption.setText("Click a point")
        self.shown_row = None
        dataset = self.explorer.window.dataset
        if dataset is not None:  # never offer more points than the test split has
            test_count = len(dataset.test_images)
            self.count_spin.setMaximum(max(self.count_spin.minimum(), test_count))
            self.count_spin.setValue(min(2000, test_count))

    def clear(self) -> None:
        self.embedding = None
        self.scatter.setData(x=[], y=[])
        self.anchor_item.setData(x=[], y=[])
        self.highlight.setData(x=[], y=[])
        for _, text in self.anchor_texts.made():
            text.hide()

    def _draw(self) -> None:
        e = self.embedding
        brushes = label_brushes(len(self.label_names))
        fallback = pg.mkBrush(128, 128, 128, 160)
        self.scatter.setData(x=e.image_xy[:, 0], y=e.image_xy[:, 1], data=np.arange(len(e.image_xy)),
                             brush=[brushes[k] if k < len(brushes) else fallback for k in e.labels.tolist()])
        n = min(len(e.label_xy), len(self.anchor_texts))
        self.anchor_item.setData(x=e.label_xy[:n, 0], y=e.label_xy[:n, 1], brush=label_brushes(n, 255),
                                 pen=pg.mkPen("#202020", width=1.3))
        self.plot_item.autoRange()
        self._show_names()

    def _show_names(self) -> None:
        """Every label's name with few labels; with many, those of the largest clusters in view
        whose names do not cover one another (gui/label_names.py), again after each zoom or pan."""
        e = self.embedding
        n = 0 if e is None else min(len(e.label_xy), len(self.anchor_texts))
        if n <= MAX_NAMES:
            shown = set(range(n))
        else:
            view_box = self.plot_item.getViewBox()
            r = view_box.viewRect()
            stars = e.label_xy[:n]
            inside = (stars[:, 0] >= r.left()) & (stars[:, 0] <= r.right()) & (stars[:, 1] >= r.top()) \
                & (stars[:, 1] <= r.bottom())
            sizes = np.bincount(np.asarray(e.labels, dtype=np.int64), minlength=n)[:n] * inside
            box = self.anchor_texts[0].boundingRect()
            viewport = (self.plot_widget.width(), self.plot_widget.height())
            shown = set(names_to_show(view_pixels(view_box, self.plot_widget, stars), sizes,
                                      box_px=(box.width(), box.height()), viewport_px=viewport))
        for i, text in self.anchor_texts.made():
            if i not in shown and text.isVisible():
                text.hide()
        for i in sorted(shown):
            text = self.anchor_texts[i]
            text.setPos(float(e.label_xy[i, 0]), float(e.label_xy[i, 1]))
            text.show()

    def _clicked(self, _item, points, ev=None) -> None:
        if not len(points):
            return
        nearest = points[0]
        if ev is not None:  # the dot nearest the pointer, of any label, when dots overlap
            p = ev.pos()
            nearest = min(points, key=lambda s: (s.pos().x() - p.x()) ** 2 + (s.pos().y() - p.y()) ** 2)
        self.show_point(int(nearest.data()))

    def show_point(self, k: int) -> None:
        """Show embedded point k: its test image, the reconstruction and CLIP's scores."""
        from ...core.clusters import image_details  # torch: not needed to show the window

        e, model, dataset = self.embedding, self.explorer.model, self.explorer.window.dataset
        if e is None or model is None:
            return
        row = int(e.indices[k])
        shown = image_details(model, dataset.test_images, row)
        self.original_view.set_image(shown.image)
        self.reconstruction_view.set_image(shown.reconstruction)
        self.scores.set_scores(shown.scores)
        truth = int(dataset.test_labels[row])
        self.detail_caption.setText(f"test image #{row}, labelled <b>{self.label_names[truth]}</b>")
        self.highlight.setData(x=[e.image_xy[k, 0]], y=[e.image_xy[k, 1]],
                               pen=pg.mkPen("#ffffff" if current_theme() == "dark" else "#111111", width=2.5))
        self.shown_row = row
        self.pointShown.emit(row)

    def apply_theme(self) -> None:
        style_plot(self.plot_widget)
        self.scores.apply_theme()
