"""Generating images: from noise, from a label's posterior, from blends of label latents."""
from __future__ import annotations

import numpy as np
import torch

from .model import CLIPVAE


def _generator_device_noise(shape, generator, device):
    return torch.randn(shape, generator=generator).to(device)


@torch.no_grad()
def sample_noise(model: CLIPVAE, n: int, generator: torch.Generator | None = None,
                 rerank: bool = True) -> torch.Tensor:
    """Decode z ~ N(0, I): n x C x H x W in [0, 1]. With routed decoder heads each sample is the
    picture CLIP reranks first among the heads' (model.decode_reranked); rerank=False decodes
    with the head of CLIP's label at z, as the latent map does."""
    z = _generator_device_noise((n, model.z_dim), generator, model.device)
    reranked = rerank and getattr(model, "decoder_heads", False)
    return (model.decode_reranked(z) if reranked else model.decode_image(z)).cpu()


@torch.no_grad()
def sample_label(model: CLIPVAE, label: int, n: int, generator: torch.Generator | None = None,
                 temperature: float = 1.0, route_by_label: bool = True) -> torch.Tensor:
    """Decode samples of the label encoder's posterior q(z | label) (a conditional VAE). With
    routed decoder heads the label's own head draws them (as a conditional VAE's decoder is
    given the label); route_by_label=False lets CLIP pick the head at each sample instead."""
    labels = torch.full((n,), int(label), dtype=torch.long, device=model.device)
    mu, logvar = model.encode_label(labels)
    eps = _generator_device_noise(mu.shape, generator, model.device)
    z = mu + temperature * eps * torch.exp(0.5 * logvar)
    return model.decode_image(z, labels if route_by_label else None).cpu()


@torch.no_grad()
def blend_latents(model: CLIPVAE, weights: torch.Tensor) -> torch.Tensor:
    """Weighted mixtures of label latents: n x num_labels weights -> n x z_dim latents."""
    return torch.as_tensor(weights, dtype=torch.float32).to(model.device) @ model.label_latents()


@torch.no_grad()
def label_blend(model: CLIPVAE, weights: torch.Tensor) -> torch.Tensor:
    """Decode weighted mixtures of label latents; weights: n x num_labels (rows need not sum to 1)."""
    return model.decode_image(blend_latents(model, weights)).cpu()


def corner_weights(labels: tuple[int, int, int, int], num_labels: int, steps: int = 10) -> torch.Tensor:
    """Bilinear weights for the reference's grid blending four labels from the four corners
    (top-left, top-right, bottom-left, bottom-right): steps*steps x num_labels, row-major."""
    t = torch.linspace(0, 1, steps)
    v, u = torch.meshgrid(t, t, indexing="ij")  # v down the rows, u across the columns
    w = torch.zeros(steps, steps, num_labels)
    for corner, share in zip(labels, ((1 - u) * (1 - v), u * (1 - v), (1 - u) * v, u * v)):
        w[..., corner] += share
    return w.view(-1, num_labels)


@torch.no_grad()
def interpolate(model: CLIPVAE, z_start, z_end, steps: int = 10) -> torch.Tensor:
    """Decode `steps` points on the straight line from z_start to z_end (both ends included)."""
    a = torch.as_tensor(z_start, dtype=torch.float32).reshape(1, -1)
    b = torch.as_tensor(z_end, dtype=torch.float32).reshape(1, -1)
    t = torch.linspace(0, 1, steps).unsqueeze(1)
    return model.decode_image(((1 - t) * a + t * b).to(model.device)).cpu()


def image_grid(images: torch.Tensor, nrow: int, padding: int = 2) -> torch.Tensor:
    """N x C x H x W in [0, 1] -> one C x H' x W' picture (torchvision's make_grid, white gaps
    so the tiles of a dark dataset stay apart)."""
    from torchvision.utils import make_grid

    return make_grid(images, nrow=nrow, padding=padding, pad_value=1.0)


def save_grid(picture: torch.Tensor, path) -> None:
    """Write a make_grid picture as PNG (torchvision's save_image)."""
    from torchvision.utils import save_image

    save_image(picture, str(path))


# --- what the explorer's views ask for: numpy in, pictures or latents out (views build no tensors) ---
def mix_labels(model: CLIPVAE, weights) -> "np.ndarray":
    """The latent of one weighted mixture of label latents (weights: num_labels numbers)."""
    w = torch.as_tensor(np.asarray(weights, dtype=np.float32)[None])
    return blend_latents(model, w)[0].cpu().numpy()


def label_points(model: CLIPVAE, labels) -> "np.ndarray":
    """The label latents (means) of `labels`: len(labels) x z_dim numpy."""
    one_hot = torch.zeros(len(labels), model.num_labels)
    one_hot[torch.arange(len(labels)), torch.as_tensor(list(labels), dtype=torch.long)] = 1.0
    return blend_latents(model, one_hot).cpu().numpy()


def gallery_picture(model: CLIPVAE, mode: str, n: int, seed: int, *, temperature: float = 1.0,
                    corners=(0, 1, 2, 3), length: float = 1.0, ends=None) -> torch.Tensor:
    """The gallery's picture (a make_grid C x H x W in [0, 1]) for one of its modes:
    "noise" (n x n samples of the prior), "labels" (n samples of each label's posterior, a row per
    label), "corners" (an n x n bilinear blend of four labels' latents, scaled by `length`) or
    "interpolate" (n points on the line between the two latents `ends`). A fixed seed: while
    training the same noise is decoded by newer weights."""
    generator = torch.Generator().manual_seed(int(seed))
    if mode == "noise":
        images = sample_noise(model, n * n, generator)
    elif mode == "labels":
        images = torch.cat([sample_label(model, label, n, generator, temperature)
                            for label in range(model.num_labels)])
    elif mode == "corners":
        images = label_blend(model, corner_weights(tuple(corners), model.num_labels, n) * length)
    else:
        images = interpolate(model, ends[0], ends[1], n)
    return image_grid(images, n)
