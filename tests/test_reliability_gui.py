"""Reliability through the window: a SIGKILLed session is offered back and resumes exactly; bad
files and folders get a message and leave the model alone; divergence stops with a message and
can be recovered from; a storm of toolbar clicks ends in a consistent state."""
import os
import pickle
import random
import subprocess
import sys
import textwrap
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("pytestqt")

from PySide6.QtCore import Qt, QtMsgType, qInstallMessageHandler  # noqa: E402
from PySide6.QtWidgets import QFileDialog, QMessageBox  # noqa: E402

from clipvae_studio.core import preset  # noqa: E402
from clipvae_studio.core.studio import BUSY_STATES  # noqa: E402
from clipvae_studio.core.idx import write_idx  # noqa: E402
from clipvae_studio.gui import MainWindow  # noqa: E402
from qt_helpers import MessageRecorder, action, open_window  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
WAIT_MS = 60_000  # generous: the machine is shared
SMALL = dict(width=16, depth=1, snapshot_size=200, eval_every_steps=10**6)
CONTROLS = ("actionStart", "actionPause", "actionStop", "actionStep", "actionReset")


@pytest.fixture(autouse=True)
def own_home(tmp_path, monkeypatch):
    """Each test gets its own settings and recovery folder: a dataset opened here must not be
    reopened by the next test's window (the window restores the last dataset at start-up)."""
    home = tmp_path / "home"
    monkeypatch.setenv("CLIPVAE_STUDIO_HOME", str(home))
    return home


def make_window(qtbot, dataset, **config):
    return open_window(qtbot, dataset, **{**SMALL, **config})


class Messages(MessageRecorder):
    def __init__(self, answer=True):
        super().__init__(answer)

    def of_kind(self, *kinds):
        return [c for c in self.calls if c["kind"] in kinds]


@pytest.fixture
def qt_warnings():
    seen = []

    def handler(mode, context, message):
        if mode in (QtMsgType.QtWarningMsg, QtMsgType.QtCriticalMsg, QtMsgType.QtFatalMsg) \
                and "propagateSizeHints" not in message:  # the offscreen platform's own notice
            seen.append(message)

    previous = qInstallMessageHandler(handler)
    yield seen
    qInstallMessageHandler(previous)


def weights(window) -> dict:
    return {k: v.detach().clone() for k, v in window.trainer.model.state_dict().items()}


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def settle(qtbot, window):
    """Wait until the worker and the window agree that nothing runs."""
    qtbot.waitUntil(lambda: not window.worker.busy and window.state not in BUSY_STATES, timeout=WAIT_MS)


# --- crash recovery -----------------------------------------------------------------------------
CRASHING_SESSION = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r})
    import torch
    torch.set_num_threads(1)
    from clipvae_studio.core import preset
    from clipvae_studio.gui.app import create_application
    from clipvae_studio.gui.main_window import MainWindow
    from PySide6.QtGui import QAction
    app = create_application()
    window = MainWindow(config=preset("studio").with_values(**{small!r}))
    window.show()
    window.findChild(QAction, "actionStart").trigger()
    app.exec()
