"""What the trainer reports. Plain data (numbers, numpy arrays), safe to hand to any thread."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# The loss terms a step reports (StepEvent.losses has these and "total"). label_match and prior_mmd
# are optional (weight 0 in the reference): reported as 0 when not computed.
LOSS_TERMS = ("clip", "kld_image", "kld_label", "rec_image", "ce_label", "label_match", "prior_mmd")
CURVE_KEYS = ("total",) + LOSS_TERMS  # the loss history's value columns (one plot curve each)


@dataclass
class StepEvent:
    step: int
    epoch: float  # fractional epochs done
    losses: dict  # term -> float, including "total"
    samples_per_second: float
    lr: float


@dataclass
class EvalEvent:
    step: int
    epoch: float
    metrics: dict  # zero_shot_accuracy, recon_nats, kld_nats, label_decoder_accuracy, ...


@dataclass
class LatentSnapshot:
    step: int
    mu: np.ndarray  # N x z_dim image-latent means of a fixed test subset
    labels: np.ndarray  # N
    indices: np.ndarray  # N rows of the test split (to look images up)
    label_mu: np.ndarray  # num_labels x z_dim label-latent means


@dataclass
class WeightsEvent:
    """A consistent CPU copy of the weights, taken between optimiser steps."""
    step: int
    state_dict: dict


@dataclass
class StateEvent:
    state: str  # "running", "paused", "stopped", "finished", "error"


@dataclass
class ErrorEvent:
    step: int
    message: str
    restored_step: int | None = None  # weights were rolled back to this step
    details: dict = field(default_factory=dict)
