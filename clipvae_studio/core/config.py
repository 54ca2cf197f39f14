"""Training configuration and the named presets.

A preset is just a TrainConfig; the CLI (`--set key=value`) and the GUI settings
panel both edit the same fields, so a run is fully described by `asdict(config)`.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields, replace
from typing import Any

ARCHITECTURES = ("mlp", "conv", "auto")  # "auto": architecture.resolve_arch picks by image shape
CLIP_MODES = ("batch", "prototype")
REDUCTIONS = ("mean", "sum")
NOISE_KINDS = ("gaussian", "uniform")
LR_SCHEDULES = ("constant", "cosine")
DEVICES = ("auto", "cpu", "cuda", "mps")
DATASET_KINDS = ("mnist5k", "mnist", "fashion-mnist", "kmnist", "idx", "folder")  # core.data.load_dataset's


@dataclass
class TrainConfig:
    # --- model -----------------------------------------------------------
    arch: str = "mlp"  # image encoder/decoder: residual MLP, a conv net sized to the image, or "auto"
    z_dim: int = 16
    width: int = 64
    depth: int = 6  # residual blocks in the mlp image encoder/decoder
    shared_blocks: bool = False  # reference defect: one block module reused depth times
    noise: str = "gaussian"  # reference defect: "uniform" (rand_like) reparameterisation
    decoder_heads: bool = False  # one decoder output layer per label, picked by CLIP's label at z
    # --- loss ------------------------------------------------------------
    clip_mode: str = "prototype"  # "batch" = arange targets (reference)
    rec_reduction: str = "sum"  # "mean" = pixel-mean BCE (reference)
    kld_reduction: str = "sum"  # "mean" = element-mean KLD (reference)
    w_clip: float = 1.0
    w_kld_image: float = 1.0
    w_kld_label: float = 1.0
    w_rec_image: float = 1.0
    w_ce_label: float = 1.0
    kl_warmup_steps: int = 0  # KL weights ramp linearly from 0 over these steps
    free_bits: float = 0.0  # nats per latent dimension not penalised (batch mean)
    # KL(q(z|x) || q(z|label)) with the image side held fixed: fits each label's posterior to its
    # class's image latents, so samples of q(z|label) decode to that label (0 = off, the reference)
    w_label_match: float = 0.0
    label_pull: float = 0.0  # share of that term's gradient reaching the image encoder (0..1)
    label_match_reverse: float = 0.0  # share of the mode-seeking KL(q(z|label) || q(z|x)) in that term
    w_prior_mmd: float = 0.0  # MMD between the batch's latent codes and N(0, I) draws (0 = off)
    augment_px: float = 0.0  # random whole-pixel shifts of training images, up to this many; 0 = off
    # shifts only while the training split holds at most this many images per label (0 = any size):
    # they regularise a small set and slow a large one down (core/augment.py)
    augment_max_per_label: int = 0
    # summed reconstruction nats scaled to this many pixel values per image (0 = raw nats): the
    # balance with the other terms tuned at that size holds at every size (core/architecture.py)
    rec_reference_pixels: int = 0
    # --- optimisation ----------------------------------------------------
    lr: float = 1e-3
    weight_decay: float = 1e-2  # AdamW default
    # layers reading more inputs than this learn at lr x this / fan-in (0 = one rate for all):
    # AdamW's update moves a layer's output by about lr x fan-in (core/architecture.py)
    lr_reference_fan_in: int = 0
    batch_size: int = 64
    epochs: int = 50
    lr_schedule: str = "constant"
    seed: int = 0
    device: str = "auto"
    # --- reporting -------------------------------------------------------
    eval_every_steps: int = 200
    snapshot_every_s: float = 1.0
    snapshot_size: int = 2000

    def validate(self) -> "TrainConfig":
        """Raise ValueError naming the first field that is out of range."""
        choices = {
            "arch": ARCHITECTURES,
            "clip_mode": CLIP_MODES,
            "rec_reduction": REDUCTIONS,
            "kld_reduction": REDUCTIONS,
            "noise": NOISE_KINDS,
            "lr_schedule": LR_SCHEDULES,
            "device": DEVICES,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {getattr(self, name)!r}")
        for name in ("rec_reference_pixels", "lr_reference_fan_in", "augment_max_per_label"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be 0 or more, not {getattr(self, name)}")
        for name in ("z_dim", "width", "batch_size", "epochs", "snapshot_size", "eval_every_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)}")
        if self.depth < 0:
            raise ValueError(f"depth must be 0 or more, not {self.depth}")
        for name in ("label_pull", "label_match_reverse"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, not {getattr(self, name)}")
        _check_numbers(self)
        return self

    def with_values(self, **changes: Any) -> "TrainConfig":
        return replace(self, **changes).validate()

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


SEED_RANGE = 2**32  # numpy and torch both take seeds 0 .. 2**32 - 1 on every platform


def _check_numbers(config: TrainConfig) -> None:
    """Numbers that would only fail later, or silently: NaN passes every `< 0` test, an infinite
    learning rate turns every weight into NaN within a step, a negative warm-up is ignored."""
    def finite(name):
        value = getattr(config, name)
        if not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, not {value}")
        return value

    if not finite("lr") > 0:
        raise ValueError(f"lr must be positive, not {config.lr}")
    for f in fields(config):
        if f.name.startswith("w_") and finite(f.name) < 0:
            raise ValueError(f"{f.name} must not be negative, not {getattr(config, f.name)}")
    for name in ("weight_decay", "free_bits", "augment_px"):
        if finite(name) < 0:
            raise ValueError(f"{name} must not be negative, not {getattr(config, name)}")
    if not finite("snapshot_every_s") > 0:
        raise ValueError(f"snapshot_every_s must be positive, not {config.snapshot_every_s}")
    if config.kl_warmup_steps < 0:
        raise ValueError(f"kl_warmup_steps must be 0 or more, not {config.kl_warmup_steps}")
    if not 0 <= config.seed < SEED_RANGE:
        raise ValueError(f"seed must be between 0 and {SEED_RANGE - 1:,}, not {config.seed:,}")


# Field groups, for help texts and the GUI settings panel.
MODEL_FIELDS = ("arch", "z_dim", "width", "depth", "shared_blocks", "noise", "decoder_heads")
FIELD_HELP = {
    "arch": "Image encoder/decoder: 'mlp' (residual MLP, as the reference), 'conv' (a conv net whose "
            "channels follow the image size within a fixed weight budget) or 'auto' (mlp for images of up "
            "to 28 x 28 grey values, conv above; the model's architecture shows what was picked).",
    "z_dim": "Size of the shared latent space.",
    "width": "Hidden width of every network (the conv net's dense layers; its channels follow the image).",
    "depth": "Residual blocks in the image encoder and decoder (mlp).",
    "shared_blocks": "Reference defect: all residual blocks share one set of weights.",
    "noise": "Reparameterisation noise: 'gaussian' (correct) or 'uniform' (reference defect).",
    "decoder_heads": "Decoder ends in one output layer per label; each image comes out of the head of the "
                     "label CLIP scores highest at its latent point (or of the label it is generated from), "
                     "so samples are a clear digit instead of a blend of two; samples from noise keep the "
                     "head whose picture CLIP recognises best as its label (conv: the last layer, one per label).",
    "clip_mode": "'batch': image i matches label row i (reference); 'prototype': each image against every class.",
    "rec_reduction": "Reconstruction BCE: 'sum' per image (true ELBO) or pixel 'mean' (reference).",
    "kld_reduction": "KL divergence: 'sum' per sample or element 'mean' (reference).",
    "w_clip": "Weight of the CLIP contrastive loss.",
    "w_kld_image": "Weight of the image KL divergence.",
    "w_kld_label": "Weight of the label KL divergence.",
    "w_rec_image": "Weight of the image reconstruction loss.",
    "w_ce_label": "Weight of the label reconstruction (cross-entropy) loss.",
    "kl_warmup_steps": "KL weights ramp up from 0 over this many steps.",
    "free_bits": "Nats per latent dimension that the KL term does not penalise.",
    "w_label_match": "Weight of KL(image posterior || label posterior): fits each label's posterior to its "
                     "class's image latents (conditional generation); 0 = off.",
    "label_pull": "How much the label-match term also draws each class's image latents together "
                  "(0 = not at all, 1 = fully: a class-conditional prior).",
    "label_match_reverse": "Share (0..1) of the reverse, mode-seeking KL in the label-match term: higher "
                           "gives label samples that are more typical of their label and less varied.",
    "w_prior_mmd": "Weight of the MMD between the batch's latent codes and N(0, I) samples: fills the holes "
                   "of the latent space that noise samples would otherwise decode from; 0 = off.",
    "augment_px": "Shift training images by random whole pixels, up to this many (rounded) each way; "
                  "whole pixels so the images stay sharp; 0 = off (the reference).",
    "augment_max_per_label": "Shift images only while the training split holds at most this many images per "
                             "label on average (a small set overfits without them; a large one learns more "
                             "slowly with them); 0 = at any size.",
    "rec_reference_pixels": "Reconstruction nats are scaled to this many pixel values per image, so the "
                            "balance with KL and CLIP tuned at that size holds for any image size and "
                            "colour (784 = a 28 x 28 grey image: no change there); 0 = raw nats.",
    "lr": "AdamW learning rate.",
    "lr_reference_fan_in": "Layers that read more inputs than this learn at lr x this / their inputs, so a "
                           "step moves every layer equally at any image size (0 = one rate for all).",
    "weight_decay": "AdamW weight decay.",
    "batch_size": "Images per optimiser step.",
    "epochs": "Passes over the training split.",
    "lr_schedule": "'constant' or 'cosine' decay over the planned epochs.",
    "seed": "Random seed: same seed, same run.",
    "device": "'auto' picks CUDA, then MPS, then CPU.",
    "eval_every_steps": "Evaluate on the test split every this many steps.",
    "snapshot_every_s": "Seconds between latent snapshots for the live map.",
    "snapshot_size": "Test images in each latent snapshot.",
}


def _reference() -> TrainConfig:
    # The published phykn/clip-vae settings, defects included (docs/architecture.md, "The reference model").
    return TrainConfig(
        arch="mlp", z_dim=16, width=64, depth=6, shared_blocks=True, noise="uniform",
        clip_mode="batch", rec_reduction="mean", kld_reduction="mean",
        lr=1e-3, weight_decay=1e-2, batch_size=64, epochs=50, lr_schedule="constant",
    )


# Shifts regularise small training sets and slow large ones down: on Fashion-MNIST they gained 1.9
# points of zero-shot at 400 images per label, nothing at 1,500, lost 1.0 at 6,000 (docs/quality.md).
AUGMENT_MAX_PER_LABEL = 1000


def _studio() -> TrainConfig:
    # The reference's defects fixed (Gaussian noise, independent blocks, prototype CLIP, summed
    # BCE and KL: the true ELBO), plus what measurements on the bundled subset supported
    # (README "Quality"): CLIP weighted up to matter next to nats-scale reconstruction; each
    # label's posterior fitted to its class's image latents and drawing them together (the label
    # VAE no longer collapses, and its samples decode to the label); a down-weighted label KL so
    # it does not drag the label posteriors to the origin; shifted training images (4,000
    # images overfit within seconds); routed decoder heads, so a latent point decodes to one
    # clear digit instead of a blend of two (with a prior MMD, since dropped: conditional samples
    # 85 -> 95 %, confident noise samples 43 -> 72 %);
    # most of the label match mode-seeking (0.9), so label samples are typical of their label
    # (conditional samples 95 -> 99 %, less varied: 0.24 -> 0.15 RMS pixel distance between
    # samples, real digits 0.32); training images shifted by whole pixels only, which keeps them
    # sharp (87 -> 84 nats held-out reconstruction), and a 20-dimensional latent space (84 -> 80 nats,
    # for 1-3 points fewer confident noise samples); CLIP weighted 60; cosine decay over ~60
    # CPU-seconds of steps. Checked on data it was not tuned on (Fashion-MNIST; docs/quality.md,
    # "Quality that transfers"), three digit-specific parts were dropped or made to follow the data:
    # the KL warm-up (from 0 it lets image posteriors collapse, and the label match, which divides
    # by their variance, blew up: zero-shot 11 % on Fashion-MNIST without the MMD), the prior MMD
    # (no gain on either set once the warm-up is gone), and shifts on every training set (they help
    # a few hundred images per label and slow 6,000 down: only up to AUGMENT_MAX_PER_LABEL). Sized
    # to the input (core/architecture.py): the mlp for 28 x 28 grey, a conv net for more values;
    # reconstruction weighed per 784 pixel values and per-layer rates past 784 inputs, both the
    # identity at 28 x 28 grey.
    return TrainConfig(
        arch="auto", z_dim=20, width=256, depth=2, shared_blocks=False, noise="gaussian", decoder_heads=True,
        clip_mode="prototype", rec_reduction="sum", kld_reduction="sum",
        w_clip=60.0, w_kld_label=0.01, kl_warmup_steps=0, w_label_match=1.0, label_pull=0.6, label_match_reverse=0.9,
        w_prior_mmd=0.0, augment_px=2.0, augment_max_per_label=AUGMENT_MAX_PER_LABEL, rec_reference_pixels=784,
        lr=3e-3, lr_reference_fan_in=784, batch_size=256, epochs=170, lr_schedule="cosine",
    )


PRESETS = {"studio": _studio, "reference": _reference}


def preset(name: str) -> TrainConfig:
    """A fresh copy of the named preset."""
    try:
        return PRESETS[name]()
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}") from None


def parse_value(config: TrainConfig, key: str, text: str) -> Any:
    """Convert `text` to the type of field `key` (used by `--set key=value`)."""
    types = {f.name: f.type for f in fields(config)}
    if key not in types:
        raise ValueError(f"unknown setting {key!r}; known: {', '.join(types)}")
    current = getattr(config, key)
    try:
        if isinstance(current, bool):
            low = text.strip().lower()
            if low not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise ValueError
            return low in ("1", "true", "yes", "on")
        if isinstance(current, int):
            return int(float(text)) if "e" in text.lower() else int(text)
        if isinstance(current, float):
            return float(text)
    except (ValueError, OverflowError):  # int("inf") overflows
        raise ValueError(f"{key} expects a {type(current).__name__}, not {text!r}") from None
    return text


def apply_overrides(config: TrainConfig, pairs: list[str]) -> TrainConfig:
    changes = {}
    for pair in pairs:
        if "=" not in pair:
            raise ValueError(f"--set expects key=value, not {pair!r}")
        key, text = pair.split("=", 1)
        changes[key.strip()] = parse_value(config, key.strip(), text.strip())
    return config.with_values(**changes)