""")


def test_sigkilled_session_is_offered_back_and_resumes_exactly(qtbot, mnist5k, own_home, monkeypatch):
    home = own_home
    env = dict(os.environ, CLIPVAE_STUDIO_HOME=str(home), CLIPVAE_STUDIO_AUTOSAVE_S="0.5",
               QT_QPA_PLATFORM="offscreen", OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-c", CRASHING_SESSION.format(root=str(ROOT), small=SMALL)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    recovery = home / "recovery"
    try:
        deadline = time.monotonic() + 120
        while not list(recovery.glob("recovery-*.json")):  # the sidecar is written after the checkpoint
            assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
            assert time.monotonic() < deadline, "no autosave appeared"
            time.sleep(0.2)
        time.sleep(1.2)  # let it train on and autosave again: the newest autosave must be the one offered
    finally:
        proc.kill()  # SIGKILL: no chance to clean anything up
        proc.wait(30)
    assert proc.returncode == -9
    checkpoints = list(recovery.glob("recovery-*.pt"))
    assert len(checkpoints) == 1
    saved = torch.load(checkpoints[0], weights_only=True)
    assert saved["step"] > 0

    monkeypatch.delenv("CLIPVAE_STUDIO_AUTOSAVE_S", raising=False)
    window = MainWindow(dataset=mnist5k)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window.recovery.offer_box is not None, timeout=WAIT_MS)
    box = window.recovery.offer_box
    assert isinstance(box, QMessageBox) and box.isVisible()
    assert f"{saved['step']:,} steps" in box.text() and "mnist5k" in box.text()
    assert window.trainer.step_count == 0  # nothing happens until the user answers
    qtbot.mouseClick(box.button(QMessageBox.StandardButton.Yes), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.trainer.step_count == saved["step"], timeout=WAIT_MS)

    trainer = window.trainer
    assert trainer.history["total"] == saved["history"]["total"]
    curve = window.loss_plot.curves["total"]  # the plot shows the restored history (redrawn on a timer)
    qtbot.waitUntil(lambda: curve.xData is not None and len(curve.xData) > 0, timeout=WAIT_MS)
    optimizer = trainer.optimizer.state_dict()
    assert optimizer["param_groups"] == saved["optimizer"]["param_groups"]
    for index, slots in saved["optimizer"]["state"].items():
        for name, value in slots.items():
            assert torch.equal(torch.as_tensor(optimizer["state"][index][name]), torch.as_tensor(value))
    assert same_weights({k: v for k, v in trainer.model.state_dict().items()}, saved["model"])
    assert window.isWindowModified()  # restored work is unsaved work

    # Training continues from the restored step, and what it autosaves supersedes the old file.
    action(window, "actionStart").trigger()
    qtbot.waitUntil(lambda: window.trainer.step_count >= saved["step"] + 5, timeout=WAIT_MS)
    action(window, "actionStop").trigger()
    settle(qtbot, window)
    assert window.trainer.history["step"][: saved["step"]] == saved["history"]["step"]
    own = window.recovery.session.checkpoint
    assert torch.load(own, weights_only=True)["step"] == window.trainer.step_count  # saved at the stop
    assert window.save_checkpoint_to(own_home / "kept.pt")  # once saved by the user, closing leaves nothing
    window.close()
    assert not list(recovery.glob("recovery-*")) and not list(recovery.glob("session-*"))


def test_closing_with_unsaved_training_keeps_it_for_the_next_launch(qtbot, mnist5k, own_home, monkeypatch):
    window = make_window(qtbot, mnist5k)
    action(window, "actionStep").trigger()
    qtbot.waitUntil(lambda: window.trainer.step_count == 1, timeout=WAIT_MS)
    trained = weights(window)
    window.close()
    recovery = own_home / "recovery"
    lock = next(recovery.glob("session-*.lock"))
    lock.write_text(lock.read_text().replace('"token": "', '"token": "next launch sees another process '))

    messages = Messages()
    monkeypatch.setattr(MainWindow, "show_message", lambda self, *a, **k: messages(*a, **k))
    again = MainWindow(dataset=mnist5k)
    qtbot.addWidget(again)
    offer = _wait_for_message(qtbot, messages, "question")
    assert "closed last time" in offer["text"] and "without saving" in offer["text"]
    offer["on_answer"](True)
    assert again.trainer.step_count == 1 and same_weights(weights(again), trained)


def small_checkpoint(path, dataset, steps=7):
    from clipvae_studio.core import Trainer, save_trainer

    trainer = Trainer(preset("studio").with_values(**SMALL), dataset, eval_size=100)
    trainer.run(max_steps=steps)
    return save_trainer(path, trainer)


def test_declining_the_offer_deletes_the_autosave(qtbot, mnist5k, own_home, monkeypatch):
    home = own_home
    (home / "recovery").mkdir(parents=True)
    small_checkpoint(home / "recovery" / "recovery-dead.pt", mnist5k)
    (home / "recovery" / "session-dead.lock").write_text('{"pid": 1, "token": "a crashed process"}')
    messages = Messages()
    monkeypatch.setattr(MainWindow, "show_message", lambda self, *a, **k: messages(*a, **k))
    window = MainWindow(dataset=mnist5k)
    qtbot.addWidget(window)
    qtbot.waitUntil(lambda: bool(messages.of_kind("question")), timeout=WAIT_MS)
    offer = messages.of_kind("question")[0]
    assert offer["title"] == "Restore the last session?" and "7 steps" in offer["text"]
    offer["on_answer"](False)
    assert window.trainer.step_count == 0
    assert sorted(p.name for p in (home / "recovery").iterdir()) == [window.recovery.session.lock_path.name]


def test_restore_reopens_the_dataset_the_crashed_session_used(qtbot, mnist5k, own_home, monkeypatch, tmp_path):
    from clipvae_studio.core import Trainer, load_dataset, save_trainer

    folder = tmp_path / "digits-idx"
    rng = np.random.default_rng(0)
    folder.mkdir()
    write_idx(folder / "train-images-idx3-ubyte", rng.integers(0, 256, (60, 8, 8), dtype=np.uint8))
    write_idx(folder / "train-labels-idx1-ubyte", np.arange(60, dtype=np.uint8) % 3)
    trainer = Trainer(preset("studio").with_values(**SMALL), load_dataset("idx", folder), eval_size=10)
    trainer.run(max_steps=5)
    recovery = own_home / "recovery"
    recovery.mkdir(parents=True)
    save_trainer(recovery / "recovery-gone.pt", trainer)
    (recovery / "recovery-gone.json").write_text(f'{{"dataset_source": ["idx", "{folder}"]}}')
    (recovery / "session-gone.lock").write_text('{"pid": 1, "token": "a crashed process"}')

    messages = Messages()
    monkeypatch.setattr(MainWindow, "show_message", lambda self, *a, **k: messages(*a, **k))
    window = MainWindow(dataset=mnist5k)  # starts on another dataset than the crashed session's
    qtbot.addWidget(window)
    offer = _wait_for_message(qtbot, messages, "question")
    assert "digits-idx" in offer["text"]
    offer["on_answer"](True)
    qtbot.waitUntil(lambda: window.dataset.name == "digits-idx" and window.trainer.step_count == 5, timeout=WAIT_MS)
    assert window.trainer.history["total"] == trainer.history["total"]
    assert window.dataset_source == ("idx", str(folder))
    assert not messages.of_kind("error", "warning")


# --- bad files through the window ------------------------------------------------------------
class _Evil:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


def _bad_checkpoints(folder: Path, good: Path) -> dict:
    data = good.read_bytes()
    files = {"truncated.pt": data[: len(data) // 2], "corrupt.pt": data[:100] + b"\0" * 300 + data[400:],
             "notes.pt": b"these are my notes\n", "empty.pt": b""}
    for name, content in files.items():
        (folder / name).write_bytes(content)
    torch.save([1, 2, 3], folder / "list.pt")
    with zipfile.ZipFile(folder / "archive.pt", "w") as z:
        z.writestr("hello.txt", "hi")
    torch.save({"model": _Evil(str(folder / "pwned"))}, folder / "evil.pt")
    (folder / "evil-raw.pt").write_bytes(pickle.dumps(_Evil(str(folder / "pwned")), protocol=2))
    from clipvae_studio.core import CLIPVAE, save_checkpoint
    save_checkpoint(folder / "rgb.pt", CLIPVAE((3, 16, 16), 10, width=8, depth=1), preset("studio"))
    return {p.name: p for p in folder.iterdir() if p.suffix == ".pt"}


def test_bad_checkpoints_get_a_message_and_leave_the_model_alone(qtbot, mnist5k, tmp_path, monkeypatch,
                                                                  qt_warnings):
    window = make_window(qtbot, mnist5k)
    messages = Messages()
    monkeypatch.setattr(window, "show_message", messages)
    action(window, "actionStep").trigger()  # a model with some training in it
    qtbot.waitUntil(lambda: window.trainer.step_count == 1, timeout=WAIT_MS)
    trainer, before = window.trainer, weights(window)
    bad = _bad_checkpoints(tmp_path, small_checkpoint(tmp_path / "good.ckpt", mnist5k, steps=1))
    assert len(bad) == 9
    for name, path in sorted(bad.items()):
        messages.calls.clear()
        monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(lambda *a, p=str(path), **k: (p, "")))
        action(window, "actionOpenCheckpoint").trigger()
        errors = messages.of_kind("error")
        assert len(errors) == 1, (name, messages.calls)
        assert name in errors[0]["text"] and "Traceback" not in errors[0]["text"]
        assert "unchanged" in errors[0]["text"]
        assert window.trainer is trainer and same_weights(weights(window), before), name
    assert not (tmp_path / "pwned").exists()
    assert window.trainer.step_count == 1 and window.state != "error"
    assert not qt_warnings


def _wait_for_message(qtbot, messages, kind):
    qtbot.waitUntil(lambda: bool(messages.of_kind(kind)), timeout=WAIT_MS)
    return messages.of_kind(kind)[-1]


def test_bad_dataset_folders_get_a_message_and_leave_the_model_alone(qtbot, mnist5k, tmp_path, monkeypatch):
    window = make_window(qtbot, mnist5k)
    messages = Messages()
    monkeypatch.setattr(window, "show_message", messages)
    trainer, before = window.trainer, weights(window)

    empty = tmp_path / "empty"
    empty.mkdir()
    magic = tmp_path / "magic"
    magic.mkdir()
    write_idx(magic / "train-images-idx3-ubyte", np.zeros((20, 8, 8), np.uint8))
    write_idx(magic / "train-labels-idx1-ubyte", np.arange(20, dtype=np.uint8) % 2)
    raw = bytearray((magic / "train-images-idx3-ubyte").read_bytes())
    raw[2] = 0x42  # an unknown data type code: wrong magic number
    (magic / "train-images-idx3-ubyte").write_bytes(bytes(raw))
    unreadable = tmp_path / "unreadable"
    (unreadable / "cat").mkdir(parents=True)
    (unreadable / "cat" / "a.png").write_text("not a png")

    for folder, expected in ((empty, "sub-folder"), (magic, "wrong magic number"), (unreadable, "none of the 1")):
        messages.calls.clear()
        monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(lambda *a, f=str(folder), **k: f))
        action(window, "actionOpenDataset").trigger()
        error = _wait_for_message(qtbot, messages, "error")
        assert expected in error["text"] and "Traceback" not in error["text"], error
        assert window.trainer is trainer and same_weights(weights(window), before)
        assert window.dataset is mnist5k

    # A folder where only some images are broken opens, and says what it skipped.
    partial = tmp_path / "partial"
    rng = np.random.default_rng(0)
    from PIL import Image
    for name in ("a", "b"):
        (partial / name).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (10, 10), dtype=np.uint8)).save(partial / name / f"{i}.png")
    (partial / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    messages.calls.clear()
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(lambda *a, **k: str(partial)))
    action(window, "actionOpenDataset").trigger()
    warning = _wait_for_message(qtbot, messages, "warning")
    assert "skipped 1 unreadable" in warning["text"] and "broken.png" in warning["text"]
    assert window.dataset.name == "partial" and len(window.dataset) == 6


# --- divergence ------------------------------------------------------------------------------------
def test_divergence_stops_with_a_message_and_training_can_go_on(qtbot, mnist5k, monkeypatch):
    window = make_window(qtbot, mnist5k, lr=1e3)
    messages = Messages()
    monkeypatch.setattr(window, "show_message", messages)
    action(window, "actionStart").trigger()
    question = _wait_for_message(qtbot, messages, "question")
    settle(qtbot, window)
    assert "non-finite" in question["text"] and window.state == "error"
    assert all(torch.isfinite(v).all() for v in window.trainer.model.state_dict().values())
    restored = window.trainer.step_count
    assert action(window, "actionStart").isEnabled()

    # Lower the learning rate in the settings panel, as a user would, and start again.
    editor = window.settings_panel.editors["lr"]
    editor.setValue(1e-3)
    assert window.trainer.config.lr == pytest.approx(1e-3)
    messages.calls.clear()
    action(window, "actionStart").trigger()
    qtbot.waitUntil(lambda: window.trainer.step_count >= restored + 10, timeout=WAIT_MS)
    action(window, "actionStop").trigger()
    settle(qtbot, window)
    assert not messages.of_kind("error", "question")
    assert np.all(np.isfinite(window.trainer.history["total"]))


# --- garbage collection stays in the GUI thread ---------------------------------------------------
def test_reference_cycles_are_freed_in_the_gui_thread_while_training(qtbot, mnist5k):
    """Python's cycle collector runs in whichever thread allocates; while training that is mostly
    the training thread, and a Qt object freed there is destroyed in the wrong thread. The window
    has automatic collection done by a GUI-thread timer instead."""
    window = make_window(qtbot, mnist5k)
    action(window, "actionStart").trigger()
    qtbot.waitUntil(lambda: window.trainer.step_count >= 5, timeout=WAIT_MS)
    freed_in = []

    class Node:
        def __del__(self):
            freed_in.append(threading.current_thread() is threading.main_thread())

    for _ in range(300):  # garbage as soon as made: the first collection after this frees it
        first, second = Node(), Node()
        first.other, second.other = second, first
    del first, second
    qtbot.waitUntil(lambda: len(freed_in) == 600, timeout=WAIT_MS)  # while the trainer allocates
    action(window, "actionStop").trigger()
    settle(qtbot, window)
    assert all(freed_in), f"{freed_in.count(False)} of 600 objects were freed in another thread"


# --- a storm of clicks ---------------------------------------------------------------------------
def expected_enabled(window) -> dict:
    state, trainer = window.state, window.trainer
    running, paused, stopping = state == "running", state == "paused", state == "stopping"
    can_train = paused or trainer.step_count < trainer.total_steps
    # while stopping, Start queues a new run; a step or a reset waits until the loop has ended
    return {"actionStart": not running and can_train, "actionPause": running, "actionStop": running or paused,
            "actionStep": not running and not stopping, "actionReset": not running and not stopping}


def test_random_storm_of_toolbar_actions_ends_consistent(qtbot, mnist5k, monkeypatch, qt_warnings):
    window = make_window(qtbot, mnist5k)
    monkeypatch.setattr(window, "show_message", Messages(answer=True))  # "yes, discard" to every reset
    rng = random.Random(1234)
    triggered = {name: 0 for name in CONTROLS}
    for i in range(200):
        live = [name for name in CONTROLS if action(window, name).isEnabled()]
        assert live, f"every control disabled after {i} actions in state {window.state}"
        name = rng.choice(live)
        action(window, name).trigger()
        triggered[name] += 1
        qtbot.wait(rng.choice((0, 0, 1, 5, 20)))
        if i % 50 == 49:  # now and then let the dust settle and check the invariants
            qtbot.waitUntil(lambda: window.worker.busy == (window.state in BUSY_STATES), timeout=WAIT_MS)
            qtbot.wait(50)
            assert {n: action(window, n).isEnabled() for n in CONTROLS} == expected_enabled(window)
    assert all(count > 0 for count in triggered.values()), triggered
    def stopped():  # a Start pressed while stopping queues a run: stop that one too once it is running
        if action(window, "actionStop").isEnabled():
            action(window, "actionStop").trigger()
        return not window.worker.busy and window.state not in BUSY_STATES

    qtbot.waitUntil(stopped, timeout=WAIT_MS)
    qtbot.wait(50)
    assert {n: action(window, n).isEnabled() for n in CONTROLS} == expected_enabled(window)
    assert window.worker.thread.isRunning() and not window.worker.busy
    # still responsive: one more run starts and stops
    action(window, "actionStart").trigger()
    qtbot.waitUntil(lambda: window.state == "running", timeout=WAIT_MS)
    action(window, "actionStop").trigger()
    settle(qtbot, window)
    assert all(np.isfinite(window.trainer.history["total"]))
    assert not qt_warnings


# --- the reference-count guard (gui/refcount_guard.py), applied at start-up only where needed ---
GUARD_PROBE = textwrap.dedent("""
    import sys
    from clipvae_studio.gui import refcount_guard
    applied = refcount_guard.guard_if_needed() if sys.argv[1] == "guard" else False
    from PySide6.QtCore import QObject, Signal
    class Emitter(QObject):
        ping = Signal()
    emitter = Emitter()
    for _ in range(20000):  # about 12 s of a training studio's signals
        emitter.ping.emit()
    print("alive", applied)
""")


def test_refcount_guard_version_check():
    from clipvae_studio.gui.refcount_guard import may_need_guard

    assert may_need_guard((3, 11, 7), "cpython") and may_need_guard((3, 10, 0), "cpython")
    assert not may_need_guard((3, 12, 0), "cpython") and not may_need_guard((3, 13, 1), "cpython")
    assert not may_need_guard((3, 10, 0), "pypy")


def test_refcount_guard_prevents_the_abort_it_is_for():
    from clipvae_studio.gui.refcount_guard import bindings_drop_references, may_need_guard

    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root)}

    def probe(mode):
        return subprocess.run([sys.executable, "-c", GUARD_PROBE, mode], cwd=root, env=env,
                              capture_output=True, text=True, timeout=120)

    guarded, unguarded = probe("guard"), probe("none")
    assert guarded.returncode == 0, guarded.stderr
    if may_need_guard() and bindings_drop_references():  # e.g. PySide6 6.12 on CPython 3.11
        assert unguarded.returncode != 0 and "dealloc" in unguarded.stderr  # what the guard prevents
        assert "alive True" in guarded.stdout
    else:  # nothing to prevent here, and the guard stays off
        assert unguarded.returncode == 0 and "alive False" in guarded.stdout
