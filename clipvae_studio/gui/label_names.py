"""Which label names a map shows when there are many labels, and how long names are shortened.

With 40 or 200 labels every star's name cannot be written without the names piling up. The map
names the labels that matter most where the person is looking (most points in view, or the largest
clusters) and skips a name whose box would overlap one already placed; the rest keep their star and
colour, and their name shows on hover. Pure numpy: the map (gui/latent_canvas.py) and the Clusters
dock call it with their own pixel positions.
"""
from __future__ import annotations

import numpy as np

MAX_NAMES = 12  # names on the map at most, however many labels
NAME_CHARS = 20  # names longer than this are elided on the map (the full name goes in the tooltip)


def elide(name: str, max_chars: int = NAME_CHARS) -> str:
    """`name` cut in the middle with an ellipsis when longer than max_chars (both ends are kept:
    'n02085620_Chihuahua' style names differ at either end)."""
    name = str(name)
    if len(name) <= max_chars:
        return name
    head = max_chars // 2
    tail = max_chars - 1 - head
    return name[:head] + "…" + (name[-tail:] if tail else "")


def points_in_view(points_xy, labels, rect, num_labels: int) -> np.ndarray:
    """How many of each label's points lie inside rect = (x0, y0, x1, y1): num_labels counts."""
    xy = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    x0, y0, x1, y1 = rect
    inside = (xy[:, 0] >= min(x0, x1)) & (xy[:, 0] <= max(x0, x1)) & (xy[:, 1] >= min(y0, y1)) & (xy[:, 1] <= max(y0, y1))
    return np.bincount(labels[inside], minlength=num_labels)[:num_labels]


def names_to_show(anchor_px, importance, box_px=(90.0, 18.0), max_names: int = MAX_NAMES,
                  viewport_px=None) -> list[int]:
    """The labels whose names to draw, most important first.

    anchor_px: num_labels x 2 positions of the names (pixels, screen or scene: any units that match
    box_px). importance: num_labels numbers (points in view, cluster size); labels with 0 get no name.
    box_px: the width and height one name takes; a name is skipped when its box would overlap a
    box already placed. viewport_px: (width, height); anchors outside it get no name. At most
    max_names names. With few labels and room for all, every label is named."""
    xy = np.asarray(anchor_px, dtype=np.float64).reshape(-1, 2)
    weight = np.asarray(importance, dtype=np.float64).reshape(-1)
    if len(weight) != len(xy):
        raise ValueError(f"{len(xy)} anchors but {len(weight)} importance values")
    w, h = box_px
    # plain Python over at most max_names chosen boxes: numpy's per-call cost on such tiny arrays
    # made this the dearest step of a 100-label map update
    xs, ys, weights = xy[:, 0].tolist(), xy[:, 1].tolist(), weight.tolist()
    finite = np.all(np.isfinite(xy), axis=1).tolist()
    chosen: list[int] = []
    for i in np.argsort(-weight, kind="stable").tolist():
        if len(chosen) >= max_names or weights[i] <= 0:
            break
        if not finite[i]:
            continue
        x, y = xs[i], ys[i]
        if viewport_px is not None and not (0 <= x <= viewport_px[0] and 0 <= y <= viewport_px[1]):
            continue
        if any(abs(xs[j] - x) < w and abs(ys[j] - y) < h for j in chosen):
            continue
        chosen.append(i)
    return chosen


def bounds(*point_sets) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) around every finite point of the given N x 2 arrays (a unit square if none)."""
    xy = np.concatenate([np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in point_sets])
    xy = xy[np.all(np.isfinite(xy), axis=1)]
    if len(xy) == 0:
        return 0.0, 0.0, 1.0, 1.0
    (x0, y0), (x1, y1) = xy.min(0), xy.max(0)
    return float(x0), float(y0), float(max(x1, x0 + 1e-9)), float(max(y1, y0 + 1e-9))


def to_pixels(points_xy, rect, viewport_px) -> np.ndarray:
    """Map positions (y up) to the pixels (y down) of a viewport that shows rect = (x0, y0, x1, y1)."""
    xy = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
    x0, y0, x1, y1 = rect
    w, h = viewport_px
    return np.column_stack([(xy[:, 0] - x0) / (x1 - x0) * w, (y1 - xy[:, 1]) / (y1 - y0) * h])
