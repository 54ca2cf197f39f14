"""A trainer listener that keeps a run folder (core/run_folder.py) and TensorBoard up to date."""
from __future__ import annotations

import time

from .events import ErrorEvent, EvalEvent, StateEvent, StepEvent
from .run_folder import RunFolderWriter
from .tensorboard_log import open_tensorboard

STATUS_EVERY_S = 2.0  # status.json's step is refreshed this often while training


class RunLogger:
    """Records every log_every-th step and every evaluation, checkpoints every checkpoint_every
    steps. `samples_scale`: world size, since a rank's step events count its own slice only."""

    def __init__(self, writer: RunFolderWriter, trainer, *, checkpoint_every: int = 200, log_every: int = 1,
                 tensorboard: bool = True, samples_scale: int = 1):
        self.writer, self.trainer = writer, trainer
        self.checkpoint_every, self.log_every = max(1, checkpoint_every), max(1, log_every)
        self.samples_scale = samples_scale
        start = trainer.step_count
        self.tb = open_tensorboard(writer.path, purge_step=start + 1 if start else None) if tensorboard else None
        self._status_due = 0.0
        writer.start(start, total_steps=trainer.total_steps, world_size=samples_scale)

    def __call__(self, event) -> None:
        if isinstance(event, StepEvent):
            self._step(event)
        elif isinstance(event, EvalEvent):
            metrics = {k: v for k, v in event.metrics.items() if k not in ("step", "epoch")}
            self.writer.append({"kind": "eval", "step": event.step, "epoch": event.epoch, "time": time.time(),
                                "attempt": self.writer.attempt, "metrics": metrics})
            if self.tb:
                self.tb.scalars("eval", metrics, event.step)
        elif isinstance(event, StateEvent):
            self.writer.set_status(event.state, step=self.trainer.step_count)
        elif isinstance(event, ErrorEvent):
            self.writer.set_status("error", step=event.step, message=event.message)

    def _step(self, event: StepEvent) -> None:
        step = event.step
        if step % self.log_every == 0 or step == self.trainer.total_steps:
            speed = event.samples_per_second * self.samples_scale
            self.writer.append({"kind": "step", "step": step, "epoch": event.epoch, "time": time.time(),
                                "train_seconds": self.trainer.train_seconds, "attempt": self.writer.attempt,
                                "lr": event.lr, "samples_per_second": speed, "losses": event.losses})
            if self.tb:
                self.tb.scalars("loss", event.losses, step)
                self.tb.scalars("", {"speed/samples_per_second": speed, "lr": event.lr}, step)
        if step % self.checkpoint_every == 0:
            self.writer.save_checkpoint(self.trainer)
        now = time.monotonic()
        if now >= self._status_due:
            self._status_due = now + STATUS_EVERY_S
            self.writer.set_status(self.writer.status.get("state", "running"), step=step, epoch=event.epoch)

    def fail(self, message: str) -> None:
        """The run broke off (an exception): say so, write no checkpoint."""
        self.writer.set_status("failed", step=self.trainer.step_count, message=message[:500])
        if self.tb:
            self.tb.close()
        self.writer.close()

    def finish(self, state: str) -> None:
        """The final checkpoint (if the last periodic one is older) and status."""
        # a failed run keeps its last good checkpoint: non-finite weights are never written
        if state != "error" and self.writer.status.get("checkpoint_step") != self.trainer.step_count:
            self.writer.save_checkpoint(self.trainer)
        self.writer.set_status(state, step=self.trainer.step_count, epoch=self.trainer.epoch)
        if self.tb:
            self.tb.close()
        self.writer.close()
