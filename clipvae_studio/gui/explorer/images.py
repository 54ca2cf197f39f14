"""Float images (numpy or torch, values in [0, 1]) to Qt pixmaps, enlarged with crisp pixels."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap


def as_hwc(image) -> np.ndarray:
    """H x W, H x W x C (numpy) or C x H x W (torch) -> float numpy H x W or H x W x C."""
    if hasattr(image, "detach"):
        image = image.detach().cpu().float().numpy()
        if image.ndim == 3:
            image = image.transpose(1, 2, 0)
    image = np.asarray(image, dtype=np.float32)
    return image[..., 0] if image.ndim == 3 and image.shape[2] == 1 else image


def to_uint8(image) -> np.ndarray:
    """H x W, H x W x C (numpy) or C x H x W (torch) floats in [0, 1] -> contiguous uint8 H x W or H x W x 3.
    uint8 numpy input is taken as already converted."""
    if isinstance(image, np.ndarray) and image.dtype == np.uint8:
        return np.ascontiguousarray(image)
    arr = as_hwc(image)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim == 3 and arr.shape[2] != 3:
        arr = arr[..., :3]
    return np.ascontiguousarray((np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8))


def to_qimage(image) -> QImage:
    arr = to_uint8(image)
    h, w = arr.shape[:2]
    fmt = QImage.Format.Format_Grayscale8 if arr.ndim == 2 else QImage.Format.Format_RGB888
    return QImage(arr.data, w, h, arr.strides[0], fmt).copy()  # copy: the numpy buffer goes away


def to_pixmap(image, width: int, height: int) -> QPixmap:
    """The image scaled to fit width x height, nearest-neighbour (pixels stay square and sharp, as
    a 28x28 digit should look): by a whole factor where that is at least 2, else to fit."""
    arr = to_uint8(image)
    h, w = arr.shape[:2]
    factor = min(width // max(w, 1), height // max(h, 1))
    if factor < 2:
        return QPixmap.fromImage(to_qimage(arr)).scaled(max(1, width), max(1, height),
                                                        Qt.AspectRatioMode.KeepAspectRatio,
                                                        Qt.TransformationMode.FastTransformation)
    # numpy repeats pixels in microseconds; QImage.scaled took milliseconds for grey images.
    big = np.repeat(np.repeat(arr, factor, axis=0), factor, axis=1)
    return QPixmap.fromImage(to_qimage(big))
