"""The process side of the neighbourhood map's live refits (docs/performance.md, "the latent map").

A t-SNE refit is Python and numpy for a fraction of a second to seconds; in a thread of the GUI
process it shares the GIL with the event loop (the GUI's lag p99 while training went from ~26 ms
to ~40 ms). It runs here instead, in one long-lived worker process started with the 'spawn'
method (gui/map_fitter.py owns it), at a lower priority so training and the GUI win the cores.

The worker builds the whole map (layout, trees, triangulation) and sends it back pickled: the
GUI process only unpickles it (well under a millisecond), where building it takes tens of ms.

Cancelling: the owner keeps a shared integer, the number of the latest request it still wants;
a fit polls it between optimisation steps and stops early once it differs from its own number.
Nothing here imports Qt or torch.
"""
from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from .neighbourhood_map import NeighbourhoodMap

WORKER_NICE = 10  # niceness added to the worker: ~1/10 of a core against a busy nice-0 thread, all of an idle one

_wanted = None  # the owner's shared integer (multiprocessing.Value), set by start_worker


def start_worker(wanted, nice: int = WORKER_NICE) -> None:
    """The worker's initializer: remember the shared request number, step back, one BLAS thread."""
    global _wanted
    _wanted = wanted
    try:
        os.nice(nice)
    except (AttributeError, OSError):  # no nice on this platform, or not allowed: run at normal priority
        pass
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(limits=1)  # the SVDs here are 2 x 2 to 20 x 20: spare BLAS threads would only spin


def new_pool(number: int = 0):
    """(a one-worker pool that runs fit_map, the shared request number it reads, set to `number`).
    spawn, not fork: a fork of a process running Qt and torch threads can deadlock."""
    context = multiprocessing.get_context("spawn")
    wanted = context.Value("q", number)
    return ProcessPoolExecutor(max_workers=1, mp_context=context, initializer=start_worker, initargs=(wanted,)), wanted


def _is_stale(number: int) -> bool:
    return _wanted is not None and _wanted.value != number


def fit_map(number: int, base_z: np.ndarray | None, base_uv: np.ndarray | None,
            z: np.ndarray) -> tuple[int, NeighbourhoodMap | None, float, int]:
    """Fit a map on latents z, warm from the layout (base_z, base_uv) when it places as many points
    of as many dimensions, cold otherwise. Returns (number, map or None if the owner stopped
    wanting it, seconds, this process's id)."""
    started = time.perf_counter()
    base = NeighbourhoodMap()
    if base_z is not None and base_uv is not None and base_z.shape == np.shape(z):
        base.z, base.uv = np.asarray(base_z, np.float64), np.asarray(base_uv, np.float64)
    fitted = base.fitted(z, should_stop=lambda: _is_stale(number))
    if _is_stale(number):
        fitted = None  # no use sending a map nobody will draw
    return number, fitted, time.perf_counter() - started, os.getpid()
