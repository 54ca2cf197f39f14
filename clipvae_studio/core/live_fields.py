"""Which settings a running trainer re-reads on every step (so they may change mid-run).

Everything else (architecture, batch size, seed, device, ...) is fixed when a Trainer is built:
changing it means a new trainer (core/studio.py: Studio.change_setting)."""
from __future__ import annotations

from dataclasses import fields

from .config import TrainConfig

# Loss weights (w_*) are all read per step.
LIVE_FIELDS = ("clip_mode", "rec_reduction", "kld_reduction", "kl_warmup_steps", "free_bits", "lr", "lr_schedule",
               "epochs", "eval_every_steps", "snapshot_every_s") + tuple(
    f.name for f in fields(TrainConfig) if f.name.startswith("w_"))
