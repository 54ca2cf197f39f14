"""CLIP-VAE Studio: train a CLIP-VAE, watch it learn, explore its latent space.

The public API is Qt-free; the GUI lives in clipvae_studio.gui.
"""
from .core import (CLIPVAE, Checkpoint, CheckpointError, DatasetError, TrainConfig, Trainer, load_checkpoint,
                   load_dataset, preset, save_checkpoint)

__version__ = "0.1.0"
__all__ = ["CLIPVAE", "Checkpoint", "CheckpointError", "DatasetError", "TrainConfig", "Trainer", "load_checkpoint",
           "load_dataset", "preset", "save_checkpoint", "__version__"]
