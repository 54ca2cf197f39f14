"""The studio model: what an open studio is, with no Qt (docs/architecture.md, "The studio model").

One `Studio` owns the dataset and where it came from, the trainer (its config, its loss and metric
history: the one copy), the published inference model, the run state, the checkpoint path and
whether the model is saved, and the samples/s figure. Views observe `studio.events` and call its
methods; they never keep their own copy of these.

Threads: the trainer runs in a training thread that an *executor* provides (`submit(fn)`: here a
plain thread, in the GUI a QThread, gui/training_worker.py). The trainer's listener runs there,
collects steps and builds inference copies, then hands each event to `post(fn, *args)`, which runs
it where the model's state may change (here at once; in the GUI on the GUI thread,
gui/studio_signals.py). Events carry the trainer's generation, so those of a replaced trainer are
dropped. torch loads lazily: the window imports this module before torch is loaded.
"""
from __future__ import annotations

import queue
import threading
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from .config import MODEL_FIELDS, TrainConfig
from .events import CURVE_KEYS, ErrorEvent, EvalEvent, LatentSnapshot, StateEvent, StepEvent, WeightsEvent
from .history_csv import write_history_csv
from .live_fields import LIVE_FIELDS
from .observable import EventGroup

if TYPE_CHECKING:
    from .trainer import Trainer

STATES = ("idle", "running", "paused", "stopping", "stopped", "finished", "error")
BUSY_STATES = ("running", "paused", "stopping")  # a run loop is alive
EMIT_INTERVAL_S = 1 / 30  # loss batches: at most ~30 a second
RATE_WINDOW_S = 2.0  # samples/s is measured over the last ~2 s of steps


class PlainThread:
    """An executor: runs submitted jobs one after another in one daemon thread (Qt-free use)."""

    def __init__(self, name: str = "training"):
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self.thread.start()

    def submit(self, job: Callable[[], None]) -> None:
        self._jobs.put(job)

    def _loop(self) -> None:
        while (job := self._jobs.get()) is not None:
            job()

    def shutdown(self, timeout_s: float = 1.0) -> bool:
        self._jobs.put(None)
        self.thread.join(timeout_s)
        return not self.thread.is_alive()


def call_now(fn: Callable, *args) -> None:
    fn(*args)


def trainer_from_checkpoint(checkpoint, dataset) -> "Trainer":
    """A trainer that continues from a loaded checkpoint (weights, optimiser, step, history); one
    saved for a device this machine lacks trains where it can instead."""
    from .autosave import restore_trainer

    try:
        return restore_trainer(checkpoint, dataset, publish_weights=True)
    except Exception:
        checkpoint.config = checkpoint.config.with_values(device="auto")
        return restore_trainer(checkpoint, dataset, publish_weights=True)


def rebuild_keeping_weights(old: "Trainer", config: TrainConfig, dataset) -> "Trainer":
    """A new trainer for settings the old one fixed at construction (batch size, seed, device, ...),
    continuing from the same weights, optimiser state, step and history."""
    from .trainer import Trainer

    payload = {"optimizer": old.optimizer.state_dict(), "step": old.step_count,
               "history": {k: list(v) for k, v in old.history.items()},
               "eval_history": list(old.eval_history), "train_seconds": old.train_seconds}
    trainer = Trainer(config, dataset, model=old.model.cpu(), publish_weights=True)
    trainer.restore(payload)
    for group in trainer.optimizer.param_groups:
        group["weight_decay"] = config.weight_decay
    return trainer


