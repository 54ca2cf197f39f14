"""Datasets: the bundled subset, IDX folders, image folders (no network)."""
import gzip
import time

import numpy as np
import pytest
from PIL import Image

from clipvae_studio.core.data import DatasetError, load_dataset
from clipvae_studio.core.idx import IDXError, parse_idx, read_idx, write_idx


def test_mnist5k_split_follows_design(mnist5k):
    assert mnist5k.image_shape == (1, 28, 28)
    assert len(mnist5k.train_images) == 4000 and len(mnist5k.test_images) == 1000
    assert np.bincount(mnist5k.train_labels.numpy()).tolist() == [400] * 10
    assert np.bincount(mnist5k.test_labels.numpy()).tolist() == [100] * 10
    assert mnist5k.train_images.dtype.is_floating_point is False
    assert mnist5k.train_images.float().mean() > 20  # real digits, not blank
    assert mnist5k.label_names == [str(i) for i in range(10)]


def _write_set(folder, n_train, n_test, gz=True, shape=(28, 28), seed=0):
    rng = np.random.default_rng(seed)
    ext = ".gz" if gz else ""
    tr = rng.integers(0, 256, (n_train, *shape), dtype=np.uint8)
    te = rng.integers(0, 256, (n_test, *shape), dtype=np.uint8)
    write_idx(folder / f"train-images-idx3-ubyte{ext}", tr)
    write_idx(folder / f"train-labels-idx1-ubyte{ext}", (np.arange(n_train) % 10).astype(np.uint8))
    write_idx(folder / f"t10k-images-idx3-ubyte{ext}", te)
    write_idx(folder / f"t10k-labels-idx1-ubyte{ext}", (np.arange(n_test) % 10).astype(np.uint8))
    return tr, te


@pytest.mark.parametrize("gz", [True, False])
def test_idx_folder_roundtrip_with_label_names(tmp_path, gz):
    tr, te = _write_set(tmp_path, 50, 20, gz=gz)
    (tmp_path / "labels.txt").write_text("\n".join(f"class {i}" for i in range(10)))
    ds = load_dataset("idx", tmp_path)
    assert ds.image_shape == (1, 28, 28)
    assert np.array_equal(ds.train_images[:, 0].numpy(), tr)
    assert np.array_equal(ds.test_images[:, 0].numpy(), te)
    assert ds.label_names[3] == "class 3"
    assert ds.train_labels[:12].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]


def test_idx_60k_loads_quickly(tmp_path):
    _write_set(tmp_path, 60000, 10000, gz=True)
    t0 = time.perf_counter()
    ds = load_dataset("idx", tmp_path)
    elapsed = time.perf_counter() - t0
    assert len(ds.train_images) == 60000
    print(f"60k IDX load: {elapsed:.2f}s")  # the <3 s goal is measured in benchmarks, not asserted


def test_idx_errors_are_clear(tmp_path):
    with pytest.raises(IDXError, match="magic"):
        parse_idx(b"\x01\x02\x08\x01\x00\x00\x00\x01\x05")
    good = b"\x00\x00\x08\x01\x00\x00\x00\x03" + b"abc"
    assert parse_idx(good).tolist() == [97, 98, 99]
    with pytest.raises(IDXError, match="truncated"):
        parse_idx(good[:-1])
    with pytest.raises(IDXError, match="gzip"):
        parse_idx(gzip.compress(good)[:-6])
    with pytest.raises(DatasetError, match="no IDX"):
        load_dataset("idx", tmp_path)
    with pytest.raises(DatasetError, match="not a folder"):
        load_dataset("idx", tmp_path / "missing")
    path = tmp_path / "x-idx1-ubyte"
    write_idx(path, np.arange(5, dtype=np.uint8))
    assert read_idx(path).tolist() == [0, 1, 2, 3, 4]


def test_image_folder_gray_and_rgb(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("cat", "dog"):
        (tmp_path / name).mkdir()
        for i in range(5):
            arr = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
            Image.fromarray(arr).save(tmp_path / name / f"{i}.png")
    (tmp_path / "dog" / "broken.png").write_bytes(b"not an image")
    ds = load_dataset("folder", tmp_path, image_size=16)
    assert ds.image_shape == (3, 16, 16)
    assert ds.label_names == ["cat", "dog"]
    assert len(ds) == 10 and len(ds.test_images) == 2
    assert ds.warnings and "1 unreadable" in ds.warnings[0]
    gray = load_dataset("folder", tmp_path, image_size=12, color="gray")
    assert gray.image_shape == (1, 12, 12)


def test_empty_or_unknown_sources(tmp_path):
    with pytest.raises(DatasetError, match="sub-folder"):
        load_dataset("folder", tmp_path)
    with pytest.raises(DatasetError, match="unknown dataset"):
        load_dataset("cifar-1000")
    with pytest.raises(DatasetError, match="needs a folder"):
        load_dataset("idx")
