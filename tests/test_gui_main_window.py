"""The studio window driven like a user would: real QActions, real training in the worker thread."""
import math

import numpy as np
import pytest
import torch
from PySide6.QtCore import qInstallMessageHandler

pytest.importorskip("pytestqt")

from clipvae_studio.gui import MainWindow  # noqa: E402
from qt_helpers import MessageRecorder, action, open_window  # noqa: E402

WAIT_MS = 60_000  # generous: the CI machine is shared


def make_window(qtbot, dataset, **config):
    return open_window(qtbot, dataset, **config)


def enabled(window):
    return {name: action(window, name).isEnabled()
            for name in ("actionStart", "actionPause", "actionStop", "actionStep", "actionReset")}


class Recorder(MessageRecorder):
    def __init__(self, answer=False):
        super().__init__(answer)


@pytest.fixture
def qt_messages():
    """Every Qt warning/debug message printed while the test runs."""
    seen = []

    def handler(mode, context, message):
        seen.append(message)

    previous = qInstallMessageHandler(handler)
    yield seen
    qInstallMessageHandler(previous)


def test_controls_train_pause_step_stop(qtbot, mnist5k):
    window = make_window(qtbot, mnist5k)
    assert window.objectName() == "MainWindow"
    assert window.findChild(type(window.training_toolbar), "trainingToolbar") is window.training_toolbar
    assert window.state == "idle"
    assert enabled(window) == {"actionStart": True, "actionPause": False, "actionStop": False,
                               "actionStep": True, "actionReset": True}

    action(window, "actionStart").trigger()
    curve = window.loss_plot.curves["total"]
    qtbot.waitUntil(lambda: curve.xData is not None and len(curve.xData) >= 5, timeout=WAIT_MS)
    assert np.all(np.isfinite(curve.yData)) and np.all(np.diff(curve.xData) > 0)
    assert window.loss_plot.plot_widget.objectName() == "lossPlot"

    def scatter_points():
        return len(window.canvas.scatter.data)

    qtbot.waitUntil(lambda: window.canvas.snapshot is not None and window.canvas.snapshot.step > 0, timeout=WAIT_MS)
    assert scatter_points() == len(window.canvas.snapshot.mu) > 0
    assert window.state == "running"
    assert enabled(window) == {"actionStart": False, "actionPause": True, "actionStop": True,
                               "actionStep": False, "actionReset": False}
    # fields the loop cannot take mid-run are locked; the learning rate is not
    assert not window.settings_panel.editors["batch_size"].isEnabled()
    assert not window.settings_panel.editors["z_dim"].isEnabled()
    assert window.settings_panel.editors["lr"].isEnabled()

    action(window, "actionPause").trigger()
    qtbot.waitUntil(lambda: window.state == "paused", timeout=WAIT_MS)
    assert enabled(window) == {"actionStart": True, "actionPause": False, "actionStop": True,
                               "actionStep": True, "actionReset": True}
    paused_at = window.trainer.step_count
    qtbot.wait(400)
    assert window.trainer.step_count == paused_at

    action(window, "actionStep").trigger()
    qtbot.waitUntil(lambda: window.trainer.step_count == paused_at + 1, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: window.loss_plot.history.steps[-1] == paused_at + 1, timeout=WAIT_MS)
    qtbot.wait(400)
    assert window.trainer.step_count == paused_at + 1
    assert window.state == "paused"

    action(window, "actionStop").trigger()
    qtbot.waitUntil(lambda: window.state == "stopped", timeout=WAIT_MS)
    assert enabled(window) == {"actionStart": True, "actionPause": False, "actionStop": False,
                               "actionStep": True, "actionReset": True}
    assert window.settings_panel.editors["batch_size"].isEnabled()
    assert "step" in window.status_labels["step"].text()

    # resume after stop continues from the same step, then the space bar pauses
    stopped_at = window.trainer.step_count
    action(window, "actionStart").trigger()
    qtbot.waitUntil(lambda: window.trainer.step_count > stopped_at + 2, timeout=WAIT_MS)
    action(window, "actionToggleTraining").trigger()
    qtbot.waitUntil(lambda: window.state == "paused", timeout=WAIT_MS)
    window.close()
    assert not window.worker.thread.isRunning()


