"""The Qt-free core: model, losses, data, trainer, metrics, checkpoints.

The names below load on first use (PEP 562), so importing a torch-free part of the core (config,
paths, projection) does not import torch: the window is shown before torch is loaded."""
import importlib

_EXPORTS = {
    "Checkpoint": "checkpoint", "CheckpointError": "checkpoint", "load_checkpoint": "checkpoint",
    "save_checkpoint": "checkpoint", "save_trainer": "checkpoint",
    "PRESETS": "config", "TrainConfig": "config", "preset": "config",
    "DatasetError": "data", "ImageDataset": "data", "load_dataset": "data",
    "DeviceError": "device", "resolve_device": "device",
    "CLIPVAE": "model",
    "Trainer": "trainer",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
