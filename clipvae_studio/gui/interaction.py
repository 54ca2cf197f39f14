"""Who has the GUI thread right now: a person dragging on the latent map comes first.

While a drag is in progress (and for a moment after each move), the live redraws that training
triggers (loss curves, the scatter stream) wait: each costs 5-20 ms of the GUI thread, and one
landing between two mouse moves is a visible stutter under the pointer. They catch up as soon
as the pointer rests.
"""
from __future__ import annotations

import time

HOLD_S = 0.25  # how long after the last move the map still counts as being dragged

_busy_until = 0.0


def mark_dragging() -> None:
    """Called on every press and move of a drag on the map."""
    global _busy_until
    _busy_until = time.perf_counter() + HOLD_S


def dragging() -> bool:
    return time.perf_counter() < _busy_until


def release() -> None:
    """The drag ended: redraws may run at once."""
    global _busy_until
    _busy_until = 0.0