def test_close_during_training_joins_the_thread(qtbot, mnist5k, qt_messages):
    window = make_window(qtbot, mnist5k)
    action(window, "actionStart").trigger()
    qtbot.waitUntil(lambda: window.trainer.step_count >= 3, timeout=WAIT_MS)
    assert window.worker.thread.isRunning() and window.state == "running"
    window.close()
    assert not window.worker.thread.isRunning()
    assert window.trainer.state == "stopped"
    assert not [m for m in qt_messages if "QThread" in m]


def test_corrupt_checkpoint_shows_a_message_and_keeps_the_model(qtbot, mnist5k, tmp_path, monkeypatch):
    window = make_window(qtbot, mnist5k)
    recorder = Recorder()
    monkeypatch.setattr(window, "show_message", recorder)
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"PK\x03\x04 this is not a checkpoint" * 20)
    from PySide6.QtWidgets import QFileDialog

    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(bad), ""))
    trainer, model = window.trainer, window.inference_model
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}

    action(window, "actionOpenCheckpoint").trigger()

    assert [c["kind"] for c in recorder.calls] == ["error"]
    assert "broken.pt" in recorder.calls[0]["text"] and "unchanged" in recorder.calls[0]["text"]
    assert window.trainer is trainer and window.inference_model is model
    after = trainer.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.fixture(scope="module")
def short_checkpoint(mnist5k, tmp_path_factory):
    from clipvae_studio.core import Trainer, preset, save_trainer

    trainer = Trainer(preset("studio").with_values(eval_every_steps=20), mnist5k)
    trainer.run(max_steps=40)
    path = tmp_path_factory.mktemp("ckpt") / "short.pt"
    save_trainer(path, trainer)
    return path


def test_open_checkpoint_loads_weights_and_history(qtbot, mnist5k, short_checkpoint, monkeypatch):
    trained_checkpoint = short_checkpoint
    window = make_window(qtbot, mnist5k)
    seen = []
    window.inferenceModelChanged.connect(seen.append)
    from PySide6.QtWidgets import QFileDialog

    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(trained_checkpoint), ""))
    action(window, "actionOpenCheckpoint").trigger()
    assert window.trainer.step_count == 40 and not window.unsaved
    assert len(window.loss_plot.history) == 40
    assert [r["step"] for r in window.metrics_plot.rows] == [20, 40]
    assert seen and seen[-1] is window.inference_model and window.canvas.model is window.inference_model
    assert str(trained_checkpoint.resolve()) in window.recent_files()
    # the trained model decodes a label latent into a picture the same model scores as that label
    label_uv = window.canvas.projection.project(window.canvas.snapshot.label_mu[3:4])[0]
    image, scores = window.canvas.decode_at(*label_uv)
    assert image.shape == (28, 28) and 0 <= image.min() and image.max() <= 1
    assert math.isclose(scores.sum(), 1, rel_tol=1e-5)


def test_non_finite_loss_rolls_back_and_offers_a_lower_lr(qtbot, mnist5k, monkeypatch):
    window = make_window(qtbot, mnist5k, eval_every_steps=10**6)
    recorder = Recorder()
    monkeypatch.setattr(window, "show_message", recorder)
    trainer = window.trainer
    honest = trainer.model.loss_terms

    def poisoned(x, y, config, **options):  # the loss turns NaN from step 25 on
        terms = honest(x, y, config, **options)
        if trainer.step_count >= 25:
            terms["clip"] = terms["clip"] * float("nan")
        return terms

    trainer.model.loss_terms = poisoned
    action(window, "actionStart").trigger()
    qtbot.waitUntil(lambda: window.state == "error", timeout=WAIT_MS)
    qtbot.waitUntil(lambda: bool(recorder.calls), timeout=WAIT_MS)
    call = recorder.calls[-1]
    assert call["kind"] == "question" and "rolled back to step 20" in call["text"]
    assert trainer.step_count == 20
    assert window.loss_plot.history.steps[-1] <= 20
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    assert action(window, "actionStart").isEnabled() and not action(window, "actionPause").isEnabled()

    del trainer.model.loss_terms  # the cause is gone; accept the offer to go on with a lower lr
    lr = trainer.config.lr
    call["on_answer"](True)
    assert trainer.config.lr == pytest.approx(lr / 10)
    assert window.settings_panel.editors["lr"].value() == pytest.approx(lr / 10)
    qtbot.waitUntil(lambda: trainer.step_count > 22, timeout=WAIT_MS)
    window.close()


