"""Reading and writing IDX files (the MNIST file format), raw or gzipped.

Every malformed input raises IDXError with a message that says what is wrong;
nothing else escapes read_idx.
"""
from __future__ import annotations

import gzip
import io
import os
import struct
import zlib

import numpy as np

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
           0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09}
_GZIP_MAGIC = b"\x1f\x8b"
MAX_ELEMENTS = 2_000_000_000


class IDXError(ValueError):
    """A file is not a well-formed IDX file."""


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    if data[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise IDXError(f"{name}: damaged gzip stream ({exc})") from None
    if len(data) < 4:
        raise IDXError(f"{name}: too short to be an IDX file ({len(data)} bytes)")
    zero, code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or code not in _DTYPES:
        raise IDXError(f"{name}: wrong magic number 0x{data[:4].hex()} (not an IDX file)")
    if ndim == 0:
        raise IDXError(f"{name}: IDX header declares zero dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IDXError(f"{name}: header cut short (needs {header} bytes, has {len(data)})")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    count = 1
    for d in dims:
        count *= d
    if count > MAX_ELEMENTS:
        raise IDXError(f"{name}: declared shape {dims} is implausibly large")
    dtype = np.dtype(_DTYPES[code])
    expected = count * dtype.itemsize
    body = len(data) - header
    if body != expected:
        raise IDXError(f"{name}: shape {dims} needs {expected} data bytes but the file has {body}"
                       f" ({'truncated' if body < expected else 'trailing bytes'})")
    array = np.frombuffer(data, dtype=dtype, count=count, offset=header).reshape(dims)
    return array.astype(dtype.newbyteorder("="), copy=False) if dtype.itemsize > 1 else array


def read_idx(path) -> np.ndarray:
    name = os.fspath(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise IDXError(f"{name}: cannot read ({exc.strerror or exc})") from None
    return parse_idx(data, os.path.basename(name))


def write_idx(path, array: np.ndarray, compress: bool | None = None) -> None:
    """Write a uint8/int8 array as IDX; gzip when the name ends with .gz (or compress=True)."""
    array = np.ascontiguousarray(array)
    if array.dtype not in _CODES:
        raise ValueError(f"write_idx supports uint8 and int8 arrays, not {array.dtype}")
    header = struct.pack(">HBB", 0, _CODES[array.dtype], array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.tobytes()
    if compress is None:
        compress = os.fspath(path).endswith(".gz")
    if compress:
        buffer = io.BytesIO()
        with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=1, mtime=0) as gz:
            gz.write(payload)
        payload = buffer.getvalue()
    with open(path, "wb") as fh:
        fh.write(payload)
