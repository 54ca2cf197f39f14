"""What the latent explorer shows for one latent point: the decoded image and CLIP's scores."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .model import CLIPVAE


@dataclass
class Decoded:
    image: np.ndarray  # float in [0, 1], H x W (grey) or H x W x C
    scores: np.ndarray  # CLIP p(label | decoded image re-encoded), sums to 1
    direct_scores: np.ndarray  # CLIP p(label | the latent point itself)
    z: np.ndarray | None = None  # the latent point decoded (a view need not lift its map point again)


def image_to_numpy(images: torch.Tensor) -> np.ndarray:
    """N x C x H x W tensor -> N x H x W (C == 1) or N x H x W x C float numpy."""
    arr = images.detach().cpu().float().numpy()
    return arr[:, 0] if arr.shape[1] == 1 else arr.transpose(0, 2, 3, 1)


def label_latents_of(model: CLIPVAE) -> torch.Tensor:
    """The model's label latents; computed once per inference copy (frozen weights), since a drag
    decodes a point per mouse move, and afresh for a model that may still be training."""
    cached = getattr(model, "_frozen_label_latents", None)
    if cached is not None:
        return cached
    with torch.no_grad():
        protos = model.label_latents()
    if getattr(model, "_frozen", False):
        model._frozen_label_latents = protos
    return protos


@torch.no_grad()
def decode_points(model: CLIPVAE, z: np.ndarray) -> list[Decoded]:
    """Decode N latent points; score each decoded image by encoding it again (what a user
    means by "what does CLIP think this image is") and score the point directly too."""
    zt = torch.as_tensor(np.atleast_2d(z), dtype=torch.float32, device=model.device)
    protos = label_latents_of(model)
    direct_logits = model.clip_logits(zt, protos)
    # routed decoder heads: CLIP's label at the point picks the head (what decode_image does itself)
    images = model.decode_image(zt, direct_logits.argmax(1) if getattr(model, "decoder_heads", False) else None)
    mu, _ = model.encode_image(images)
    scores = model.clip_scores(mu, protos).cpu().numpy()
    direct = direct_logits.softmax(dim=1).cpu().numpy()
    arrays = image_to_numpy(images)
    points = zt.cpu().numpy()
    return [Decoded(arrays[i], scores[i], direct[i], points[i]) for i in range(len(arrays))]


def decode_point(model: CLIPVAE, z: np.ndarray) -> Decoded:
    return decode_points(model, z)[0]


def inference_copy(model: CLIPVAE, state_dict: dict | None = None) -> CLIPVAE:
    """A fresh CPU model in eval mode, optionally loaded with a weight snapshot: the GUI
    decodes with such copies so it never reads weights in the middle of an optimiser step."""
    copy = CLIPVAE(**{**model.architecture(), "image_shape": model.image_shape,
                      "num_labels": model.num_labels})
    copy.load_state_dict(state_dict if state_dict is not None else model.state_dict())
    copy = copy.eval().requires_grad_(False)
    copy._frozen = True  # its weights never change again: what it derives from them can be kept
    return copy