def test_model_field_change_builds_a_fresh_model(qtbot, mnist5k):
    window = make_window(qtbot, mnist5k)
    old = window.trainer
    editor = window.settings_panel.editors["z_dim"]
    editor.setValue(2)  # a user edit (keyboard tracking off: committed value)
    assert window.trainer is not old and window.trainer.model.z_dim == 2
    assert window.inference_model.z_dim == 2
    # z_dim 2: the exact projection becomes available and the map is the latent space itself
    window.canvas.set_projection_mode("exact-2d")
    assert window.canvas.mode == "exact-2d"
    mu = window.canvas.snapshot.mu
    assert np.allclose(window.canvas.points_uv(), mu)


def test_layout_preset_and_settings_persist(qtbot, mnist5k):
    from clipvae_studio.core.paths import studio_home
    from clipvae_studio.gui.main_window import settings_file

    window = make_window(qtbot, mnist5k)
    assert settings_file().parent == studio_home()
    window.set_preset("reference")
    assert window.trainer.config.shared_blocks and window.preset_combo.currentData() == "reference"
    window.close()
    assert settings_file().is_file()
    again = make_window(qtbot, mnist5k)
    assert again.preset_name == "reference" and again.trainer.config.noise == "uniform"
    again.set_preset("studio")
    again.close()


def test_open_dataset_folder_loads_off_thread_and_reports_errors(qtbot, mnist5k, tmp_path, monkeypatch):
    from PIL import Image
    from PySide6.QtWidgets import QFileDialog

    window = make_window(qtbot, mnist5k)
    recorder = Recorder()
    monkeypatch.setattr(window, "show_message", recorder)
    rng = np.random.default_rng(0)
    for name in ("circle", "square", "triangle"):
        (tmp_path / "shapes" / name).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 255, (12, 12), dtype=np.uint8)).save(tmp_path / "shapes" / name / f"{i}.png")
    (tmp_path / "shapes" / "circle" / "broken.png").write_bytes(b"not a png")
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(tmp_path / "shapes"))
    changed = []
    window.datasetChanged.connect(changed.append)

    action(window, "actionOpenDataset").trigger()
    qtbot.waitUntil(lambda: bool(changed), timeout=WAIT_MS)
    assert window.dataset is changed[0] and window.dataset.label_names == ["circle", "square", "triangle"]
    assert window.trainer.dataset is window.dataset and window.trainer.model.num_labels == 3
    assert window.canvas.label_names == ["circle", "square", "triangle"]
    assert [c["kind"] for c in recorder.calls] == ["warning"] and "broken.png" in recorder.calls[0]["text"]
    assert window.dataset_combo.currentData()[0] == "folder"

    assert window.settings.value("data/kind") == "folder"  # remembered for the next start
    window.settings.remove("data")  # (and forgotten again, so later windows in this session start on mnist5k)
    trainer = window.trainer
    window.load_dataset_async("idx", str(tmp_path / "nothing-here"), confirm=False)
    qtbot.waitUntil(lambda: len(recorder.calls) == 2, timeout=WAIT_MS)
    assert recorder.calls[-1]["kind"] == "error" and "nothing-here" in recorder.calls[-1]["text"]
    assert window.trainer is trainer


