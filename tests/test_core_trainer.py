"""The Qt-free training loop: control from another thread, events, determinism, divergence."""
import math
import threading

import numpy as np
import pytest
import torch

from clipvae_studio.core import Trainer, preset
from clipvae_studio.core.events import ErrorEvent, EvalEvent, LatentSnapshot, StateEvent, StepEvent, WeightsEvent


def small(**changes):
    return preset("studio").with_values(width=32, depth=1, batch_size=64, snapshot_size=200,
                                        eval_every_steps=25, **changes)


def test_events_and_history(mnist5k):
    events = []
    trainer = Trainer(small(), mnist5k, listener=events.append, eval_size=200, publish_weights=True)
    summary = trainer.run(max_steps=50)
    kinds = {type(e) for e in events}
    assert {StepEvent, EvalEvent, LatentSnapshot, WeightsEvent, StateEvent} <= kinds
    steps = [e for e in events if isinstance(e, StepEvent)]
    assert [e.step for e in steps] == list(range(1, 51))
    assert set(steps[0].losses) == {"total", "clip", "kld_image", "kld_label", "rec_image", "ce_label", "label_match",
                                     "prior_mmd"}
    assert steps[-1].losses["label_match"] > 0  # the studio preset weighs it in
    assert summary["steps"] == 50 and summary["samples"] == 50 * 64
    assert len(trainer.history["total"]) == 50
    snap = next(e for e in events if isinstance(e, LatentSnapshot))
    z = trainer.config.z_dim
    assert snap.mu.shape == (200, z) and snap.label_mu.shape == (10, z)
    assert np.array_equal(snap.labels, mnist5k.test_labels.numpy()[snap.indices])
    evals = [e.metrics for e in events if isinstance(e, EvalEvent)]
    assert [m["step"] for m in evals] == [25, 50]
    assert 0 <= evals[-1]["zero_shot_accuracy"] <= 1 and evals[-1]["recon_nats"] > 0
    assert [e.state for e in events if isinstance(e, StateEvent)][-1] == "finished"


def test_training_learns(mnist5k):
    trainer = Trainer(preset("studio"), mnist5k)
    before = trainer.run_evaluation()
    trainer.run(max_steps=150)
    after = trainer.last_metrics
    assert after["zero_shot_accuracy"] > max(0.6, before["zero_shot_accuracy"] + 0.3)
    assert after["recon_nats"] < before["recon_nats"] - 100


def test_same_seed_same_run(mnist5k):
    runs = []
    for _ in range(2):
        trainer = Trainer(small(seed=3), mnist5k, eval_size=100)
        trainer.run(max_steps=15)
        runs.append(list(trainer.history["total"]))
    assert runs[0] == runs[1]
    other = Trainer(small(seed=4), mnist5k, eval_size=100)
    other.run(max_steps=15)
    assert other.history["total"] != runs[0]


class EventLog:
    """The trainer's events in order, and a way to wait for one (no sleeps, no wall-clock bounds)."""

    def __init__(self, trainer):
        self.events = []
        self._cv = threading.Condition()
        trainer.add_listener(self._record)

    def _record(self, event):
        with self._cv:
            self.events.append(event)
            self._cv.notify_all()

    def wait_for(self, predicate, timeout=60):
        with self._cv:
            assert self._cv.wait_for(lambda: any(predicate(e) for e in self.events), timeout), "never happened"
            return len(self.events)

    def after(self, index, kind):
        with self._cv:
            return [e for e in self.events[index:] if isinstance(e, kind)]


