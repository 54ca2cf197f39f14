"""MapFitter through its real worker process: a fit arrives from another process, a fit asked for
an older model or dataset is dropped even when it finishes, closing the window ends the worker,
and a worker that dies is replaced with a message instead of leaving a dead map."""
import os
import signal
import time

import numpy as np
import pytest
from PySide6.QtWidgets import QWidget

pytest.importorskip("pytestqt")

from clipvae_studio.core import map_worker  # noqa: E402
from clipvae_studio.core.neighbourhood_map import NeighbourhoodMap  # noqa: E402
from clipvae_studio.gui.map_fitter import MapFitter  # noqa: E402

WORKER_TIMEOUT_MS = 120_000  # the worker's start (imports) and a cold fit on a busy 2-core machine


def blobs(n_per=40, classes=3, dim=6, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dim)) * 6
    return np.concatenate([c + rng.normal(size=(n_per, dim)) for c in centres])


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process now has the number
        return False
    return True


@pytest.fixture
def fitter(qtbot):
    window = QWidget()
    qtbot.addWidget(window)  # closed at the end of the test: that ends the worker
    yield MapFitter(window)
    del window  # held until here: the fitter is its child


def test_a_fit_arrives_from_the_worker_process(qtbot, fitter):
    z = blobs()
    with qtbot.waitSignal(fitter.fitted, timeout=WORKER_TIMEOUT_MS) as landed:
        fitter.request(NeighbourhoodMap(), z, key="rows")
    fitted, key = landed.args
    assert key == "rows" and isinstance(fitted, NeighbourhoodMap)
    assert fitted.uv.shape == (len(z), 2) and np.array_equal(fitted.z, z)
    assert fitted.lift(fitted.uv[:5]) == pytest.approx(z[:5])  # the map came whole: trees and triangles
    assert fitter.worker_pid not in (None, os.getpid()) and alive(fitter.worker_pid)
    if hasattr(os, "getpriority"):  # it steps back so that training and the GUI win the cores
        ours = os.getpriority(os.PRIO_PROCESS, 0)
        assert os.getpriority(os.PRIO_PROCESS, fitter.worker_pid) == min(19, ours + map_worker.WORKER_NICE)


def test_a_fit_asked_before_a_cancel_is_dropped_even_when_it_finishes(qtbot, fitter):
    landed = []
    fitter.fitted.connect(lambda fitted, key: landed.append(key))
    fitter.request(NeighbourhoodMap(), blobs(seed=1), key="old model")
    deadline = time.monotonic() + WORKER_TIMEOUT_MS / 1000
    while not fitter.future.done() and time.monotonic() < deadline:  # no events: its map cannot land yet
        time.sleep(0.05)
    assert fitter.future.done() and fitter.future.result()[1] is not None  # a whole map came back
    fitter.cancel()  # another model: the finished map must not be drawn
    with qtbot.waitSignal(fitter.fitted, timeout=WORKER_TIMEOUT_MS):
        fitter.request(NeighbourhoodMap(), blobs(dim=4, seed=2), key="new model")
    assert landed == ["new model"]


def test_closing_the_window_ends_the_worker(qtbot, fitter):
    with qtbot.waitSignal(fitter.fitted, timeout=WORKER_TIMEOUT_MS):
        fitter.request(NeighbourhoodMap(), blobs())
    pid = fitter.worker_pid
    assert alive(pid)
    fitter.parent().close()
    assert fitter.pool is None
    qtbot.waitUntil(lambda: not alive(pid), timeout=30_000)
    fitter.request(NeighbourhoodMap(), blobs())  # a snapshot still on its way to the closed window
    assert fitter.pool is None and not fitter.busy  # starts no new worker


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_a_worker_that_dies_is_replaced_with_a_message(qtbot, fitter):
    z = blobs()
    with qtbot.waitSignal(fitter.fitted, timeout=WORKER_TIMEOUT_MS):
        fitter.request(NeighbourhoodMap(), z)
    first = fitter.worker_pid
    os.kill(first, signal.SIGKILL)
    qtbot.waitUntil(lambda: not alive(first), timeout=30_000)
    messages = []
    fitter.failed.connect(messages.append)
    with qtbot.waitSignal(fitter.fitted, timeout=WORKER_TIMEOUT_MS) as landed:
        fitter.request(NeighbourhoodMap(), z, key="after the crash")
    assert len(messages) == 1 and "stopped unexpectedly" in messages[0]
    assert landed.args[1] == "after the crash" and fitter.worker_pid not in (None, first)
