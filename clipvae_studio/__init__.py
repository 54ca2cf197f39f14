"""CLIP-VAE Studio: train a CLIP-VAE, watch it learn, explore its latent space.

The public API is Qt-free; the GUI lives in clipvae_studio.gui. The API names load on first use
(see clipvae_studio.core), so `import clipvae_studio` alone does not import torch.
"""
from . import core

__version__ = "0.1.0"
__all__ = ["CLIPVAE", "Checkpoint", "CheckpointError", "DatasetError", "TrainConfig", "Trainer", "load_checkpoint",
           "load_dataset", "preset", "save_checkpoint", "__version__"]


def __getattr__(name):
    if name in __all__:
        return getattr(core, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
