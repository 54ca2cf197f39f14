"""An independent judge of generated images: a small CNN trained on the training split.

It shares nothing with the CLIP-VAE, so "the classifier recognises a generated 3 as a 3"
is evidence about the generator, not about the VAE's own encoder. Saved like checkpoints:
plain tensors and plain data, read back with torch.load(weights_only=True).
"""
from __future__ import annotations

import math
import os
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .data import ImageDataset

FORMAT = "clipvae-studio-classifier"
VERSION = 1


class ClassifierError(ValueError):
    """A file could not be used as a classifier; the message says why."""


class DigitClassifier(nn.Module):
    """Two conv-pool stages and an MLP head; accepts any C x H x W (pools to a fixed 4 x 4 grid)."""

    def __init__(self, image_shape, num_labels: int, width: int = 16, label_names=None):
        super().__init__()
        self.image_shape = tuple(int(s) for s in image_shape)
        self.num_labels, self.width = int(num_labels), int(width)
        self.label_names = list(label_names) if label_names else [str(i) for i in range(num_labels)]
        c = self.image_shape[0]
        self.features = nn.Sequential(
            nn.Conv2d(c, width, 5, padding=2), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(), nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(4), nn.Flatten(),
        )
        self.head = nn.Sequential(nn.Dropout(0.25), nn.Linear(2 * width * 16, 128), nn.ReLU(),
                                  nn.Dropout(0.25), nn.Linear(128, num_labels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: float in [0, 1], N x C x H x W -> logits N x num_labels."""
        return self.head(self.features(x))

    def architecture(self) -> dict:
        return dict(image_shape=list(self.image_shape), num_labels=self.num_labels, width=self.width,
                    label_names=self.label_names)

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        """Softmax over labels for float images in [0, 1] (any device; result on the CPU)."""
        was = self.training
        self.eval()
        device = next(self.parameters()).device
        out = [self(images[i:i + batch_size].to(device).float()).softmax(1).cpu()
               for i in range(0, len(images), batch_size)]
        self.train(was)
        return torch.cat(out) if out else torch.zeros(0, self.num_labels)


def _augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Small random rotations, scalings and shifts (one affine grid per batch: cheap)."""
    n = len(x)
    angle = (torch.rand(n, generator=generator) - 0.5) * math.radians(24)
    scale = 1 + (torch.rand(n, generator=generator) - 0.5) * 0.2
    shift = (torch.rand(n, 2, generator=generator) - 0.5) * (2 * 2.5 / x.shape[-1]) * 2
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, align_corners=False, padding_mode="zeros")


def train_classifier(dataset: ImageDataset, epochs: int = 12, batch_size: int = 128, lr: float = 3e-3,
                     width: int = 16, seed: int = 0, device: str | torch.device = "cpu",
                     time_budget: float | None = None, progress=None) -> tuple[DigitClassifier, dict]:
    """Train on dataset's training split with augmentation; returns (classifier, info with test accuracy)."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    device = torch.device(device)
    model = DigitClassifier(dataset.image_shape, dataset.num_labels, width, dataset.label_names).to(device)
    images = dataset.train_images.float().div(255.0)
    labels = dataset.train_labels
    steps_per_epoch = max(1, math.ceil(len(images) / batch_size))
    total = epochs * steps_per_epoch
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=total)
    start = time.perf_counter()
    step = 0
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(images), generator=generator)
        for i in range(steps_per_epoch):
            idx = order[i * batch_size:(i + 1) * batch_size]
            x = _augment(images[idx], generator).to(device)
            loss = F.cross_entropy(model(x), labels[idx].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            step += 1
        if progress is not None:
            progress(epoch + 1, epochs, loss.item())
        if time_budget is not None and time.perf_counter() - start > time_budget:
            break
    model.eval()
    info = {"epochs": epoch + 1, "steps": step, "seconds": round(time.perf_counter() - start, 2),
            "test_accuracy": accuracy(model, dataset.test_images, dataset.test_labels),
            "train_accuracy": accuracy(model, dataset.train_images, dataset.train_labels)}
    return model, info


def accuracy(classifier: DigitClassifier, images_uint8: torch.Tensor, labels: torch.Tensor) -> float:
    if len(images_uint8) == 0:
        return float("nan")
    p = classifier.probabilities(images_uint8.float().div(255.0))
    return (p.argmax(1) == labels.cpu()).float().mean().item()


def save_classifier(path, classifier: DigitClassifier, info: dict | None = None, dataset: str | None = None) -> Path:
    """Atomic write (temporary file, then rename) of plain tensors and plain data."""
    path = Path(path)
    data = {"format": FORMAT, "version": VERSION, "architecture": classifier.architecture(),
            "model": {k: v.detach().cpu() for k, v in classifier.state_dict().items()},
            "info": {k: v for k, v in (info or {}).items() if isinstance(v, (int, float, str))},
            "dataset": dataset}
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise ClassifierError(f"cannot save to {path}: folder {folder} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(data, fh)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def load_classifier(path) -> tuple[DigitClassifier, dict]:
    """(classifier in eval mode on the CPU, its saved info); never runs code from the file."""
    path = Path(path)
    if not path.is_file():
        raise ClassifierError(f"{path}: no such file")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure to read means "not a classifier file"
        raise ClassifierError(f"{path.name}: not a readable classifier file ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ClassifierError(f"{path.name}: not a classifier file (train one with `clipvae-studio train-classifier`)")
    arch = data["architecture"]
    model = DigitClassifier(arch["image_shape"], arch["num_labels"], arch["width"], arch.get("label_names"))
    try:
        model.load_state_dict(data["model"])
    except RuntimeError as exc:
        raise ClassifierError(f"{path.name}: weights do not fit the architecture ({str(exc).splitlines()[0]})") from None
    return model.eval(), dict(data.get("info") or {}, dataset=data.get("dataset"))
