"""Held-out evaluation of a CLIPVAE: zero-shot accuracy, reconstruction and KL in nats."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .model import CLIPVAE


def to_float(images_uint8: torch.Tensor) -> torch.Tensor:
    return images_uint8.float().div_(255.0)


@torch.no_grad()
def evaluate(model: CLIPVAE, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000) -> dict:
    """Metrics on (images uint8 N x C x H x W, labels int64).

    zero_shot_accuracy: argmax over labels of CLIP's score of mu_x against every label latent.
    recon_nats: per-image summed BCE of decode(mu_x) against the image (lower is better).
    kld_nats: per-image KL(q(z|x) || N(0, I)).
    elbo_nats: recon_nats + kld_nats, the negative ELBO with the posterior mean decoded.
    label_decoder_accuracy: the label decoder applied to mu_x names the true label (cross-modal).
    """
    was_training = model.training
    model.eval()
    device = model.device
    correct = dec_correct = 0
    rec_sum = kld_sum = 0.0
    for start in range(0, len(images), batch_size):
        x = to_float(images[start:start + batch_size].to(device))
        y = labels[start:start + batch_size].to(device)
        mu, logvar = model.encode_image(x)
        correct += (model.clip_logits(mu).argmax(1) == y).sum().item()
        dec_correct += (model.decode_label(mu).argmax(1) == y).sum().item()
        logits = model.decode_image_logits(mu)
        rec_sum += F.binary_cross_entropy_with_logits(logits, x, reduction="sum").item()
        kld_sum += (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp())).sum().item()
    model.train(was_training)
    n = max(1, len(images))
    return {
        "zero_shot_accuracy": correct / n,
        "recon_nats": rec_sum / n,
        "kld_nats": kld_sum / n,
        "elbo_nats": (rec_sum + kld_sum) / n,
        "label_decoder_accuracy": dec_correct / n,
        "n": len(images),
    }
