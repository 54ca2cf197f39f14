"""A tiny event mechanism for Qt-free models: `event.connect(callback)`, `event.emit(*args)`.

Callbacks run in the thread that emits; the GUI's adapter (gui/studio_signals.py) arranges for
the studio to emit on the GUI thread."""
from __future__ import annotations

from typing import Callable


class Event:
    def __init__(self, name: str = ""):
        self.name = name
        self._callbacks: list[Callable] = []

    def connect(self, callback: Callable) -> Callable:
        self._callbacks.append(callback)
        return callback

    def disconnect(self, callback: Callable) -> None:
        if callback in self._callbacks:
            self._callbacks.remove(callback)

    def emit(self, *args) -> None:
        for callback in list(self._callbacks):
            callback(*args)


class EventGroup:
    """Named events, e.g. `studio.events.state.connect(...)`."""

    def __init__(self, *names: str):
        self.names = names
        for name in names:
            setattr(self, name, Event(name))
