"""Steering: move a latent point uphill on one label's CLIP score, by gradient ascent on z.

The objective is log p(label | .) either of the image decoded at z and encoded again (what
CLIP thinks the *picture* shows, the default) or of z itself ("direct"). A step that would
lower the objective is retried with half the step size (backtracking), so the objective
never goes down along the path. Where no step size helps, the point walks up the direct
score before giving up (`_escape`): with routed decoder heads the re-encoded score's gradient
is blind to the borders where another head takes over the picture.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .model import CLIPVAE

OBJECTIVES = ("reencoded", "direct")


@dataclass
class SteeringPath:
    label: int
    objective: str
    z: np.ndarray  # (steps + 1) x z_dim, the start point first
    scores: np.ndarray  # (steps + 1) x num_labels, CLIP scores of the re-encoded decode at each z
    direct_scores: np.ndarray  # (steps + 1) x num_labels, CLIP scores of each z itself

    @property
    def label_scores(self) -> np.ndarray:
        """The steered label's score along the path, under the chosen objective."""
        source = self.scores if self.objective == "reencoded" else self.direct_scores
        return source[:, self.label]


def _log_scores(model: CLIPVAE, z: torch.Tensor, objective: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(log p(. | re-encoded decode(z)), log p(. | z)), N x num_labels each."""
    mu, _ = model.encode_image(model.decode_image(z))
    return model.clip_logits(mu).log_softmax(1), model.clip_logits(z).log_softmax(1)


def steer(model: CLIPVAE, z0: np.ndarray, label: int, steps: int = 40, step_size: float = 0.25,
          objective: str = "reencoded", min_step: float = 1e-3) -> SteeringPath:
    """Gradient ascent on log p(label) starting at z0.

    Each step moves z by step_size (a length in latent units; the prior has unit scale) along
    the normalised gradient, so the pace does not depend on how steep the score is. When a step
    would lower the objective the step size halves and the step is retried; below min_step the
    path stops early (a local maximum).
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, not {objective!r}")
    if not 0 <= int(label) < model.num_labels:
        raise ValueError(f"label must be in 0..{model.num_labels - 1}, not {label}")
    label = int(label)
    pick = 0 if objective == "reencoded" else 1
    z = torch.as_tensor(np.asarray(z0, dtype=np.float32).reshape(1, -1), device=model.device).clone()
    zs, scores, direct = [], [], []

    def record(point: torch.Tensor) -> float:
        with torch.no_grad():
            rec, dir_ = _log_scores(model, point, objective)
        zs.append(point[0].cpu().numpy().copy())
        scores.append(rec.exp()[0].cpu().numpy())
        direct.append(dir_.exp()[0].cpu().numpy())
        return float((rec, dir_)[pick][0, label])

    value = record(z)
    size = float(step_size)
    with torch.enable_grad():
        for _ in range(int(steps)):
            zg = z.clone().requires_grad_(True)
            objective_value = _log_scores(model, zg, objective)[pick][0, label]
            (grad,) = torch.autograd.grad(objective_value, zg)
            norm = float(grad.norm())
            if not np.isfinite(norm) or norm == 0.0:
                break
            direction = grad / norm
            candidate = _improving_step(model, z, direction, value, label, pick, objective, size, min_step)
            if candidate is None and objective == "reencoded":
                candidate = _escape(model, z, value, label, step_size)
            if candidate is None:
                break  # no step improves: a local maximum
            z, size = candidate
            value = record(z)
            size = min(step_size, size * 1.5)  # recover the pace after a backtrack
    return SteeringPath(label, objective, np.stack(zs), np.stack(scores), np.stack(direct))


def _improving_step(model, z, direction, value, label, pick, objective, size, min_step):
    """(z + size * direction, size) for the largest size, halving from `size`, that does not lower
    the objective; None when even min_step lowers it."""
    while size >= min_step:
        candidate = z + size * direction
        with torch.no_grad():
            new_value = float(_log_scores(model, candidate, objective)[pick][0, label])
        if new_value >= value:
            return candidate, size
        size *= 0.5
    return None


def _escape(model, z, value, label, step_size, max_steps=12):
    """A way out of a local maximum of the re-encoded score. With routed decoder heads the
    picture at z comes from the head of CLIP's label at z, and the re-encoded score's gradient
    flows through that head only: it cannot see that a little further on, the steered label's
    head takes over. Walk up CLIP's score of the point itself instead (smooth), one step size at
    a time, up to max_steps, until the re-encoded score rises above where the path stalled; only
    that point joins the path, so its score never drops."""
    point = z
    for _ in range(max_steps):
        zg = point.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(model.clip_logits(zg).log_softmax(1)[0, label], zg)
        norm = float(grad.norm())
        if not np.isfinite(norm) or norm == 0.0:
            return None
        point = point + step_size * grad / norm
        with torch.no_grad():
            if float(_log_scores(model, point, "reencoded")[0][0, label]) > value:
                return point, step_size
    return None
