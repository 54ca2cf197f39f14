"""The five loss terms of the CLIP-VAE, each a scalar tensor."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .events import LOSS_TERMS  # noqa: F401  (defined with the events, which need no torch)
from .fast_losses import bce_with_logits, inverse_multiquadratic, symmetric_infonce


def reconstruction(logits: torch.Tensor, x: torch.Tensor, reduction: str) -> torch.Tensor:
    """Bernoulli negative log-likelihood of x under sigmoid(logits).

    "sum": nats per image (the ELBO term); "mean": per pixel (the reference).
    """
    # Same value as F.binary_cross_entropy_with_logits, without its slow log1p kernel (fast_losses.py).
    return bce_with_logits(logits, x, "batch_sum" if reduction == "sum" else "mean")


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor, reduction: str, free_bits: float = 0.0) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)).

    "sum": nats per sample (free bits applied per dimension, averaged over the batch);
    "mean": element mean (the reference).
    """
    kld = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp())
    if reduction == "mean":
        return kld.mean()
    per_dim = kld.mean(0)
    if free_bits > 0:
        per_dim = per_dim.clamp(min=free_bits)
    return per_dim.sum()


def clip_batch(z_image: torch.Tensor, z_label: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE with arange targets (the reference): row i matches row i only."""
    # The temperature scales the B x 16 factor, not the B x B product: one pass fewer each way.
    logits = (logit_scale.exp() * F.normalize(z_image, dim=1)) @ F.normalize(z_label, dim=1).t()
    return symmetric_infonce(logits)  # = mean of cross_entropy both ways with arange targets (fast_losses.py)


def clip_prototype(z_image: torch.Tensor, y: torch.Tensor, label_latents: torch.Tensor,
                   logit_scale: torch.Tensor) -> torch.Tensor:
    """Each image against every class latent, plus each present class against the batch's
    images with all same-class images as positives (multi-positive InfoNCE)."""
    logits = logit_scale.exp() * F.normalize(z_image, dim=1) @ F.normalize(label_latents, dim=1).t()
    image_to_label = F.cross_entropy(logits, y)
    # label -> image: log of the softmax mass that falls on the class's own images
    per_label = logits.t()  # K x B
    positive = F.one_hot(y, num_classes=len(label_latents)).t().bool()  # K x B
    present = positive.any(1)
    log_all = torch.logsumexp(per_label, dim=1)
    log_pos = torch.logsumexp(per_label.masked_fill(~positive, float("-inf")), dim=1)
    label_to_image = (log_all - log_pos)[present].mean()
    return 0.5 * (image_to_label + label_to_image)


# The match divides by one posterior's variance (each direction by the other's). A learning rate a
# few times the preset's lets an encoder's log-variance overshoot to -30 or below within ten steps
# (the KL resists it only linearly); exp(30) times a squared distance then overflows the loss. Real
# posteriors stay far above the floor (log-variances -2 to -4 on digits), so it only cuts off runaways.
MATCH_LOGVAR_FLOOR = -10.0


def label_match(mu_x: torch.Tensor, logvar_x: torch.Tensor, mu_y: torch.Tensor, logvar_y: torch.Tensor,
                pull: float = 0.0, reverse: float = 0.0) -> torch.Tensor:
    """KL(q(z|x) || q(z|y)) per sample (summed over dimensions, batch mean), optionally mixed
    with the reverse KL(q(z|y) || q(z|x)).

    Minimised over the label posterior, the forward KL makes q(z|y) the moment-matched Gaussian
    of its class's image posteriors: mean = class mean of mu_x, variance = mean var_x + spread of
    mu_x (it covers the whole class, tails included, and some samples land among other classes).
    The reverse KL is mode-seeking: its optimum has the precision-weighted class mean and the
    harmonic mean of var_x (typical samples, less varied). `reverse` (0..1) is its share.
    Both log-variances are floored at MATCH_LOGVAR_FLOOR here (only here).
    `pull` scales the gradient of the forward part that reaches the image side (0: image latents
    untouched; 1: the label posterior also acts as a class-conditional prior that draws each class
    together); the reverse part never moves the image side.
    """
    logvar_x, logvar_y = logvar_x.clamp(min=MATCH_LOGVAR_FLOOR), logvar_y.clamp(min=MATCH_LOGVAR_FLOOR)
    mu_xp = mu_x.detach() + pull * (mu_x - mu_x.detach())  # same value, gradient times pull
    logvar_xp = logvar_x.detach() + pull * (logvar_x - logvar_x.detach())
    forward = 0.5 * (logvar_y - logvar_xp + (logvar_xp.exp() + (mu_xp - mu_y).pow(2)) * torch.exp(-logvar_y) - 1)
    if reverse <= 0:
        return forward.sum(1).mean()
    mu_xd, logvar_xd = mu_x.detach(), logvar_x.detach()
    backward = 0.5 * (logvar_xd - logvar_y + (logvar_y.exp() + (mu_y - mu_xd).pow(2)) * torch.exp(-logvar_xd) - 1)
    return ((1 - reverse) * forward + reverse * backward).sum(1).mean()


# Kernel widths of the inverse multiquadratic kernel, as multiples of 2 * z_dim (the expected
# squared distance of two N(0, I) points): several scales, so no single width has to be tuned.
MMD_SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


def prior_mmd(z: torch.Tensor, prior: torch.Tensor | None = None) -> torch.Tensor:
    """Squared MMD between a batch of latent codes and as many N(0, I) draws (InfoVAE / WAE).

    The per-sample KL cannot see holes in the aggregate posterior: places where N(0, I) has
    mass but no image's code lies, which decode to no digit at all. MMD compares the two
    clouds as wholes and is 0 (in expectation) only when the codes' distribution is N(0, I).
    Unbiased estimate; `prior` defaults to fresh torch.randn draws.
    """
    n, d = z.shape
    prior = torch.randn_like(z) if prior is None else prior
    widths = [2.0 * d * s for s in MMD_SCALES]
    pairs = n * (n - 1)

    def off_diagonal_mean(k):
        return (k.sum() - k.diagonal().sum()) / pairs

    with torch.no_grad():  # the prior's own term moves no parameter: value only
        prior_term = off_diagonal_mean(inverse_multiquadratic(prior, prior, widths))
    return (off_diagonal_mean(inverse_multiquadratic(z, z, widths)) + prior_term
            - 2.0 * inverse_multiquadratic(z, prior, widths).mean())