def test_export_loss_csv_and_plot_png(qtbot, mnist5k, tmp_path):
    window = make_window(qtbot, mnist5k)
    action(window, "actionStep").trigger()
    qtbot.waitUntil(lambda: len(window.loss_plot.history) == 1, timeout=WAIT_MS)
    assert window.export_loss_csv(tmp_path / "loss.csv")
    lines = (tmp_path / "loss.csv").read_text().splitlines()
    assert lines[0].startswith("step,epoch,total") and lines[1].startswith("1,")
    for which in ("loss", "metrics", "canvas"):
        assert window.export_png(which, tmp_path / f"{which}.png")
        assert (tmp_path / f"{which}.png").read_bytes()[:4] == b"\x89PNG"


def test_run_gui_opens_the_window_with_a_checkpoint(qtbot, short_checkpoint, monkeypatch):
    """The entry point of `clipvae-studio [gui] CKPT` and `python main.py`, with the event loop stubbed."""
    from PySide6.QtWidgets import QApplication

    from clipvae_studio.gui.app import run_gui

    shown = []

    def fake_exec():
        shown.extend(w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible())
        return 0

    monkeypatch.setattr(QApplication, "exec", staticmethod(fake_exec))
    assert run_gui(str(short_checkpoint)) == 0
    window = next(w for w in shown if w.trainer is None)  # on screen first: the model loads once it is painted
    qtbot.addWidget(window)
    assert not window.action_start.isEnabled() and not any(e.isEnabled() for e in window.settings_panel.editors.values())
    qtbot.waitUntil(lambda: window.checkpoint_path == str(short_checkpoint), timeout=15000)
    assert window.trainer.step_count == 40 and window.windowTitle().startswith("short.pt")
    assert not window.windowIcon().isNull()
    window.close()


def test_a_failed_model_load_is_reported_and_the_window_stays_open(qtbot, monkeypatch):
    """The deferred start (clipvae-studio's own): if the data or torch cannot be loaded once the
    window is up, the person is told why instead of facing 'Loading PyTorch…' forever."""
    from clipvae_studio.core import data

    def broken(*_args, **_kwargs):
        raise data.DatasetError("the bundled MNIST subset is missing from resources/")

    monkeypatch.setattr(data, "load_dataset", broken)
    window = MainWindow(defer_model=True)
    qtbot.addWidget(window)
    recorder = MessageRecorder()
    window.show_message = recorder
    window.show()
    window.load_model_when_shown()
    qtbot.waitUntil(lambda: len(recorder.calls) > 0, timeout=WAIT_MS)
    call = recorder.calls[0]
    assert call["kind"] == "error" and "bundled MNIST subset is missing" in call["text"]
    assert window.isVisible() and window.trainer is None
    assert window.status_labels["state"].text() == "Could not load the model"
    assert not window.action_start.isEnabled() and not any(e.isEnabled() for e in window.settings_panel.editors.values())


def test_stop_says_stopping_at_once_and_start_runs_again(qtbot, mnist5k):
    window = make_window(qtbot, mnist5k)
    action(window, "actionStart").trigger()
    qtbot.waitUntil(lambda: window.state == "running" and window.trainer.step_count > 0, timeout=WAIT_MS)
    action(window, "actionStop").trigger()
    # the studio model says so before the loop has finished its step (no event loop turn needed)
    assert window.state == "stopping" and window.status_labels["state"].text() == "Stopping…"
    assert not action(window, "actionStop").isEnabled() and not action(window, "actionStep").isEnabled()
    assert action(window, "actionStart").isEnabled()  # Start while stopping: run again once the loop ends
    action(window, "actionStart").trigger()
    stopped_at = window.trainer.step_count
    qtbot.waitUntil(lambda: window.state == "running" and window.trainer.step_count > stopped_at + 2,
                    timeout=WAIT_MS)
    action(window, "actionStop").trigger()
    qtbot.waitUntil(lambda: window.state == "stopped" and not window.worker.busy, timeout=WAIT_MS)
    assert window.status_labels["state"].text() == "Stopped"
