"""The studio model without Qt: run control, one history, open/save, divergence roll-back."""
import csv
import threading

import pytest

from clipvae_studio.core import preset
from clipvae_studio.core.studio import Studio

WAIT_S = 30


def small(**changes):
    return preset("studio").with_values(width=32, depth=1, batch_size=64, snapshot_size=200,
                                        eval_every_steps=10, **changes)


class Recorder:
    """Every studio event in order, and a way to wait for one (no sleeps)."""

    def __init__(self, studio):
        self.log: list = []
        self._cv = threading.Condition()
        for name in studio.events.names:
            getattr(studio.events, name).connect(lambda *args, n=name: self._record(n, args))

    def _record(self, name, args):
        with self._cv:
            self.log.append((name, args[0] if args else None))
            self._cv.notify_all()

    def of(self, name):
        with self._cv:
            return [payload for kind, payload in self.log if kind == name]

    def wait(self, predicate):
        with self._cv:
            assert self._cv.wait_for(lambda: predicate(self), WAIT_S), "the studio never got there"


@pytest.fixture
def studio(mnist5k):
    studio = Studio(small(), mnist5k)
    studio.new_model()
    yield studio
    studio.shutdown(5)


def sent_steps(recorder):
    return [int(s) for batch in recorder.of("losses") for s in batch["step"]]


def test_start_pause_step_stop(studio):
    rec = Recorder(studio)
    assert studio.state == "idle" and studio.start()
    rec.wait(lambda r: len(sent_steps(r)) >= 3)
    assert studio.busy
    studio.pause()
    rec.wait(lambda r: "paused" in r.of("state"))
    paused_at = studio.trainer.step_count
    studio.step()
    rec.wait(lambda r: any(s.step == paused_at + 1 for s in r.of("snapshot")))
    assert studio.state == "paused" and studio.trainer.step_count == paused_at + 1
    studio.stop()
    assert studio.state == "stopping"  # said at once, before the loop has ended
    assert studio.wait_idle(WAIT_S) and not studio.busy
    assert studio.state == "stopped"
    states = rec.of("state")
    assert states.index("running") < states.index("paused") < states.index("stopping") < states.index("stopped")
    # one history: every row the trainer recorded was sent to the views once, in order
    assert sent_steps(rec) == studio.history["step"] == list(range(1, studio.trainer.step_count + 1))
    assert rec.of("run_finished")[-1]["state"] == "stopped"
    assert studio.samples_per_second == 0.0  # one figure, and only while running


def test_samples_per_second_while_running(studio):
    rec = Recorder(studio)
    studio.start()
    rec.wait(lambda r: len(r.of("losses")) >= 3)
    assert studio.samples_per_second > 0
    assert rec.of("losses")[-1]["samples_per_second"] > 0
    studio.stop_and_wait(WAIT_S)


def test_step_when_idle_runs_in_the_training_thread(studio):
    rec = Recorder(studio)
    studio.step()
    rec.wait(lambda r: r.of("model"))  # the snapshot, then the weights for decoding
    assert studio.trainer.step_count == 1 and sent_steps(rec) == [1] and studio.state == "idle"
    assert rec.of("snapshot")[-1].step == 1 and studio.inference_model is rec.of("model")[-1]
    assert studio.unsaved


def test_reset_is_a_fresh_model(studio):
    rec = Recorder(studio)
    studio.step()
    rec.wait(lambda r: r.of("snapshot"))
    old_generation, old_trainer = studio.generation, studio.trainer
    studio.reset()
    assert studio.trainer is not old_trainer and studio.generation == old_generation + 1
    assert studio.trainer.step_count == 0 and studio.history["step"] == [] and not studio.unsaved
    assert rec.of("trainer")[-1] is studio.trainer and studio.inference_model is rec.of("model")[-1]


def test_save_then_open_continues_where_it_stopped(studio, tmp_path):
    rec = Recorder(studio)
    for n in range(1, 4):
        studio.step()
        rec.wait(lambda r, n=n: len(r.of("snapshot")) >= n)
    assert studio.unsaved and studio.checkpoint_path is None
    path = studio.save(tmp_path / "three.pt")
    assert not studio.unsaved and studio.checkpoint_path == path and rec.of("document")
    saved_history = {k: list(v) for k, v in studio.history.items()}
    studio.reset()
    assert studio.checkpoint_path is None and studio.trainer.step_count == 0
    studio.open(path)
    assert studio.trainer.step_count == 3 and studio.checkpoint_path == str(path) and not studio.unsaved
    assert studio.history == saved_history


def test_open_a_broken_file_keeps_the_model(studio, tmp_path):
    from clipvae_studio.core.checkpoint import CheckpointError

    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    trainer = studio.trainer
    with pytest.raises(CheckpointError):
        studio.open(bad)
    assert studio.trainer is trainer and studio.checkpoint_path is None


def test_divergence_rolls_back_once(mnist5k):
    studio = Studio(small(lr=1e3), mnist5k)
    studio.new_model()
    rec = Recorder(studio)
    try:
        studio.start()
        assert studio.wait_idle(WAIT_S)
        assert studio.state == "error"
        error = rec.of("error")[-1]
        assert "non-finite" in error.message and error.restored_step == studio.trainer.step_count
        steps = studio.history["step"]
        assert len(steps) == studio.trainer.step_count and all(s <= error.restored_step for s in steps)
        assert all(m["step"] <= error.restored_step for m in studio.eval_history)
        assert studio.continue_with_lr(1e-3) and studio.trainer.config.lr == 1e-3
        studio.stop_and_wait(WAIT_S)
    finally:
        studio.shutdown(5)


def test_settings_follow_the_trainer_rules(studio):
    rec = Recorder(studio)
    studio.step()
    rec.wait(lambda r: r.of("snapshot"))
    trainer = studio.trainer
    assert studio.change_setting("lr", 5e-4) == "live" and studio.trainer is trainer and trainer.config.lr == 5e-4
    weights = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    assert studio.change_setting("batch_size", 32) == "rebuilt"
    rebuilt = studio.trainer
    assert rebuilt is not trainer and rebuilt.step_count == 1 and rebuilt.config.batch_size == 32
    assert all((rebuilt.model.state_dict()[k].cpu() == v.cpu()).all() for k, v in weights.items())
    assert studio.change_setting("z_dim", 8) == "fresh" and studio.trainer.step_count == 0
    with pytest.raises(ValueError):
        studio.change_setting("batch_size", 0)


def test_nothing_to_train_once_the_planned_epochs_are_done(studio):
    studio.trainer.step_count = studio.trainer.total_steps
    assert studio.planned_epochs_done and not studio.can_start
    assert studio.start() is False and not studio.busy


def test_csv_export_reads_the_one_history(studio, tmp_path):
    rec = Recorder(studio)
    for n in range(1, 3):
        studio.step()
        rec.wait(lambda r, n=n: len(r.of("snapshot")) >= n)
    path = tmp_path / "loss.csv"
    studio.export_loss_csv(path)
    rows = list(csv.reader(path.open()))
    assert rows[0][:3] == ["step", "epoch", "total"] and [int(r[0]) for r in rows[1:]] == [1, 2]
    assert float(rows[2][2]) == pytest.approx(studio.history["total"][1], rel=1e-7)
