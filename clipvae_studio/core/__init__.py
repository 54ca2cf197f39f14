"""The Qt-free core: model, losses, data, trainer, metrics, checkpoints."""
from .checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint, save_trainer
from .config import PRESETS, TrainConfig, preset
from .data import DatasetError, ImageDataset, load_dataset
from .device import DeviceError, resolve_device
from .model import CLIPVAE
from .trainer import Trainer

__all__ = ["CLIPVAE", "Checkpoint", "CheckpointError", "DatasetError", "DeviceError", "ImageDataset", "PRESETS",
           "TrainConfig", "Trainer", "load_checkpoint", "load_dataset", "preset", "resolve_device",
           "save_checkpoint", "save_trainer"]
