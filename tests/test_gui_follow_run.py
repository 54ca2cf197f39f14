"""The studio follows a run folder that another process writes (File -> Open run…, gui/run_follow.py),
overlays other runs to compare them, and copies a followed run into a local training."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtGui import QTextDocument

pytest.importorskip("pytestqt")

from clipvae_studio.core import Trainer, preset  # noqa: E402
from clipvae_studio.core.explore import decode_point  # noqa: E402
from clipvae_studio.core.run_folder import RunFolderWriter  # noqa: E402
from qt_helpers import MessageRecorder, action, open_window  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
WAIT_MS = 60_000  # generous: the machine is shared
TINY = dict(width=16, depth=1, z_dim=4, batch_size=16, eval_every_steps=10**6)
Z = np.full(4, 0.5, dtype=np.float32)  # a fixed point of the tiny model's latent space


def step_record(step: int, total: float, attempt: int = 0) -> dict:
    return {"kind": "step", "step": step, "epoch": step / 70, "attempt": attempt, "samples_per_second": 1000.0,
            "losses": {"total": total, "clip": total / 2, "rec_image": total / 3}}


def write_steps(writer: RunFolderWriter, steps, scale: float = 1.0) -> None:
    for step in steps:
        writer.append(step_record(step, scale * 100.0 / step, writer.attempt))


def legend_text(plot) -> str:
    """The compare legend as a person reads it (its names use non-breaking hyphens)."""
    document = QTextDocument()
    document.setHtml(plot.overlay_legend.text())
    return document.toPlainText().replace("\u2011", "-")


def wait_for_poll(qtbot, window):
    """Wait for the next poll of the followed run that starts after this call."""
    follower = window.run_follow
    qtbot.waitUntil(lambda: follower.run.job is None, timeout=WAIT_MS)  # none in flight: the next one is new
    with qtbot.waitSignal(follower.polled, timeout=WAIT_MS):
        pass


def test_follows_a_run_that_another_process_trains(qtbot, mnist5k, tmp_path):
    """A real `clipvae-studio train --run-dir` in another process: its losses stream into the loss
    plot and each new last.pt becomes the model that the map and the explorer decode with."""
    run = tmp_path / "tiny-run"
    sets = [a for k, v in TINY.items() for a in ("--set", f"{k}={v}")]
    process = subprocess.Popen(
        [sys.executable, "-m", "clipvae_studio", "train", "--dataset", "mnist5k", "--run-dir", str(run),
         "--time-budget", "30", "--checkpoint-every", "2", "--keep-checkpoints", "0", "--no-tensorboard",
         "--quiet", *sets], env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        window = open_window(qtbot, mnist5k)
        local_model = window.inference_model
        qtbot.waitUntil(lambda: (run / "metrics.jsonl").exists() or process.poll() is not None, timeout=WAIT_MS)
        assert process.poll() is None, process.stderr.read()
        assert window.open_run(run)
        follower = window.run_follow

        assert not action(window, "actionStart").isEnabled() and not action(window, "actionStep").isEnabled()
        qtbot.waitUntil(follower.label.isVisible, timeout=WAIT_MS)  # the toolbar lays it out
        assert "FOLLOWING" in follower.label.text() and action(window, "actionTrainFollowedHere").isVisible()
        assert not action(window, "actionStart").isVisible()  # its place in the toolbar says what is followed
        assert "following tiny-run" in window.windowTitle()

        # the plot's data grow as the other process appends
        qtbot.waitUntil(lambda: len(window.loss_plot.history) > 0, timeout=WAIT_MS)
        shown = len(window.loss_plot.history)
        qtbot.waitUntil(lambda: len(window.loss_plot.history) > shown, timeout=WAIT_MS)
        assert list(window.loss_plot.history.steps) == window.studio.history["step"]

        with qtbot.waitSignal(follower.checkpointShown, timeout=WAIT_MS) as first:
            pass
        first_step = first.args[0]
        assert window.trainer.step_count == first_step > 0
        assert process.poll() is None, "the run ended before the test saw it grow"
        assert window.inference_model is not local_model and window.canvas.model is window.inference_model
        first_image = decode_point(window.inference_model, Z).image

        with qtbot.waitSignal(follower.checkpointShown, timeout=WAIT_MS,
                              check_params_cb=lambda step: step > first_step):
            pass
        assert window.trainer.step_count > first_step
        assert not np.allclose(decode_point(window.inference_model, Z).image, first_image)
        window._refresh_status()
        assert window.status_labels["state"].text().startswith("Following tiny-run (")
    finally:
        process.kill()
        process.wait()


def test_records_show_within_one_poll_and_a_restart_hides_orphans(qtbot, mnist5k, tmp_path, monkeypatch):
    run = tmp_path / "run"
    writer = RunFolderWriter(run)
    writer.start(0)
    write_steps(writer, range(1, 11))
    window = open_window(qtbot, mnist5k)
    assert window.open_run(run)
    wait_for_poll(qtbot, window)
    assert window.studio.history["step"] == list(range(1, 11))

    write_steps(writer, range(11, 21))
    metrics = {"zero_shot_accuracy": 0.5, "label_decoder_accuracy": 0.4, "recon_nats": 90.0, "kld_nats": 9.0}
    writer.append({"kind": "eval", "step": 20, "epoch": 0.3, "attempt": 0, "metrics": metrics})
    wait_for_poll(qtbot, window)  # one poll after the write shows it
    assert window.studio.history["step"] == list(range(1, 21))
    assert list(window.loss_plot.history.steps) == list(range(1, 21))
    assert [r["step"] for r in window.metrics_plot.rows] == [20]

    # a restart resumes at step 12: what the first attempt wrote after it is orphaned
    writer.close()
    restarted = RunFolderWriter(run)
    restarted.start(12)
    write_steps(restarted, range(13, 16), scale=2.0)
    wait_for_poll(qtbot, window)
    steps = list(window.loss_plot.history.steps)
    assert steps == list(range(1, 16)) == window.studio.history["step"]
    np.testing.assert_allclose(window.loss_plot.history.values("total")[12:], [200.0 / s for s in (13, 14, 15)])
    np.testing.assert_allclose(window.loss_plot.history.values("total")[:12], [100.0 / s for s in range(1, 13)])
    assert window.metrics_plot.rows == [] and window.studio.eval_history == []
    restarted.close()


def test_new_checkpoints_become_the_model_and_train_here_copies_the_run(qtbot, mnist5k, tmp_path, monkeypatch):
    run = tmp_path / "run"
    writer = RunFolderWriter(run, keep_checkpoints=0)
    writer.start(0)
    trainer = Trainer(preset("studio").with_values(**TINY), mnist5k)
    trainer.run(max_steps=3)
    write_steps(writer, range(1, 4))
    writer.save_checkpoint(trainer)

    window = open_window(qtbot, mnist5k)
    with qtbot.waitSignal(window.run_follow.checkpointShown, timeout=WAIT_MS) as shown:
        assert window.open_run(run)
    assert shown.args == [3] and window.trainer.step_count == 3
    before = decode_point(window.inference_model, Z).image
    window.canvas.set_marker(0.25, -0.5)  # a point picked on the map to watch the run learn

    trainer.run(max_steps=5)
    write_steps(writer, range(4, 9))
    with qtbot.waitSignal(window.run_follow.checkpointShown, timeout=WAIT_MS) as shown:
        writer.save_checkpoint(trainer)
    assert shown.args == [8] and window.trainer.step_count == 8
    after = decode_point(window.inference_model, Z).image
    assert not np.allclose(before, after)
    assert window.canvas.marker_position() == pytest.approx((0.25, -0.5))  # the same model moved on: kept
    assert window.canvas.snapshot.step == 8
    assert not action(window, "actionStart").isEnabled()

    action(window, "actionTrainFollowedHere").trigger()
    qtbot.waitUntil(lambda: window.studio.followed is None, timeout=WAIT_MS)
    assert window.trainer.step_count == 8 and window.checkpoint_path is None
    assert action(window, "actionStart").isEnabled() and action(window, "actionStep").isEnabled()
    qtbot.waitUntil(lambda: not window.run_follow.label.isVisible(), timeout=WAIT_MS)
    assert not action(window, "actionTrainFollowedHere").isVisible() and action(window, "actionStart").isVisible()
    np.testing.assert_allclose(decode_point(window.inference_model, Z).image, after, atol=1e-6)
    writer.close()


def test_a_folder_that_is_not_a_run_says_so_and_keeps_the_model(qtbot, mnist5k, tmp_path, monkeypatch):
    window = open_window(qtbot, mnist5k)
    messages = MessageRecorder()
    monkeypatch.setattr(window, "show_message", messages)
    trainer, model = window.trainer, window.inference_model
    (tmp_path / "photos").mkdir()
    assert not window.open_run(tmp_path / "photos")
    assert not window.compare_run(tmp_path / "missing")
    assert [m["title"] for m in messages.calls] == ["Not a run folder"] * 2
    assert "not a run folder" in messages.calls[0]["text"] and "unchanged" in messages.calls[0]["text"]
    assert window.trainer is trainer and window.inference_model is model and window.studio.followed is None
    assert action(window, "actionStart").isEnabled() and not window.loss_plot.overlays


def test_runs_overlaid_to_compare_each_in_its_colour_family(qtbot, mnist5k, tmp_path):
    folders = {}
    for name, scale in (("run-a", 1.0), ("run-b", 3.0), ("run-c", 9.0)):
        writer = RunFolderWriter(tmp_path / name)
        writer.start(0)
        write_steps(writer, range(1, 31), scale)
        writer.close()
        folders[name] = tmp_path / name
    window = open_window(qtbot, mnist5k)
    assert window.open_run(folders["run-a"])
    plot = window.loss_plot
    for name in ("run-b", "run-c"):
        with qtbot.waitSignal(window.run_follow.polled, timeout=WAIT_MS,
                              check_params_cb=lambda polled, name=name: polled == name):
            assert window.compare_run(folders[name])
    qtbot.waitUntil(lambda: len(plot.history) == 30, timeout=WAIT_MS)
    assert set(plot.overlays) == {"run-b", "run-c"}
    plot.redraw_if_needed()
    for name, scale in (("run-b", 3.0), ("run-c", 9.0)):
        history = plot.overlays[name]["history"]
        np.testing.assert_allclose(history.values("total"), [scale * 100.0 / s for s in range(1, 31)])
        x, _y = plot.overlays[name]["curves"]["total"].getData()
        assert len(x) == 30
    assert plot.overlay_color("run-b") != plot.overlay_color("run-c")
    legend = legend_text(plot)
    assert plot.overlay_legend.isVisible() and all(n in legend for n in ("run-a", "run-b", "run-c"))
    # a term hidden in this run is hidden in the compared runs too
    plot.curve_toggles["clip"].setChecked(False)
    plot._dirty = True
    plot.redraw_if_needed()
    assert not plot.overlays["run-b"]["curves"]["clip"].isVisible()

    # the legend's remove link drops a run: from the plot and from the runs polled
    plot.overlay_legend.linkActivated.emit("remove:run-b")  # the ✕ after its name
    assert set(plot.overlays) == {"run-c"} and set(window.run_follow.compared) == {"run-c"}
    assert "run-b" not in legend_text(plot) and "run-c" in legend_text(plot)


def test_the_studios_own_training_keeps_a_run_folder_when_asked(qtbot, mnist5k, tmp_path):
    window = open_window(qtbot, mnist5k, **TINY)
    assert window.studio.run_folders is None and not action(window, "actionRecordRuns").isChecked()  # opt-in
    window.record_runs_in(tmp_path / "runs")
    assert action(window, "actionRecordRuns").isChecked()

    def train_a_little(steps):
        target = window.trainer.step_count + steps
        action(window, "actionStart").trigger()
        qtbot.waitUntil(lambda: window.trainer.step_count >= target, timeout=WAIT_MS)
        with qtbot.waitSignal(window.signals.runFinished, timeout=WAIT_MS):
            action(window, "actionStop").trigger()

    try:
        train_a_little(3)
        folder = Path(window.studio.run_folder)
        assert folder.parent == tmp_path / "runs" and folder.name.startswith("mnist5k-")
        train_a_little(2)  # Start again: a second attempt in the same folder
        assert Path(window.studio.run_folder) == folder

        from clipvae_studio.core.checkpoint import load_checkpoint
        from clipvae_studio.core.run_folder import RunReader

        reader = RunReader(folder)
        reader.poll()
        steps = [r["step"] for r in reader.records("step")]
        assert steps == list(range(1, window.trainer.step_count + 1))
        assert {r["attempt"] for r in reader.records("step")} == {0, 1}
        assert reader.status()["state"] == "stopped" and reader.config["source"] == "studio"
        assert load_checkpoint(folder / "last.pt").step == window.trainer.step_count
    finally:  # the setting is remembered: later windows of this test session must not record
        window.record_runs_in(None)
    assert window.studio.run_folders is None and not action(window, "actionRecordRuns").isChecked()


def test_the_studio_model_follows_without_qt(mnist5k):
    """core/studio.py's followed mode: the run's records are the one history; nothing trains."""
    from clipvae_studio.core.studio import Studio

    studio = Studio(preset("studio").with_values(**TINY), mnist5k)
    studio.new_model()
    batches = []
    studio.events.losses.connect(batches.append)
    studio.follow("elsewhere")
    assert not studio.start() and not studio.can_start and studio.history["step"] == []
    assert not studio.add_followed([step_record(s, 10.0 / s) for s in range(1, 6)], [])
    assert studio.history["step"] == [1, 2, 3, 4, 5] and list(batches[-1]["step"]) == [1, 2, 3, 4, 5]
    assert studio.add_followed([step_record(4, 99.0)], [], rewind_to=3)  # a restart at step 3
    assert studio.history["step"] == [1, 2, 3, 4] and studio.history["total"][-1] == 99.0
    studio.stop_following()
    assert studio.followed is None and studio.history is studio.trainer.history and studio.can_start
    studio.shutdown()


def test_a_run_on_other_images_streams_its_plots_and_keeps_the_map(qtbot, mnist5k, tmp_path, monkeypatch):
    """A run trained on another dataset: its losses follow, its checkpoint cannot be shown on this
    dataset's map, which is said once; the model shown stays."""
    from clipvae_studio.core.synthetic import coloured_digits

    colour = coloured_digits(size=16, channels=3, num_labels=4, train_per_label=20, test_per_label=5)
    run = tmp_path / "colour-run"
    writer = RunFolderWriter(run, keep_checkpoints=0)
    writer.start(0)
    trainer = Trainer(preset("studio").with_values(**TINY), colour)
    trainer.run(max_steps=2)
    write_steps(writer, range(1, 3))
    writer.save_checkpoint(trainer)
    window = open_window(qtbot, mnist5k)
    messages = MessageRecorder()
    monkeypatch.setattr(window, "show_message", messages)
    model = window.inference_model
    assert window.open_run(run)
    qtbot.waitUntil(lambda: len(messages.calls) > 0, timeout=WAIT_MS)
    assert messages.calls[0]["title"] == "Cannot show the run's model" and messages.calls[0]["kind"] == "warning"
    assert "shape" in messages.calls[0]["text"] or "labels" in messages.calls[0]["text"]
    assert window.studio.history["step"] == [1, 2] and window.inference_model is model
    write_steps(writer, range(3, 5))
    writer.save_checkpoint(trainer)  # the next checkpoint fails the same way: not said again
    wait_for_poll(qtbot, window)
    wait_for_poll(qtbot, window)
    assert window.studio.history["step"] == [1, 2, 3, 4] and len(messages.calls) == 1
    assert "cannot be shown" in window.run_follow.state_text()
    writer.close()
