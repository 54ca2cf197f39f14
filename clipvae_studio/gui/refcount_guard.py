"""Keep PySide6's lost references to None, True and False from aborting Python < 3.12.

Measured with PySide6 6.12.0 on CPython 3.11.7: every Signal.emit() called from Python drops one
reference to True, and calls from Qt into Python code (timer slots, pyqtgraph's paint overrides)
drop references to None, about 1,600 a second while the studio trains. When a count reaches
zero CPython aborts ("Fatal Python error: none_dealloc" / "bool_dealloc"): the window died after
a couple of minutes of training, and long test runs died at exit. The bindings are built for
Python 3.12+, where these objects are immortal (PEP 683) and such drops are harmless. On older
CPython we give the three objects a reference count so large that no drop can exhaust it, which
is what 3.12 does for them anyway.
"""
from __future__ import annotations

import ctypes
import sys

_HEADROOM = sys.maxsize // 4


def make_singletons_immortal() -> None:
    if sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return
    for obj in (None, True, False):
        refcount = ctypes.c_ssize_t.from_address(id(obj))  # ob_refcnt is the first field of every object
        if refcount.value < _HEADROOM // 2:  # once is enough (and never overflow)
            refcount.value += _HEADROOM


make_singletons_immortal()
