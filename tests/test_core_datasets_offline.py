"""Datasets that come without a download: the system's Fashion-MNIST copy and the drawn shapes."""
import numpy as np
import pytest

from clipvae_studio.core import data
from clipvae_studio.core.idx import write_idx
from clipvae_studio.core.synthetic_shapes import SHAPE_NAMES, drawn_shapes


def test_fashion_mnist_is_read_from_the_system_copy_with_its_class_names(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    for split, n in (("train", 30), ("t10k", 10)):
        write_idx(tmp_path / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte.gz", np.arange(n, dtype=np.uint8) % 10)
    monkeypatch.setitem(data.SYSTEM_DATASET_DIRS, "fashion-mnist", (str(tmp_path / "missing"), str(tmp_path)))
    monkeypatch.setattr(data, "cache_dir", lambda: pytest.fail("downloaded although a system copy exists"))

    dataset = data.load_dataset("fashion-mnist")

    assert (len(dataset.train_images), len(dataset.test_images)) == (30, 10)
    assert dataset.label_names[0] == "T-shirt/top" and dataset.label_names[9] == "Ankle boot"


def test_drawn_shapes_are_balanced_deterministic_and_differ_between_seeds():
    a, b, c = drawn_shapes(16, 4, 2, seed=1), drawn_shapes(16, 4, 2, seed=1), drawn_shapes(16, 4, 2, seed=2)

    assert a.image_shape == (1, 16, 16) and a.label_names == list(SHAPE_NAMES)
    assert np.bincount(a.train_labels.numpy()).tolist() == [4] * 10
    assert a.train_images.equal(b.train_images) and not a.train_images.equal(c.train_images)
    # every image holds a shape: some pixels well above the faint background
    assert (a.train_images.flatten(1).max(1).values > 100).all()
