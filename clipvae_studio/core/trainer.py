"""The training loop: plain Python, no Qt. Other threads steer it through
pause()/resume()/step()/stop() and hear from it through listener callbacks."""
from __future__ import annotations

import math
import threading
import time
from dataclasses import replace
from typing import Callable

import numpy as np
import torch

from .architecture import param_groups
from . import augment
from .augment import shift_for
from .config import TrainConfig
from .data import ImageDataset
from .device import resolve_device
from .events import ErrorEvent, EvalEvent, LatentSnapshot, StateEvent, StepEvent, WeightsEvent
from .losses import LOSS_TERMS
from .metrics import evaluate, to_float
from .model import CLIPVAE, weighted_total
from .speed import all_finite, apply_thread_policy, clone_state, copy_state, keep_freed_memory, make_adamw

LOSS_KEYS = ("total",) + LOSS_TERMS
HISTORY_KEYS = ("step", "epoch") + LOSS_KEYS
GOOD_WEIGHTS_EVERY = 20  # steps between copies of known-finite weights for roll-back


class Trainer:
    def __init__(self, config: TrainConfig, dataset: ImageDataset, model: CLIPVAE | None = None,
                 listener: Callable | None = None, device: str | torch.device | None = None,
                 eval_size: int | None = 2000, publish_weights: bool = False, num_threads: int | None = None):
        self.config = config.validate()
        self.dataset = dataset
        self.device = torch.device(device) if isinstance(device, torch.device) else resolve_device(device or config.device)
        if model is None:
            torch.manual_seed(config.seed)
            model = CLIPVAE.from_config(config, dataset.image_shape, dataset.num_labels, dataset.label_names)
        elif tuple(model.image_shape) != tuple(dataset.image_shape):
            raise ValueError(f"the model expects images of shape {model.image_shape} but the dataset "
                             f"{dataset.name} has {dataset.image_shape}")
        elif model.num_labels != dataset.num_labels:
            raise ValueError(f"the model knows {model.num_labels} labels but the dataset has {dataset.num_labels}")
        self.model = model.to(self.device)
        self._threads_wanted = num_threads  # None: speed.auto_threads(); 0: leave torch's setting
        self.num_threads = apply_thread_policy(self.device, num_threads)
        if self.device.type == "cpu":
            keep_freed_memory()
        self._optimizer: torch.optim.Optimizer | None = None  # built on first use: see the optimizer property
        self.listeners: list[Callable] = [listener] if listener else []
        self.publish_weights = publish_weights
        # Data lives on the device as uint8; batches are sliced, not collated.
        self.train_images = dataset.train_images.to(self.device)
        self.train_labels = dataset.train_labels.to(self.device)
        self.test_images = dataset.test_images.to(self.device)
        self.test_labels = dataset.test_labels.to(self.device)
        rng = np.random.default_rng(config.seed)
        n_test = len(dataset.test_images)
        self.eval_indices = np.sort(rng.permutation(n_test)[:eval_size]) if eval_size else np.arange(n_test)
        self.snapshot_indices = np.sort(rng.permutation(n_test)[:config.snapshot_size])
        self.generator = torch.Generator().manual_seed(config.seed)
        self.steps_per_epoch = max(1, len(dataset.train_images) // config.batch_size)
        self.step_count = 0
        self.history: dict[str, list] = {k: [] for k in HISTORY_KEYS}
        self.eval_history: list[dict] = []
        self.train_seconds = 0.0
        self.state = "idle"
        self._budget: tuple[float, float] | None = None  # (start seconds, time budget) of the current run
        self.last_metrics: dict = {}
        self.lock = threading.RLock()  # held during an optimiser step; take it to read consistent weights
        self._cv = threading.Condition()
        self._stop = False
        self._paused = False
        self._pending_steps = 0
        self._perm: torch.Tensor | None = None
        self._batch_idx: torch.Tensor | None = None  # rows of the last batch (_next_batch)
        self._margins: tuple | None = None  # see _shift_margins
        self._good = None
        self._remember_good_weights()

    # --- control from any thread ------------------------------------------
    def pause(self) -> None:
        with self._cv:
            self._paused = True
            self._cv.notify_all()

    def resume(self) -> None:
        with self._cv:
            self._paused = False
            self._cv.notify_all()

    def stop(self) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify_all()

    def step(self) -> dict | None:
        """One optimiser step: done here if no loop runs, else queued for the paused loop."""
        if self.state in ("running", "paused"):
            with self._cv:
                self._pending_steps += 1
                self._cv.notify_all()
            return None
        self.num_threads = apply_thread_policy(self.device, self._threads_wanted)
        return self._train_step()

    @property
    def epoch(self) -> float:
        return self.step_count / self.steps_per_epoch

    @property
    def total_steps(self) -> int:
        return self.config.epochs * self.steps_per_epoch

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        """AdamW, built on first use: the first torch optimizer of a process imports torch._dynamo
        (1-3 s), which a window that merely shows an untrained model should not wait for."""
        if self._optimizer is None:
            with self.lock:
                if self._optimizer is None:
                    groups = param_groups(self.model, getattr(self.config, "lr_reference_fan_in", 0))
                    self._optimizer = make_adamw(groups, self.config.lr, self.config.weight_decay, self.device)
        return self._optimizer

    def prepare(self) -> None:
        """Build what the first step needs (the optimiser) now; call it from a worker thread to
        take that cost off the first click of Start. Optional: step() and run() do it anyway."""
        self.optimizer  # noqa: B018 (the property builds it)

    # --- events --------------------------------------------------------------
    def add_listener(self, listener: Callable) -> None:
        self.listeners.append(listener)

    def _emit(self, event) -> None:
        for listener in list(self.listeners):
            listener(event)

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self._emit(StateEvent(state))

    # --- the loop ----------------------------------------------------------------
    def run(self, max_steps: int | None = None, time_budget: float | None = None) -> dict:
        """Train until the planned epochs, max_steps, time_budget seconds of training, stop() or an error."""
        try:
            return self._run(max_steps, time_budget)
        except Exception:
            self._set_state("error")  # not "running": a later step() must step, not queue for a dead loop
            raise
        finally:
            self._budget = None  # a later step() follows the planned epochs again

    def _run(self, max_steps: int | None, time_budget: float | None) -> dict:
        with self._cv:
            self._stop = False
        self._set_state("paused" if self._paused else "running")
        # torch's thread count is per OS thread here: set it in the thread that runs the loop.
        self.num_threads = apply_thread_policy(self.device, self._threads_wanted)
        torch.manual_seed(self.config.seed + self.step_count)
        start_steps, start_seconds = self.step_count, self.train_seconds
        self._budget = (start_seconds, time_budget) if time_budget else None
        next_snapshot = 0.0
        finished = False
        while True:
            with self._cv:
                while self._paused and not self._stop and self._pending_steps == 0:
                    self._set_state("paused")
                    self._cv.wait(0.05)
                if self._stop:
                    break
                one_step = self._paused and self._pending_steps > 0
                if one_step:
                    self._pending_steps -= 1
            if self.step_count >= self.total_steps or (max_steps is not None and self.step_count - start_steps >= max_steps) \
                    or (time_budget is not None and self.train_seconds - start_seconds >= time_budget):
                finished = True
                break
            if not one_step:
                self._set_state("running")
            result = self._train_step()
            if result is None:  # non-finite loss: rolled back, error reported
                self._set_state("error")
                return self.summary(start_steps, start_seconds)
            if self.step_count % self.config.eval_every_steps == 0:
                self.run_evaluation()
            now = time.perf_counter()
            if now >= next_snapshot or one_step:
                self.emit_snapshot()
                next_snapshot = now + self.config.snapshot_every_s
        if self.step_count > start_steps and not self._weights_finite():
            # the last update overflowed the weights: no later step's loss would report it
            self._diverged([float("nan")] * len(LOSS_KEYS), what="the weights")
            self._set_state("error")
            return self.summary(start_steps, start_seconds)
        if self.step_count > start_steps and (not self.eval_history or self.eval_history[-1]["step"] != self.step_count):
            self.run_evaluation()
        self.emit_snapshot()
        self._set_state("finished" if finished else "stopped")
        return self.summary(start_steps, start_seconds)

    def summary(self, start_steps: int = 0, start_seconds: float = 0.0) -> dict:
        steps = self.step_count - start_steps
        seconds = self.train_seconds - start_seconds
        samples = steps * min(self.config.batch_size, len(self.train_images))  # a batch is at most the whole split
        return {"steps": steps, "samples": samples, "seconds": round(seconds, 3),
                "samples_per_second": round(samples / seconds, 1) if seconds > 0 else 0.0,
                "total_steps": self.step_count, "epoch": round(self.epoch, 3), "state": self.state,
                "device": str(self.device), "metrics": dict(self.last_metrics)}

    def _next_batch(self):
        position = self.step_count % self.steps_per_epoch
        if position == 0 or self._perm is None:
            self._perm = torch.randperm(len(self.train_images), generator=self.generator).to(self.device)
        idx = self._perm[position * self.config.batch_size:(position + 1) * self.config.batch_size]
        self._batch_idx = idx
        # index_select, not images[idx]: advanced indexing of a 4-D uint8 tensor is ~30x slower on the CPU
        return to_float(self.train_images.index_select(0, idx)), self.train_labels.index_select(0, idx)

    def _lr_at(self, step: int) -> float:
        if self.config.lr_schedule == "cosine":
            return self.config.lr * 0.5 * (1 + math.cos(math.pi * self._progress(step)))
        return self.config.lr

    def _progress(self, step: int) -> float:
        """How far the run is, 0..1: by steps against the planned epochs, or by training time
        against a time budget if that runs out first (so a schedule always completes)."""
        progress = step / self.total_steps
        if self._budget is not None:
            start_seconds, budget = self._budget
            progress = max(progress, (self.train_seconds - start_seconds) / budget)
        return min(1.0, progress)

    def _kl_factor(self, step: int) -> float:
        warm = self.config.kl_warmup_steps
        return 1.0 if warm <= 0 else min(1.0, (step + 1) / warm)

    def _train_step(self) -> dict | None:
        """One optimiser step. Returns the loss terms, or None after a non-finite loss."""
        t0 = time.perf_counter()
        x, y = self._next_batch()
        with self.lock:
            lr = self._lr_at(self.step_count)
            for group in self.optimizer.param_groups:
                group_lr = lr * group.get("lr_scale", 1.0)  # per-layer rates: core/architecture.py
                if group["lr"] != group_lr:  # a constant rate is written once, not on every step
                    group["lr"] = group_lr
            if not self.model.training:  # train() walks every sub-module; skip it when nothing changed
                self.model.train()
            terms = self._loss_terms(x, y)
            total = weighted_total(terms, self.config, self._kl_factor(self.step_count))
            # The one host round trip of a step: the loss values, for the finite check and the history.
            zero = total.new_zeros(())
            values = self._batch_values(torch.stack([total.detach()] + [terms.get(k, zero).detach() for k in LOSS_TERMS]))
            values = values.tolist()
            if not all(math.isfinite(v) for v in values):
                return self._diverged(values)
            self.optimizer.zero_grad(set_to_none=True)
            total.backward()
            self.optimizer.step()
            self.step_count += 1
            if self.step_count % GOOD_WEIGHTS_EVERY == 0:
                self._remember_good_weights()
        elapsed = time.perf_counter() - t0
        self.train_seconds += elapsed
        step, epoch = self.step_count, self.step_count / self.steps_per_epoch
        losses = dict(zip(LOSS_KEYS, values))
        history = self.history
        history["step"].append(step)
        history["epoch"].append(epoch)
        for key, value in losses.items():
            history[key].append(value)
        self._emit(StepEvent(step, epoch, losses, len(x) / max(elapsed, 1e-9), lr))
        return losses

    # Seams for a data-parallel subclass (core/distributed_train.py): its rank holds a slice of the batch.
    def _loss_terms(self, x: torch.Tensor, y: torch.Tensor) -> dict:
        config = self.loss_config
        margins = None
        if config.augment_px > 0 and self._batch_idx is not None and len(self._batch_idx) == len(x):
            fill, each = self._shift_margins()
            margins = (fill.index_select(0, self._batch_idx), each.index_select(0, self._batch_idx))
        return self.model.loss_terms(x, y, config, shift_margins=margins)

    def _shift_margins(self) -> tuple:
        """Every training image's background colour and content margins (core/augment.py), found
        once: the shifts read them for each batch, and finding them again every step was ~6 % of
        a step at 64 x 64 RGB (docs/performance.md)."""
        if self._margins is None:
            fills, margins = [], []
            for part in self.train_images.split(1024):
                x = to_float(part)
                fill = augment.background(x)
                fills.append(fill)
                margins.append(augment.content_margins(x, fill=fill))
            self._margins = (torch.cat(fills), torch.cat(margins))
        return self._margins

    @property
    def shift_px(self) -> float:
        """The image shift this run trains with (config.augment_px, or 0 for a large training split)."""
        return shift_for(self.config, len(self.train_images), self.dataset.num_labels)

    @property
    def loss_config(self) -> TrainConfig:
        """The config the loss reads: augment_px resolved for this training split (see shift_px)."""
        shift = self.shift_px
        return self.config if shift == self.config.augment_px else replace(self.config, augment_px=shift)

    def _batch_values(self, values: torch.Tensor) -> torch.Tensor:
        """The logged loss values of the whole batch (every rank must see the same, finite or not)."""
        return values

    # --- divergence ------------------------------------------------------------
    def _weights_finite(self) -> bool:
        return all_finite([p for p in self.model.parameters() if p.numel()])  # the inf-norm of an empty tensor fails

    def _remember_good_weights(self) -> None:
        if not self._weights_finite():
            return
        # Refill the previous copy in place (no allocation) when its structure still fits.
        old_model, old_optim = (self._good[1], self._good[2]) if self._good else (None, None)
        # No optimiser yet means a fresh one: None stands for its (empty) state.
        optim_state = copy_state(old_optim, self._optimizer.state_dict()) if self._optimizer is not None else None
        self._good = (self.step_count, copy_state(old_model, self.model.state_dict()), optim_state)

    def _diverged(self, values, what: str = "the loss") -> None:
        step, model_state, optim_state = self._good
        self.model.load_state_dict(model_state)
        if optim_state is None:
            self._optimizer = None  # back to a fresh optimiser, as at the remembered step
        else:
            self.optimizer.load_state_dict(clone_state(optim_state))  # it keeps what it is given
        failed_at = self.step_count
        self.step_count = step
        for key in HISTORY_KEYS:
            del self.history[key][self._history_length_at(step):]
        self.eval_history = [m for m in self.eval_history if m["step"] <= step]
        self._emit(ErrorEvent(failed_at, f"{what} became non-finite at step {failed_at} "
                              f"(total={values[0]}); training stopped and the weights were rolled back "
                              f"to step {step}. Lower the learning rate and start again.",
                              restored_step=step, details=dict(zip(("total",) + LOSS_TERMS, values))))
        self._emit(self.latent_snapshot())  # the map must show the rolled-back latents, not the diverged ones
        self.emit_weights()
        return None

    def _history_length_at(self, step: int) -> int:
        steps = self.history["step"]
        return int(np.searchsorted(np.asarray(steps), step, side="right")) if steps else 0

    # --- evaluation and snapshots --------------------------------------------------
    def run_evaluation(self) -> dict:
        idx = torch.as_tensor(self.eval_indices, device=self.device)
        with self.lock:
            metrics = evaluate(self.model, self.test_images[idx], self.test_labels[idx])
        metrics = {"step": self.step_count, "epoch": self.epoch, **metrics}
        self.last_metrics = metrics
        self.eval_history.append(metrics)
        self._emit(EvalEvent(self.step_count, self.epoch, metrics))
        return metrics

    @torch.no_grad()
    def latent_snapshot(self) -> LatentSnapshot:
        idx = torch.as_tensor(self.snapshot_indices, device=self.device)
        with self.lock:
            was = self.model.training
            self.model.eval()
            mu = self.model.encode_image(to_float(self.test_images[idx]))[0]
            label_mu = self.model.label_latents()
            self.model.train(was)
        return LatentSnapshot(self.step_count, mu.cpu().numpy(), self.test_labels[idx].cpu().numpy(),
                              self.snapshot_indices.copy(), label_mu.cpu().numpy())

    def emit_snapshot(self) -> None:
        self._emit(self.latent_snapshot())
        if self.publish_weights:
            self.emit_weights()

    def emit_weights(self) -> None:
        self._emit(WeightsEvent(self.step_count, self.weights_copy()))

    def weights_copy(self) -> dict:
        with self.lock:
            return {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}

    # --- checkpoints ---------------------------------------------------------------
    def restore(self, payload: dict) -> None:
        """Take optimiser state, step counter and history from a loaded checkpoint payload."""
        with self.lock:
            if payload.get("optimizer"):
                self.optimizer.load_state_dict(payload["optimizer"])
            self.step_count = int(payload.get("step", 0))
            history = payload.get("history") or {}
            steps = len(history.get("step", []))
            for key in HISTORY_KEYS:  # a term that an older file lacks reads as 0
                self.history[key] = list(history.get(key, [0.0] * steps))
            self.eval_history = list(payload.get("eval_history") or [])
            self.train_seconds = float(payload.get("train_seconds", 0.0))
            self._remember_good_weights()
