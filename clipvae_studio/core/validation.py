"""Checks of a training plan against its data and machine, made before anything big is allocated.

TrainConfig.validate() checks each field alone; these checks need the dataset too (image size,
label count, training images) or the machine (memory), and each raises ValueError with a
message that names the setting to change.
"""
from __future__ import annotations

import math
import os

import torch

from .config import TrainConfig

# Beyond this side the conv net's compute budget is blown many times over and a batch's activations
# outgrow a desktop's memory (the 4 M weight budget keeps the parameters small at any size).
MAX_IMAGE_SIDE = 512
MAX_LABELS = 1000  # a label VAE, prototype CLIP and a decision map over more labels are not what the studio is for
CONV_MIN_SIDE = 4  # below this a conv net sees too little of its neighbourhood to be worth it (core/architecture.py)
# Routed decoder heads hold one full-image output layer per label: with many labels they make most of
# the model (300 labels of 28x28 at width 256: 60 M parameters) and one step can outlast a short budget.
MAX_DEFAULT_HEADS = 50
# Bytes per parameter while training: weights, gradients, AdamW's two moments, and the trainer's
# roll-back copy of the weights and moments (trainer._remember_good_weights), float32 each.
TRAINING_BYTES_PER_PARAMETER = 7 * 4


def max_shift(image_shape) -> int:
    """The largest augmentation shift that keeps most of the picture in the frame: a quarter of the side."""
    return min(image_shape[1:]) // 4


FITTED_FIELDS = ("augment_px", "decoder_heads")  # the fields fit_to_dataset may change


def fit_to_dataset(config: TrainConfig, image_shape, num_labels: int, explicit: set[str] = frozenset(),
                   defaults: TrainConfig | None = None) -> tuple[TrainConfig, list[str]]:
    """A preset's defaults adjusted to the data (fields the person set themselves are kept); warnings say what changed.

    `defaults` (the preset): the fitted fields the person did not set start from its values, so
    fitting again to other data undoes what the last fit changed (100 labels, then 10: heads on)."""
    if defaults is not None:
        config = config.with_values(**{name: getattr(defaults, name) for name in FITTED_FIELDS if name not in explicit})
    warnings = []
    if int(round(config.augment_px)) > max_shift(image_shape) and "augment_px" not in explicit:
        config = config.with_values(augment_px=float(max_shift(image_shape)))
        warnings.append(f"augment_px lowered to {config.augment_px:g}: larger shifts move "
                        f"{'x'.join(map(str, image_shape[1:]))} images out of the frame")
    if config.decoder_heads and num_labels > MAX_DEFAULT_HEADS and "decoder_heads" not in explicit:
        config = config.with_values(decoder_heads=False)
        warnings.append(f"decoder_heads turned off: {num_labels} labels would each get a full-image output layer "
                        f"(setting decoder_heads to true keeps them)")
    return config, warnings


def check_training(config: TrainConfig, image_shape, num_labels: int, n_train: int, *, fresh_model: bool = True,
                   device: torch.device | str = "cpu") -> list[str]:
    """Raise ValueError when this config cannot train on this data here; return warnings otherwise."""
    c, h, w = (int(s) for s in image_shape)
    if min(c, h, w) < 1:
        raise ValueError(f"the images are {c}x{h}x{w}: every side must be at least 1 pixel")
    if max(h, w) > MAX_IMAGE_SIDE:
        raise ValueError(f"the images are {h}x{w} pixels; the studio trains on images of at most {MAX_IMAGE_SIDE} "
                         f"pixels a side (its conv net's activations for a batch of {h}x{w} images would need "
                         f"many GiB): use --image-size {MAX_IMAGE_SIDE // 4} or smaller")
    if not 1 <= num_labels <= MAX_LABELS:
        raise ValueError(f"the data has {num_labels:,} labels; the studio handles 1 to {MAX_LABELS:,}")
    if fresh_model and config.arch == "conv" and min(h, w) < CONV_MIN_SIDE:
        raise ValueError(f"arch 'conv' needs images of at least {CONV_MIN_SIDE}x{CONV_MIN_SIDE} pixels, these are "
                         f"{h}x{w}: use a larger --image-size or --set arch=mlp")
    if fresh_model:  # before the other checks: "too big" is the first thing to fix
        check_model_memory(config, image_shape, num_labels, device)
    shift = int(round(config.augment_px))
    if shift > max_shift(image_shape):
        raise ValueError(f"augment_px={config.augment_px:g} shifts {h}x{w} images by up to {shift} pixels, out of the "
                         f"frame; at most {max_shift(image_shape)} (a quarter of the side) for these images")
    batch = min(config.batch_size, n_train)
    if config.w_prior_mmd > 0 and batch < 2:
        cause = (f"the training split holds {n_train} image" if n_train < config.batch_size
                 else f"batch_size is {config.batch_size}")
        raise ValueError(f"the prior MMD term (w_prior_mmd) compares pairs of images in a batch, but {cause}: "
                         f"use at least 2 images per batch, or --set w_prior_mmd=0")
    warnings = []
    if config.batch_size > n_train:
        warnings.append(f"batch_size {config.batch_size:,} is larger than the {n_train:,} training images: "
                        f"each step uses all {n_train:,}")
    return warnings


def parameter_count(config: TrainConfig, image_shape, num_labels: int) -> int:
    """Parameters of the model this config builds, counted on the meta device (nothing allocated)."""
    from .model import CLIPVAE

    with torch.device("meta"):
        model = CLIPVAE.from_config(config, image_shape, num_labels)
    return sum(p.numel() for p in model.parameters())


def check_model_memory(config: TrainConfig, image_shape, num_labels: int, device: torch.device | str = "cpu") -> None:
    params = parameter_count(config, image_shape, num_labels)
    need = params * TRAINING_BYTES_PER_PARAMETER
    have = available_memory(torch.device(device))
    if have is not None and need > have:
        raise ValueError(f"the model would have {params:,} parameters and need about {_gib(need)} to train, "
                         f"but {_gib(have)} is free: lower width or depth, or use smaller images "
                         f"(width={config.width}, images {'x'.join(map(str, image_shape))}, {num_labels} labels)")


def available_memory(device: torch.device) -> int | None:
    """Bytes free for training on `device` (None when unknown: then nothing is refused)."""
    if device.type == "cuda" and torch.cuda.is_available():
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _gib(n: float) -> str:
    return f"{n / 2**30:,.1f} GiB" if n >= 2**30 else f"{math.ceil(n / 2**20):,} MiB"
