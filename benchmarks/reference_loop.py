"""The baseline: the published reference training loop, rebuilt from its description
(docs/architecture.md, "The reference model"), around the studio's own `reference` model and loss.

- an MNIST-like torch Dataset that, like torchvision.datasets.MNIST, turns each uint8 image
  into a PIL image and applies transforms.ToTensor() per sample;
- a DataLoader with batch 64 and shuffle (default workers: none);
- CLIPVAE.from_config(preset("reference"), ...), AdamW at its default learning rate 1e-3;
- loss = weighted_total(model.loss_terms(x, y, config)), one optimiser step per batch, and the
  loss read back every step (as a progress bar would show it).

Run alone it prints its throughput: python benchmarks/reference_loop.py [--seconds 5]
"""
from __future__ import annotations

import argparse
import time

import _common  # noqa: F401  (import paths)
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from clipvae_studio.core import CLIPVAE, preset
from clipvae_studio.core.model import weighted_total

BATCH_SIZE = 64


class MNISTLike(Dataset):
    """uint8 images (N x 1 x H x W) and labels, served one PIL image at a time."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform=None):
        self.images = images[:, 0] if images.dim() == 4 else images
        self.labels = labels
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index):
        image = Image.fromarray(self.images[index].numpy(), mode="L")
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.labels[index])


def reference_steps(dataset, seed: int = 0, batch_size: int = BATCH_SIZE):
    """Train forever; after every step yield (training seconds so far, samples so far, model).

    Only time spent inside this loop counts: whatever the caller does between two steps
    (evaluating, say) is not training time.
    """
    torch.manual_seed(seed)
    config = preset("reference")
    model = CLIPVAE.from_config(config, dataset.image_shape, dataset.num_labels, dataset.label_names)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loader = DataLoader(MNISTLike(dataset.train_images, dataset.train_labels, transforms.ToTensor()),
                        batch_size=batch_size, shuffle=True)
    seconds, samples = 0.0, 0
    model.train()
    while True:
        start = time.perf_counter()
        for x, y in loader:
            loss = weighted_total(model.loss_terms(x, y, config), config)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss.item()
            samples += len(x)
            seconds += time.perf_counter() - start
            yield seconds, samples, model
            start = time.perf_counter()


def reference_throughput(dataset, seconds: float, warmup_steps: int = 5, seed: int = 0) -> float:
    """Samples per second of the reference loop over `seconds` after a few warm-up steps."""
    steps = reference_steps(dataset, seed)
    for _ in range(warmup_steps):
        t0, n0, _ = next(steps)
    for t, n, _ in steps:
        if t - t0 >= seconds:
            return (n - n0) / (t - t0)


def main() -> None:
    from _common import emit, machine

    from clipvae_studio.core import load_dataset

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    rate = reference_throughput(load_dataset("mnist5k"), args.seconds)
    emit({"benchmark": "reference_loop", "samples_per_second": round(rate, 1), "batch_size": BATCH_SIZE,
          "threads": torch.get_num_threads(), "machine": machine()})


if __name__ == "__main__":
    main()
