"""Every place the studio reaches into pyqtgraph's private parts, in one module.

Each is a speed workaround on the latent map (docs/architecture.md, "the workarounds and why").
They rely on names that are not pyqtgraph's public API; these exist in 0.13.3 and 0.14.0, the
range pyproject.toml allows (the suite runs on 0.14.0). A newer pyqtgraph that renames them breaks
only the functions here.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg


def auto_range_in_progress(view_box: pg.ViewBox) -> bool:
    """ViewBox._updatingRange: True while the view box is itself changing its range; an
    auto-range update must then run, or the range change would be left half done."""
    return bool(view_box._updatingRange)


def skip_auto_range(view_box: pg.ViewBox) -> None:
    """ViewBox._autoRangeNeedsUpdate: mark the queued auto-range as done without running it
    (the view holds still while live snapshots move the points a little)."""
    view_box._autoRangeNeedsUpdate = False


def forget_zoom_target(view_box: pg.ViewBox) -> None:
    """ViewBox._resetTarget: what pyqtgraph's own pan does first, so a pan by hand is not undone
    by the target range of an earlier zoom."""
    view_box._resetTarget()


def scatter_pixel_padding(item: pg.ScatterPlotItem) -> float:
    """ScatterPlotItem._maxSpotPxWidth: the widest symbol in pixels; the item's bounding box
    grows by it, so a cached box must be recomputed when it changes."""
    return item._maxSpotPxWidth


def move_points(item: pg.ScatterPlotItem, x: np.ndarray, y: np.ndarray) -> None:
    """New positions for a scatter's points. When the count is unchanged (the snapshot subset is
    fixed), write them into the item's record array (ScatterPlotItem.data) in place: setData would
    look every point's symbol up again in Python (~1 ms per 1,000 points) although no style
    changed. Then do what setData does after new data: drop the cached bounds
    (ScatterPlotItem.bounds) and tell the view."""
    data = getattr(item, "data", None)
    if data is None or len(data) != len(x) or len(x) == 0 or not {"x", "y"} <= set(data.dtype.names or ()):
        item.setData(x=x, y=y)
        return
    data["x"] = x
    data["y"] = y
    item.prepareGeometryChange()
    item.informViewBoundsChanged()
    item.bounds = [None, None]
    item.invalidate()
    item.sigPlotChanged.emit(item)


def skip_hover_while_dragging(scene: pg.GraphicsScene) -> None:
    """Replace GraphicsScene.sendHoverEvents (and read GraphicsScene.dragItem): pyqtgraph looks up
    the items under the pointer on every move, also mid-drag, when it lets none of them accept
    the hover: ~1.5 ms of each drag move on the map. The hover that starts a drag still runs (it
    names the item that gets the drag), and so does the exit-only hover."""
    send_hover_events = scene.sendHoverEvents

    def hover_unless_dragging(ev, exitOnly=False):
        if exitOnly or not ev.buttons() or scene.dragItem is None:
            send_hover_events(ev, exitOnly)

    scene.sendHoverEvents = hover_unless_dragging