def test_pause_step_resume_stop_from_another_thread(mnist5k):
    trainer = Trainer(small(), mnist5k, eval_size=100)
    log = EventLog(trainer)
    result = {}
    thread = threading.Thread(target=lambda: result.update(trainer.run()))
    thread.start()
    log.wait_for(lambda e: isinstance(e, StepEvent) and e.step >= 5)
    trainer.pause()
    paused_index = log.wait_for(lambda e: isinstance(e, StateEvent) and e.state == "paused")
    paused_at = trainer.step_count
    trainer.step()
    # the paused loop takes exactly the one queued step, then shows it (a snapshot) and waits again
    log.wait_for(lambda e: isinstance(e, LatentSnapshot) and e.step == paused_at + 1)
    assert [e.step for e in log.after(paused_index, StepEvent)] == [paused_at + 1]
    assert trainer.step_count == paused_at + 1 and trainer.state == "paused"
    trainer.resume()
    log.wait_for(lambda e: isinstance(e, StepEvent) and e.step > paused_at + 1)
    trainer.stop()
    thread.join(60)
    assert not thread.is_alive()
    assert result["state"] == "stopped" and trainer.state == "stopped"
    assert isinstance(log.events[-1], StateEvent) and log.events[-1].state == "stopped"


def test_step_when_idle_is_synchronous(mnist5k):
    trainer = Trainer(small(), mnist5k, eval_size=100)
    losses = trainer.step()
    assert trainer.step_count == 1 and losses["total"] > 0


def test_nonfinite_loss_stops_and_leaves_finite_weights(mnist5k):
    events = []
    trainer = Trainer(small(lr=1e3), mnist5k, listener=events.append, eval_size=100)
    summary = trainer.run(max_steps=500)
    errors = [e for e in events if isinstance(e, ErrorEvent)]
    assert len(errors) == 1 and "non-finite" in errors[0].message
    assert summary["state"] == "error" and summary["total_steps"] < 500
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    assert trainer.step_count == errors[0].restored_step
    assert len(trainer.history["total"]) == trainer.step_count
    # it can be trained again with a sane learning rate from the rolled-back weights
    for group in trainer.optimizer.param_groups:
        group["lr"] = 1e-4
    trainer.config = trainer.config.with_values(lr=1e-4)
    assert trainer.step() is not None and trainer.step_count == errors[0].restored_step + 1


def test_time_budget(mnist5k):
    # The budget counts training time, not wall time: the run ends at the first step that reaches it.
    trainer = Trainer(small(), mnist5k, eval_size=100)
    trainer.step()  # counts as training time before this run
    trained = [trainer.train_seconds]  # the training time before each step of the run, and after the last
    trainer.add_listener(lambda e: trained.append(trainer.train_seconds) if isinstance(e, StepEvent) else None)
    summary = trainer.run(time_budget=0.5)
    used = [t - trained[0] for t in trained]
    assert summary["state"] == "finished" and summary["steps"] == len(used) - 1 < trainer.total_steps - 1
    assert used[-2] < 0.5 <= used[-1] == pytest.approx(summary["seconds"], abs=1e-3)


def test_cosine_schedule_completes_within_a_time_budget(mnist5k):
    # epochs far beyond what 0.5 s allows: the time budget, not the step plan, ends the decay
    trainer = Trainer(small(lr_schedule="cosine", epochs=10**5), mnist5k, eval_size=100)
    lrs, trained = [], [0.0]  # each step's rate; the training time before each step, and after the last
    trainer.add_listener(lambda e: (lrs.append(e.lr), trained.append(trainer.train_seconds))
                         if isinstance(e, StepEvent) else None)
    summary = trainer.run(time_budget=0.5)
    lr = trainer.config.lr
    # each step's rate follows the cosine over the share of the budget used before it (no wall-clock bound)
    expected = [0.5 * lr * (1 + math.cos(math.pi * min(1.0, t / 0.5))) for t in trained[:-1]]
    assert lrs == pytest.approx(expected, rel=1e-6, abs=1e-12)
    assert lrs[0] == pytest.approx(lr) and all(a >= b for a, b in zip(lrs, lrs[1:]))
    assert summary["state"] == "finished" and trained[-1] >= 0.5  # the budget, not the epochs, ended it
