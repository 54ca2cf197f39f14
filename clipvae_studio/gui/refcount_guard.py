"""Keep PySide6's lost references to None, True and False from aborting Python < 3.12.

Measured with PySide6 6.12.0 on CPython 3.11.7: every Signal.emit() called from Python drops one
reference to True, and calls from Qt into Python code (timer slots, pyqtgraph's paint overrides)
drop references to None, about 1,600 a second while the studio trains. When a count reaches
zero CPython aborts ("Fatal Python error: none_dealloc" / "bool_dealloc"): the window died after
a couple of minutes of training, and 1,000 emits of a bare signal abort a fresh interpreter.
The bindings are built for Python 3.12+, where these objects are immortal (PEP 683) and such
drops are harmless. On older CPython, where the bindings in use are seen to drop references,
we give the three objects a reference count so large that no drop can exhaust it, which is
what 3.12 does for them anyway.

Called once at start-up (gui/app.py: prepare_process; tests/conftest.py), not on import.
"""
from __future__ import annotations

import ctypes
import sys

_HEADROOM = sys.maxsize // 4
PROBE_EMITS = 64


def may_need_guard(version_info=sys.version_info, implementation: str = sys.implementation.name) -> bool:
    """Only CPython before 3.12 counts references to None/True/False (3.12 made them immortal)."""
    return implementation == "cpython" and tuple(version_info[:2]) < (3, 12)


def bindings_drop_references(emits: int = PROBE_EMITS) -> bool:
    """Emit a bare Qt signal `emits` times and see whether True lost about as many references
    (PySide6 6.12 on CPython 3.11 does; a sound build leaves the count as it was)."""
    from PySide6.QtCore import QObject, Signal

    class _Probe(QObject):
        ping = Signal()

    probe = _Probe()
    before = sys.getrefcount(True)
    for _ in range(emits):
        probe.ping.emit()
    return before - sys.getrefcount(True) >= emits // 2


def make_singletons_immortal() -> None:
    for obj in (None, True, False):
        refcount = ctypes.c_ssize_t.from_address(id(obj))  # ob_refcnt is the first field of every object
        if refcount.value < _HEADROOM // 2:  # once is enough (and never overflow)
            refcount.value += _HEADROOM


def guard_if_needed() -> bool:
    """Apply the guard where this interpreter and these bindings need it. True if applied."""
    if may_need_guard() and bindings_drop_references():
        make_singletons_immortal()
        return True
    return False
