"""One name item per label, made the first time it is asked for.

A map shows at most a dozen label names however many labels there are (gui/label_names.py), yet
one pyqtgraph TextItem per label used to be made and moved on every snapshot: with 100 labels that
was a third of the window's start-up on the GUI side and half of each map update. The sequence
below still answers `items[i]` for every label i; only the names ever shown (and those a caller
asks for) are built.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Generic, TypeVar

import numpy as np

Item = TypeVar("Item")


class LazyItems(Sequence, Generic[Item]):
    """items[i] = make(i), built on first access and kept; made() lists only those built so far."""

    def __init__(self, count: int, make: Callable[[int], Item]):
        self._items: list[Item | None] = [None] * int(count)
        self._make = make

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        item = self._items[i]
        if item is None:
            item = self._items[i] = self._make(range(len(self._items))[i])
        return item

    def made(self) -> Iterator[tuple[int, Item]]:
        """(index, item) for the items built so far, in index order (builds none)."""
        return ((i, item) for i, item in enumerate(self._items) if item is not None)


def view_pixels(view_box, plot_widget, xy) -> np.ndarray:
    """N x 2 positions in view_box's coordinates -> the pixels of plot_widget's viewport where
    they are drawn now (one transform for all points, not a Qt call per point)."""
    m = view_box.childTransform() * view_box.sceneTransform() * plot_widget.viewportTransform()
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    return xy @ np.array([[m.m11(), m.m12()], [m.m21(), m.m22()]]) + np.array([m.dx(), m.dy()])
