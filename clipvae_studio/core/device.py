"""Device choice: auto picks CUDA, then Apple MPS, then the CPU."""
from __future__ import annotations

import torch


class DeviceError(RuntimeError):
    pass


def mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if mps_available() else torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise DeviceError("CUDA was requested but no CUDA device is available "
                          "(this torch build or machine has none); use --device auto or cpu")
    if name == "mps" and not mps_available():
        raise DeviceError("MPS was requested but Apple's Metal backend is not available here; use --device auto or cpu")
    if name not in ("cpu", "cuda", "mps"):
        raise DeviceError(f"unknown device {name!r}; choose auto, cpu, cuda or mps")
    return torch.device(name)