class Studio:
    """An open studio. Events (all plain Python / numpy):

    state(str), losses(batch: numpy arrays step, epoch, total, terms; plus samples_per_second),
    evaluated(metrics dict), snapshot(LatentSnapshot), model(CPU eval CLIPVAE), error(ErrorEvent),
    run_finished(summary dict), trainer(Trainer), dataset(ImageDataset), document() (path/saved).

    Followed mode (`follow`): the studio shows a run that another process trains (a run folder,
    core/run_folder.py; gui/run_follow.py reads it). Its records are then the loss and metrics
    history, each of its checkpoints the model; nothing trains here until a normal install.
    """

    def __init__(self, config: TrainConfig | None = None, dataset=None, source=None, *,
                 executor=None, post: Callable | None = None):
        self.events = EventGroup("state", "losses", "evaluated", "snapshot", "model", "error", "run_finished",
                                 "trainer", "dataset", "document")
        self.config = config  # the first trainer's settings; afterwards trainer.config
        self.dataset = dataset
        self.dataset_source = tuple(source) if source else ((dataset.name, None) if dataset is not None else None)
        self.trainer: Trainer | None = None
        self.inference_model = None
        self.state = "idle"
        self.checkpoint_path: str | None = None
        self.samples_per_second = 0.0
        self.generation = 0
        self.executor = executor if executor is not None else PlainThread()
        self.post = post or call_now
        self._saved_step = 0
        self._lock = threading.Lock()
        self._busy = self._stopping = self._restart = False
        self._idle = threading.Event()
        self._idle.set()
        self._sent = 0  # history rows already sent in a losses event
        self._last_flush = 0.0
        self._rate: deque = deque()
        self.followed: str | None = None  # the name of the run followed, or None
        self.followed_status: dict = {}  # the followed run's status.json, as last read
        self._followed_history: dict | None = None
        self._followed_evals: list = []
        self._followed_shown = False  # a checkpoint of the followed run is the current trainer
        self._path_before_following: str | None = None
        self.run_folders: str | None = None  # opt-in (keep_run_folders): training is recorded under it
        self.run_folder: str | None = None  # the current model's run folder, once it has trained
        self._run_folder_generation = -1
        # A fresh model's settings are fitted to the data as on the command line (decoder heads
        # off for many labels, shifts within small images): `defaults` is the preset they come
        # from, `explicit` the fields the person set, which are kept; `fit_notes` says what changed.
        self.defaults = config
        self.explicit: set[str] = set()
        self.fit_notes: list[str] = []

    # --- what views read -------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """True while a run loop is requested or alive (also paused or stopping)."""
        return self._busy

    @property
    def history(self) -> dict:
        """The loss history: the trainer's own lists (the plots and the CSV read this one copy);
        while following a run, that run's records."""
        if self._followed_history is not None:
            return self._followed_history
        return self.trainer.history if self.trainer is not None else {k: [] for k in ("step", "epoch") + CURVE_KEYS}

    @property
    def eval_history(self) -> list:
        if self._followed_history is not None:
            return self._followed_evals
        return self.trainer.eval_history if self.trainer is not None else []

    @property
    def unsaved(self) -> bool:
        trainer = self.trainer
        return trainer is not None and trainer.step_count > 0 and trainer.step_count != self._saved_step

    @property
    def planned_epochs_done(self) -> bool:
        trainer = self.trainer
        return trainer is not None and trainer.step_count >= trainer.total_steps

    @property
    def can_start(self) -> bool:
        return self.trainer is not None and self.followed is None and (
            self.state == "paused" or not self.planned_epochs_done)

    # --- the model's lifecycle (caller's thread; the GUI thread in the GUI) ----------------
    def install(self, trainer: "Trainer", *, saved: bool = True, model=None, snapshot=None,
                keep_following: bool = False, announce: bool = True) -> None:
        """Make `trainer` current: its history, weights and state are what the views show now.
        `model` / `snapshot`: its inference copy and latent snapshot, when built off this thread.
        Any install but a followed run's checkpoint ends following. announce=False: the same
        model moved on (a followed run's next checkpoint), so no `trainer` event: the views keep
        their state (the map its basis and picked point) and get the new weights and snapshot."""
        if self._busy:
            raise RuntimeError("stop training before replacing the trainer")
        old = self.trainer
        if old is not None and self._listen in old.listeners:
            old.listeners.remove(self._listen)
        from .explore import inference_copy  # torch

        self.generation += 1
        self.trainer, self.config = trainer, trainer.config
        self._saved_step = trainer.step_count if saved else -1
        self._sent, self._last_flush = len(trainer.history["step"]), 0.0
        self._rate.clear()
        self.samples_per_second = 0.0
        if not keep_following:
            self.followed, self._followed_history, self._followed_evals = None, None, []
        trainer.add_listener(self._listen)
        if announce:
            self.events.trainer.emit(trainer)
        self._set_model(model if model is not None else inference_copy(trainer.model))
        self.events.snapshot.emit(snapshot if snapshot is not None else trainer.latent_snapshot())
        self._set_state(trainer.state)
        self.events.document.emit()

    def new_model(self, config: TrainConfig | None = None) -> None:
        """Fresh weights for `config` (default: the current settings); the checkpoint path is forgotten."""
        from .trainer import Trainer

        self.stop_and_wait()
        config = config or (self.trainer.config if self.trainer is not None else self.config)
        self.checkpoint_path = None
        self.install(Trainer(self._fitted(config), self.dataset, publish_weights=True))

    reset = new_model

    def use_preset(self, config: TrainConfig) -> None:
        """A fresh model from a preset: its values are the defaults, nothing is set by hand yet."""
        self.defaults, self.explicit = config, set()
        self.new_model(config)

    def _fitted(self, config: TrainConfig) -> TrainConfig:
        from .validation import fit_to_dataset

        if self.dataset is None:
            return config
        config, self.fit_notes = fit_to_dataset(config, self.dataset.image_shape, self.dataset.num_labels,
                                                self.explicit, self.defaults)
        return config

    def set_dataset(self, dataset, source=None, config: TrainConfig | None = None) -> None:
        """Train on `dataset` from now on (a fresh model)."""
        self.stop_and_wait()
        self.dataset = dataset
        self.dataset_source = tuple(source) if source else (dataset.name, None)
        self.new_model(config)
        self.events.dataset.emit(dataset)

    def open(self, path) -> "Trainer":
        """Load a checkpoint and continue from it; raises CheckpointError (the current model stays)."""
        from .checkpoint import load_checkpoint

        ckpt = load_checkpoint(str(path), self.dataset.image_shape, self.dataset.num_labels)
        self.stop_and_wait()
        trainer = trainer_from_checkpoint(ckpt, self.dataset)
        self.checkpoint_path = str(path)
        self.install(trainer)
        return trainer

    def adopt(self, trainer: "Trainer", checkpoint_path: str | None, *, saved: bool) -> None:
        """Make a trainer built elsewhere current (e.g. a recovered autosave)."""
        self.stop_and_wait()
        self.checkpoint_path = checkpoint_path
        self.install(trainer, saved=saved)

    # --- following a run that another process trains (gui/run_follow.py reads it) -------------
    def follow(self, name: str) -> None:
        """Show the run `name` from now on: an empty history until its records arrive
        (add_followed); the current model stays on the map until its first checkpoint
        (show_followed). Start and Step do nothing while following."""
        self.stop_and_wait()
        self.followed, self.followed_status, self._followed_shown = str(name), {}, False
        self._followed_history = {k: [] for k in ("step", "epoch") + CURVE_KEYS}
        self._followed_evals = []
        self._path_before_following, self.checkpoint_path = self.checkpoint_path, None
        self.events.trainer.emit(self.trainer)  # the views reload the (followed) history
        self.events.document.emit()

    def add_followed(self, steps: list[dict], evals: list[dict], rewind_to: int | None = None) -> bool:
        """The followed run's new records ("step" records with their `losses`, "eval" records with
        their `metrics`), after dropping those past `rewind_to` (a restart; -1: all). Emits
        `losses` / `evaluated` for the new ones; True when earlier rows were dropped (the views
        must reload the history)."""
        history, evals_held = self._followed_history, self._followed_evals
        if history is None:
            return False
        rewound = False
        if rewind_to is not None:
            keep = sum(1 for s in history["step"] if s <= rewind_to)
            rewound = keep < len(history["step"])
            for column in history.values():
                del column[keep:]
            kept_evals = [m for m in evals_held if m["step"] <= rewind_to]
            rewound |= len(kept_evals) < len(evals_held)
            evals_held[:] = kept_evals
        if steps:
            for record in steps:
                losses = record.get("losses") or {}
                history["step"].append(int(record["step"]))
                history["epoch"].append(float(record.get("epoch", 0.0)))
                for key in CURVE_KEYS:
                    history[key].append(float(losses.get(key, np.nan)))
            n = len(steps)
            batch = {"step": np.asarray(history["step"][-n:], dtype=np.int64),
                     "epoch": np.asarray(history["epoch"][-n:], dtype=np.float64),
                     **{key: np.asarray(history[key][-n:], dtype=np.float64) for key in CURVE_KEYS},
                     "samples_per_second": float(steps[-1].get("samples_per_second") or 0.0)}
            self.samples_per_second = batch["samples_per_second"]
            if not rewound:
                self.events.losses.emit(batch)
        for record in evals:
            metrics = {"step": int(record["step"]), "epoch": float(record.get("epoch", 0.0)),
                       **(record.get("metrics") or {})}
            evals_held.append(metrics)
            if not rewound:
                self.events.evaluated.emit(metrics)
        return rewound

    def show_followed(self, trainer: "Trainer", model=None, snapshot=None) -> None:
        """A checkpoint of the followed run becomes the model the map and the explorer show."""
        if self.followed is None:
            return
        rate = self.samples_per_second  # the run's, from its records: installing resets it
        old = self.trainer
        moved_on = self._followed_shown and old is not None and old.model.architecture() == trainer.model.architecture()
        self.install(trainer, saved=True, model=model, snapshot=snapshot, keep_following=True, announce=not moved_on)
        self._followed_shown = True
        self.samples_per_second = rate

    def stop_following(self) -> None:
        """Back to a local studio: the followed run's last checkpoint shown stays as the model
        (Start trains it here, from its checkpoint's history)."""
        if self.followed is None:
            return
        if not self._followed_shown:  # the local model is still the current one
            self.checkpoint_path = self._path_before_following
        self.followed, self._followed_history, self._followed_evals = None, None, []
        self.samples_per_second = 0.0
        self.events.trainer.emit(self.trainer)
        self._set_state(self.state)
        self.events.document.emit()

    # --- recording this studio's training in run folders (opt-in) ------------------------------
    def keep_run_folders(self, root) -> None:
        """Record training in run folders under `root` from the next Start on (None: stop): one
        folder per model (fresh, opened, on another dataset...), made when it first trains; each
        Start is one attempt in it. The same folders as `clipvae-studio train --run-dir` writes,
        so Open run and TensorBoard read them (docs/distributed.md, "Run folders")."""
        self.run_folders = str(root) if root else None

    def _open_run_logger(self, trainer, generation: int):
        """On the training thread, as a run starts: a RunLogger listening to `trainer`, or None."""
        if not self.run_folders:
            return None
        from .run_folder import RunFolderError, RunFolderWriter
        from .run_logger import RunLogger

        try:
            if self._run_folder_generation != generation or self.run_folder is None:
                base = Path(self.run_folders) / f"{self.dataset.name}-{time.strftime('%Y%m%d-%H%M%S')}"
                path, n = base, 1
                while path.exists():
                    n += 1
                    path = base.with_name(f"{base.name}-{n}")
                self.run_folder, self._run_folder_generation = str(path), generation
            writer = RunFolderWriter(self.run_folder)
            writer.write_config({"config": trainer.config.to_dict(), "dataset": self.dataset.name, "world_size": 1,
                                 "source": "studio"})
            logger = RunLogger(writer, trainer)
        except (RunFolderError, OSError) as exc:
            self.post(self._deliver, generation, "error", ErrorEvent(
                trainer.step_count, f"the run folder cannot be written ({exc}); training goes on without it"))
            return None
        trainer.add_listener(logger)
        return logger

    def _close_run_logger(self, logger, trainer, generation: int, failure: str | None) -> None:
        if logger is None:
            return
        if logger in trainer.listeners:
            trainer.listeners.remove(logger)
        try:
            if failure:
                logger.fail(failure)
            else:
                logger.finish(trainer.state if trainer.state in ("finished", "stopped", "error") else "stopped")
        except Exception as exc:  # e.g. the disk filled up: the training itself is fine
            self.post(self._deliver, generation, "error", ErrorEvent(
                trainer.step_count, f"the run folder could not be completed: {exc}"))

    def save(self, path=None) -> str:
        """Save to `path` (default: the current checkpoint path); raises CheckpointError."""
        from .checkpoint import save_trainer

        path = str(path or self.checkpoint_path)
        save_trainer(path, self.trainer, dataset_name=self.dataset.name)
        self.checkpoint_path = path
        self._saved_step = self.trainer.step_count
        self.events.document.emit()
        return path

    def export_loss_csv(self, path) -> None:
        write_history_csv(path, self.history, CURVE_KEYS)

    def change_setting(self, name: str, value) -> str:
        """Apply one setting the way a trainer allows it. Returns how: "live" (the running loop
        reads it on its next step), "rebuilt" (same weights, new trainer), "fresh" (a model field:
        new weights; ask first) or "locked" (needs a stopped trainer). Raises ValueError if invalid."""
        config = self.trainer.config.with_values(**{name: value})
        self.explicit.add(name)
        if name in MODEL_FIELDS:
            self.new_model(config)
            return "fresh"
        if name in LIVE_FIELDS:
            self.trainer.config = config
            return "live"
        if self._busy:
            return "locked"
        saved = self._saved_step == self.trainer.step_count
        self.install(rebuild_keeping_weights(self.trainer, config, self.dataset), saved=saved)
        return "rebuilt"

    # --- run control (any thread) -------------------------------------------------------
    def start(self) -> bool:
        """Start a run, or resume a paused one. False when there is nothing to train."""
        trainer = self.trainer
        if trainer is None or self.followed is not None or (not self._busy and self.planned_epochs_done):
            return False
        with self._lock:
            trainer.resume()
            if self._busy:
                if self._stopping:  # the loop is on its way out: run again when it ends
                    self._restart = True
                return True
            self._busy, self._stopping, self._restart = True, False, False
            self._idle.clear()
        self.executor.submit(self._run_job)
        return True

    def pause(self) -> None:
        if self.trainer is not None:
            self.trainer.pause()

    def stop(self) -> None:
        if self.trainer is None:
            return
        with self._lock:
            stopping = self._busy and not self._stopping
            if self._busy:
                self._stopping = True
            self._restart = False
        self.trainer.stop()
        if stopping:  # say so at once: the loop ends after its current step
            self._set_state("stopping")

    def step(self) -> None:
        """One optimiser step: queued into the paused loop, or run in the training thread."""
        if self.trainer is None or self.followed is not None:
            return
        if self._busy:
            self.trainer.step()
        else:
            self.executor.submit(self._step_job)

    def stop_and_wait(self, timeout: float = 5.0) -> bool:
        """Stop the run and block until its loop has returned (True) or `timeout` passes."""
        if not self._busy:
            return True
        self.stop()
        return self._idle.wait(timeout)

    def wait_idle(self, timeout: float | None = None) -> bool:
        return self._idle.wait(timeout)

    def continue_with_lr(self, lr: float) -> bool:
        """After a divergence: lower the learning rate and train on."""
        if self._busy:
            return False
        self.trainer.config = self.trainer.config.with_values(lr=lr)
        return self.start()

    def shutdown(self, timeout_s: float = 1.0) -> bool:
        self.stop()
        shutdown = getattr(self.executor, "shutdown", None)
        return shutdown(timeout_s) if shutdown is not None else True

    # --- the training thread ----------------------------------------------------------------
    def _run_job(self) -> None:
        trainer, generation = self.trainer, self.generation
        self._rate.clear()  # (only the training thread touches it)
        logger, failure = self._open_run_logger(trainer, generation), None
        try:
            while True:
                try:
                    summary = trainer.run()
                except Exception as exc:  # a crash in the loop must reach the user, not kill the thread
                    failure = f"{type(exc).__name__}: {exc}"
                    self._flush()
                    self.post(self._deliver, generation, "error", ErrorEvent(trainer.step_count,
                                                                             f"training failed: {exc}"))
                    self.post(self._deliver, generation, "state", "error")
                    summary = trainer.summary()
                with self._lock:
                    if self._restart:
                        self._restart = self._stopping = False
                        continue
                    break
            self._flush()
            self._close_run_logger(logger, trainer, generation, failure)
            self.post(self._deliver, generation, "run_finished", summary)
        finally:
            with self._lock:
                self._busy = self._stopping = False
                self._idle.set()

    def _step_job(self) -> None:
        trainer, generation = self.trainer, self.generation
        if trainer is None or self._busy:
            return
        try:
            trainer.step()
            trainer.emit_snapshot()
        except Exception as exc:
            self.post(self._deliver, generation, "error", ErrorEvent(trainer.step_count, f"the step failed: {exc}"))
        self._flush()

    def _listen(self, event) -> None:
        """The trainer's listener, on the training thread: keep it cheap."""
        if isinstance(event, StepEvent):
            if self._stopping:  # a stop that raced the start of run(), which clears the stop flag
                self.trainer.stop()
            if time.perf_counter() - self._last_flush >= EMIT_INTERVAL_S:
                self._flush()
            return
        if isinstance(event, ErrorEvent) and event.restored_step is not None:
            self._sent = min(self._sent, len(self.trainer.history["step"]))  # the history was cut back
        self._flush()
        generation = self.generation
        if isinstance(event, LatentSnapshot):
            self.post(self._deliver, generation, "snapshot", event)
        elif isinstance(event, WeightsEvent):
            # The copy is built here, on the training thread (~25 ms a second, ~2 % of training):
            # on the GUI thread it stalled a drag on the map for as long, once a second.
            from .explore import inference_copy

            self.post(self._deliver, generation, "model", inference_copy(self.trainer.model, event.state_dict))
        elif isinstance(event, EvalEvent):
            self.post(self._deliver, generation, "evaluated", dict(event.metrics))
        elif isinstance(event, StateEvent):
            self.post(self._deliver, generation, "state", event.state)
        elif isinstance(event, ErrorEvent):
            self.post(self._deliver, generation, "error", event)

    def _flush(self) -> None:
        """Send the history rows added since the last losses event (read from the trainer's lists)."""
        trainer = self.trainer
        history = trainer.history
        n = len(history["step"])
        for key in CURVE_KEYS:  # each key's list grows in turn: send only rows every key has
            n = min(n, len(history[key]))
        if n <= self._sent:
            return
        start, self._sent = self._sent, n
        batch = {"step": np.asarray(history["step"][start:n], dtype=np.int64),
                 "epoch": np.asarray(history["epoch"][start:n], dtype=np.float64)}
        for key in CURVE_KEYS:
            batch[key] = np.asarray(history[key][start:n], dtype=np.float64)
        now = time.perf_counter()
        self._last_flush = now
        self._rate.append((now, int(batch["step"][-1])))
        while len(self._rate) > 2 and now - self._rate[0][0] > RATE_WINDOW_S:
            self._rate.popleft()
        (t0, s0), (t1, s1) = self._rate[0], self._rate[-1]
        batch["samples_per_second"] = (s1 - s0) * trainer.config.batch_size / (t1 - t0) if t1 > t0 else 0.0
        self.post(self._deliver, self.generation, "losses", batch)

    # --- delivery: where the model's state changes (the GUI thread in the GUI) -----------------
    def _deliver(self, generation: int, kind: str, payload) -> None:
        if generation != self.generation:
            return  # from a trainer that has been replaced
        if kind == "state":
            self._set_state(payload)
        elif kind == "model":
            self._set_model(payload)
        elif kind == "losses":
            if payload["samples_per_second"] and self.state == "running":
                self.samples_per_second = payload["samples_per_second"]
            self.events.losses.emit(payload)
        else:
            getattr(self.events, kind).emit(payload)

    def _set_state(self, state: str) -> None:
        if self.state == "stopping" and state in ("running", "paused") and self._stopping:
            return  # a late report from the loop that is on its way out
        if state != "running":
            self.samples_per_second = 0.0
        self.state = state
        self.events.state.emit(state)

    def _set_model(self, model) -> None:
        self.inference_model = model
        self.events.model.emit(model)
