"""Data-parallel training over torch.distributed: one code path for any world size.

Launched by torchrun (which sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT); gloo on the
CPU, nccl on CUDA. Every rank holds the whole in-memory dataset and the same seeded permutation
of each epoch; rank r trains on the r-th contiguous slice of each global batch, so the ranks
together see exactly the batches one process would. What differs from one process, and why:
docs/distributed.md.
"""
from __future__ import annotations

import os

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .clip_gather import AcrossRanks
from .device import DeviceError, resolve_device
from .metrics import to_float
from .speed import auto_threads
from .trainer import Trainer


def launched_by_torchrun() -> bool:
    return "TORCHELASTIC_RUN_ID" in os.environ or ("RANK" in os.environ and "WORLD_SIZE" in os.environ)


def restart_count() -> int:
    """Which attempt of the worker group this is (torchrun's restarts count from 0)."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0)


def init_process_group(device_name: str = "auto") -> torch.device:
    """Join the process group torchrun described in the environment; return this rank's device.
    The backend follows the device: nccl for CUDA, gloo for the CPU."""
    device = resolve_device(device_name)
    if device.type == "mps":
        raise DeviceError("distributed training supports CUDA (nccl) and the CPU (gloo), not MPS; use --device cpu")
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def is_main_process() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0


def _seed(*parts: int) -> int:
    """A 63-bit seed mixed from several integers (numpy's SeedSequence: no collisions in practice)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint64)[0] >> np.uint64(1))


class _Loss(nn.Module):
    """The model's loss terms as a forward(), so DDP's hooks see the step (calling a method of the
    model directly would bypass them)."""

    def __init__(self, model, trainer: "DistributedTrainer"):
        super().__init__()
        self.model = model
        self._trainer = [trainer]  # a list: not a sub-module

    def forward(self, x, y):
        trainer = self._trainer[0]
        return self.model.loss_terms(x, y, trainer.loss_config, across=trainer.across)


class DistributedTrainer(Trainer):
    """The Trainer with its batch split over the ranks of the default process group.

    The global batch is config.batch_size; each rank trains on batch_size / world_size rows.
    Runs are reproducible across restarts: the batch order of epoch e and the random draws of
    step s are seeded from (seed, e) and (seed, rank, s), not from a stream that a resume resets."""

    def __init__(self, config, dataset, model=None, listener=None, device=None, eval_size: int | None = 2000,
                 num_threads: int | None = None, across: AcrossRanks | None = None):
        if not dist.is_initialized():
            raise RuntimeError("DistributedTrainer needs an initialised process group (init_process_group())")
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        if config.batch_size % self.world_size:
            raise ValueError(f"batch_size {config.batch_size} does not split evenly over {self.world_size} "
                             f"processes; choose a multiple of {self.world_size}")
        if num_threads is None:  # the ranks on one machine share its cores
            local = int(os.environ.get("LOCAL_WORLD_SIZE", self.world_size))
            num_threads = max(1, auto_threads() // max(1, local))
        super().__init__(config, dataset, model=model, listener=listener, device=device, eval_size=eval_size,
                         num_threads=num_threads)
        self.local_batch = config.batch_size // self.world_size
        self.across = across or AcrossRanks()
        self._perm_epoch = -1
        on_cuda = self.device.type == "cuda"
        # Routed decoder heads leave the heads of labels absent from a rank's slice unused.
        self.ddp = DistributedDataParallel(_Loss(self.model, self), device_ids=[self.device] if on_cuda else None,
                                           find_unused_parameters=bool(self.model.decoder_heads))

    # --- the seams of Trainer ----------------------------------------------------
    def _loss_terms(self, x, y) -> dict:
        return self.ddp(x, y)

    def _batch_values(self, values: torch.Tensor) -> torch.Tensor:
        return self.across.mean(values)  # every rank sees the same values: they agree on a divergence

    def global_batch_indices(self, step: int) -> torch.Tensor:
        """Rows of the training split in the global batch of `step` (all ranks together)."""
        epoch, position = divmod(step, self.steps_per_epoch)
        if epoch != self._perm_epoch:
            generator = torch.Generator().manual_seed(_seed(self.config.seed, epoch))
            self._perm = torch.randperm(len(self.train_images), generator=generator).to(self.device)
            self._perm_epoch = epoch
        size = self.config.batch_size
        return self._perm[position * size:(position + 1) * size]

    def _next_batch(self):
        idx = self.global_batch_indices(self.step_count)
        idx = idx[self.rank * self.local_batch:(self.rank + 1) * self.local_batch]
        return to_float(self.train_images.index_select(0, idx)), self.train_labels.index_select(0, idx)

    def _train_step(self):
        torch.manual_seed(_seed(self.config.seed, self.rank, self.step_count))
        return super()._train_step()

    # --- rank 0 alone evaluates and reports -----------------------------------------
    def run_evaluation(self) -> dict:
        return super().run_evaluation() if self.rank == 0 else {}

    def emit_snapshot(self) -> None:
        if self.rank == 0:
            super().emit_snapshot()

    def run(self, max_steps: int | None = None, time_budget: float | None = None) -> dict:
        if time_budget is not None:
            # Each rank measures its own time: they would stop after different steps and wait forever.
            raise ValueError("a time budget is not supported for distributed training (the ranks must agree "
                             "on the last step); give --epochs instead")
        return super().run(max_steps=max_steps)

    def summary(self, start_steps: int = 0, start_seconds: float = 0.0) -> dict:
        return {**super().summary(start_steps, start_seconds), "world_size": self.world_size}
