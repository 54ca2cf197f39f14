"""The loss terms that look across the whole global batch when it is split over ranks.

Data-parallel training gives each rank a contiguous slice of the global batch. Terms that are a
mean over samples (reconstruction, KL, label cross-entropy, label match, prototype CLIP) need
nothing: DDP averages the ranks' gradients, and the mean of equal-sized slices' means is the
global mean. Two terms compare samples with each other and need the other ranks' latents:

- batch CLIP: this rank's rows against every rank's columns, labels offset by the rank
  (docs/distributed.md);
- prototype CLIP: its label -> image half scores each label against every image of the batch
  (a softmax over the batch's images), so it is not a per-sample mean either;
- prior MMD: the U-statistic over all pairs of the global batch.

The last two are computed whole, on the gathered global batch, on every rank.

The latents are gathered WITH gradients: the gather's backward sums, over ranks, the gradient
each rank's loss sends to a slice, and DDP then divides by the world size. A gather without
gradients would leave only the rank's own share (encoder gradients 1/world_size of the right ones:
tests/test_distributed.py keeps that as a negative control).
"""
from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F

from . import losses


def gather_with_grad(t: torch.Tensor, group=None) -> torch.Tensor:
    """All ranks' `t` concatenated along dim 0, differentiable: backward is a reduce-scatter (sum)."""
    from torch.distributed import _functional_collectives as fc

    # The name changed (torch 2.14 deprecates the older one); torch.distributed.nn before either.
    gather = getattr(fc, "all_gather_single_autograd", None) or getattr(fc, "all_gather_tensor_autograd", None)
    if gather is None:
        import torch.distributed.nn

        return torch.cat(torch.distributed.nn.all_gather(t.contiguous(), group=group or dist.group.WORLD))
    return gather(t.contiguous(), 0, group or dist.group.WORLD)


def gather_without_grad(t: torch.Tensor, group=None) -> torch.Tensor:
    """All ranks' `t` concatenated, with this rank's own slot still the (differentiable) input."""
    parts = [torch.empty_like(t) for _ in range(dist.get_world_size(group))]
    dist.all_gather(parts, t.detach().contiguous(), group=group)
    parts[dist.get_rank(group)] = t
    return torch.cat(parts)


class AcrossRanks:
    """What CLIPVAE.loss_terms(..., across=) calls for the two cross-sample terms.

    `gather` is swappable so a test can put the no-gradient gather in (the negative control)."""

    def __init__(self, group=None, gather=gather_with_grad):
        self.group = group
        self.rank = dist.get_rank(group)
        self.world_size = dist.get_world_size(group)
        self.gather = gather

    def clip_batch(self, z_image: torch.Tensor, z_label: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
        """losses.clip_batch over the global batch, as this rank's share: the mean over ranks of
        these values is the single-process loss (each rank's rows of the symmetric InfoNCE)."""
        image = F.normalize(z_image, dim=1)
        label = F.normalize(z_label, dim=1)
        all_image = self.gather(image, self.group)
        all_label = self.gather(label, self.group)
        scale = logit_scale.exp()
        targets = torch.arange(len(image), device=image.device) + self.rank * len(image)
        image_to_label = F.cross_entropy(scale * image @ all_label.t(), targets)
        label_to_image = F.cross_entropy(scale * label @ all_image.t(), targets)
        return 0.5 * (image_to_label + label_to_image)

    def clip_prototype(self, z_image: torch.Tensor, y: torch.Tensor, label_latents: torch.Tensor,
                       logit_scale: torch.Tensor) -> torch.Tensor:
        """losses.clip_prototype of the global batch, the same value on every rank. Every rank's
        loss holds the whole term, so the gather's backward sums world_size equal shares and DDP's
        average divides them back: the gradient is the single-process one."""
        all_y = torch.cat(_all_gather_plain(y, self.group))
        return losses.clip_prototype(self.gather(z_image, self.group), all_y, label_latents, logit_scale)

    def prior_mmd(self, z: torch.Tensor) -> torch.Tensor:
        """losses.prior_mmd of the global batch, the same value on every rank (as clip_prototype)."""
        prior = torch.randn_like(z)  # each rank draws its slice of the global prior sample
        with torch.no_grad():
            all_prior = torch.cat(_all_gather_plain(prior, self.group))
        return losses.prior_mmd(self.gather(z, self.group), all_prior)

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        """Mean over ranks of a detached tensor (the logged loss values)."""
        values = values.detach().clone()
        dist.all_reduce(values, group=self.group)
        return values / self.world_size


def _all_gather_plain(t: torch.Tensor, group) -> list[torch.Tensor]:
    parts = [torch.empty_like(t) for _ in range(dist.get_world_size(group))]
    dist.all_gather(parts, t.contiguous(), group=group)
    return parts
