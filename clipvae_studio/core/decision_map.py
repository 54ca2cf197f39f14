"""The canvas background layers: CLIP's decision map and the decoded-thumbnail manifold.

Both sample a grid of map points (u, v), lift them into the latent space with the canvas's
projection and decode them in batches. Row r of every grid is the r-th v value counted
from the bottom (v grows upwards on the canvas, as pyqtgraph's y axis does).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from .cancel import Cancelled
from .model import CLIPVAE
from .projection import Projection


@dataclass
class DecisionMap:
    rect: tuple[float, float, float, float]  # x0, y0, width, height in map coordinates
    top: np.ndarray  # rows x cols, CLIP's top label for the decoded image of each cell
    confidence: np.ndarray  # rows x cols, that label's score
    scores: np.ndarray  # rows x cols x num_labels


def cell_centres(rect, cols: int, rows: int) -> np.ndarray:
    """rows*cols x 2 map points at the cell centres, row-major, bottom row first."""
    x0, y0, w, h = rect
    u = x0 + (np.arange(cols) + 0.5) * (w / cols)
    v = y0 + (np.arange(rows) + 0.5) * (h / rows)
    uu, vv = np.meshgrid(u, v)
    return np.stack([uu.ravel(), vv.ravel()], axis=1)


@torch.no_grad()
def reencoded_scores(model: CLIPVAE, z: np.ndarray, batch_size: int = 2048,
                     should_stop: Callable[[], bool] | None = None) -> np.ndarray:
    """CLIP scores of the decoded-then-encoded image at each latent point, N x num_labels."""
    out = []
    for start in range(0, len(z), batch_size):
        if should_stop and should_stop():
            raise Cancelled()
        zt = torch.as_tensor(z[start:start + batch_size], dtype=torch.float32, device=model.device)
        mu, _ = model.encode_image(model.decode_image(zt))
        out.append(model.clip_scores(mu).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.num_labels), np.float32)


def compute_decision_map(model: CLIPVAE, projection: Projection, rect, resolution: int = 64,
                         rows: int | None = None, should_stop: Callable[[], bool] | None = None) -> DecisionMap:
    """CLIP's verdict on a grid of decoded images covering rect: `resolution` columns and
    `rows` rows (as many as columns unless given)."""
    cols = int(resolution)
    rows = int(rows or cols)
    z = projection.lift(cell_centres(rect, cols, rows)).astype(np.float32)
    scores = reencoded_scores(model, z, should_stop=should_stop).reshape(rows, cols, -1)
    return DecisionMap(tuple(float(r) for r in rect), scores.argmax(-1), scores.max(-1), scores)


def colorize(dmap: DecisionMap, colors: np.ndarray, max_alpha: int = 150) -> np.ndarray:
    """rows x cols x 4 uint8 RGBA: the top label's colour, opacity growing with confidence
    (a 1/num_labels score, a coin toss, is transparent)."""
    colors = np.asarray(colors, dtype=np.uint8)[:, :3]
    rgba = np.empty(dmap.top.shape + (4,), np.uint8)
    rgba[..., :3] = colors[dmap.top]
    chance = 1.0 / dmap.scores.shape[-1]
    certainty = np.clip((dmap.confidence - chance) / (1.0 - chance), 0.0, 1.0)
    rgba[..., 3] = (certainty * max_alpha).astype(np.uint8)
    return rgba


@torch.no_grad()
def manifold_image(model: CLIPVAE, projection: Projection, rect, count: int = 15, rows: int | None = None,
                   should_stop: Callable[[], bool] | None = None) -> np.ndarray:
    """The Keras-VAE "2D manifold" figure over rect: count columns x rows (default count) decoded
    thumbnails as one float image (H x W grey or H x W x C), with row 0 at the BOTTOM (v smallest)
    so that it can be placed on a y-up canvas as is."""
    rows = int(rows or count)
    uv = cell_centres(rect, count, rows)
    # Tiles in reading order (top row = largest v) so make_grid lays them out as on screen.
    uv = uv.reshape(rows, count, 2)[::-1].reshape(-1, 2)
    z = torch.as_tensor(projection.lift(uv), dtype=torch.float32, device=model.device)
    images = []
    for start in range(0, len(z), 1024):
        if should_stop and should_stop():
            raise Cancelled()
        images.append(model.decode_image(z[start:start + 1024]).cpu())
    from torchvision.utils import make_grid  # deferred: importing torchvision costs seconds of GUI start-up

    grid = make_grid(torch.cat(images), nrow=count, padding=0)  # C x H x W (3 channels for grey)
    picture = grid[0] if model.image_shape[0] == 1 else grid.permute(1, 2, 0)
    return np.ascontiguousarray(picture.numpy()[::-1])
