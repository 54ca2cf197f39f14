"""The reference's clustering figure: t-SNE of image latents together with label latents.

The latent map itself is an invertible t-SNE (neighbourhood_map.py), fitted on the snapshot's
image latents and refitted live. This figure stays a view of its own: the label latents are
embedded together with the image latents (on the map they are placed out of sample), up to
10,000 test images, and each embedded point keeps the index of the test image it came from.
scikit-learn is imported lazily.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from .cancel import Cancelled
from .metrics import to_float
from .model import CLIPVAE

_PATCH_LOCK = threading.Lock()


@dataclass
class ClusterInput:
    image_mu: np.ndarray  # N x z_dim image-latent means
    labels: np.ndarray  # N true labels
    indices: np.ndarray  # N rows of the test split
    label_mu: np.ndarray  # num_labels x z_dim label-latent means


@dataclass
class ClusterEmbedding:
    image_xy: np.ndarray  # N x 2
    label_xy: np.ndarray  # num_labels x 2
    labels: np.ndarray
    indices: np.ndarray


@torch.no_grad()
def cluster_input(model: CLIPVAE, images_uint8: torch.Tensor, labels: torch.Tensor, count: int = 2000,
                  seed: int = 0) -> ClusterInput:
    """Image-latent means of `count` test images (a fixed random subset) and the label latents."""
    rng = np.random.default_rng(seed)
    indices = np.sort(rng.permutation(len(images_uint8))[:count])
    idx = torch.as_tensor(indices)
    mu = torch.cat([model.encode_image(to_float(images_uint8[idx[s:s + 1000]]).to(model.device))[0]
                    for s in range(0, len(idx), 1000)])
    return ClusterInput(mu.cpu().numpy(), labels[idx].numpy(), indices, model.label_latents().cpu().numpy())


@dataclass
class ImageDetails:
    """What the Clusters dock shows for one test image."""
    image: np.ndarray  # float in [0, 1], H x W (grey) or H x W x C
    reconstruction: np.ndarray  # the same shape: decoded from the image's latent mean
    scores: np.ndarray  # CLIP p(label | image)


@torch.no_grad()
def image_details(model: CLIPVAE, images_uint8: torch.Tensor, row: int) -> ImageDetails:
    """Test image `row`, its reconstruction (decoded from its latent mean) and CLIP's scores for it."""
    from .explore import image_to_numpy

    x = to_float(images_uint8[row:row + 1]).to(model.device)
    mu, _ = model.encode_image(x)
    return ImageDetails(image_to_numpy(x)[0], image_to_numpy(model.decode_image(mu))[0],
                         model.clip_scores(mu)[0].cpu().numpy())


@contextmanager
def _iteration_hook(callback: Callable[[], None]):
    """Call `callback` once per t-SNE gradient iteration.

    scikit-learn has no progress or cancel API; its optimiser looks up the objective function
    by module-global name when fit() runs, so wrapping that function gives a per-iteration hook
    (an exception raised in it aborts the fit). If the private name ever changes we simply run
    without progress.
    """
    from sklearn.manifold import _t_sne

    names = [n for n in ("_kl_divergence_bh", "_kl_divergence") if hasattr(_t_sne, n)]
    with _PATCH_LOCK:
        originals = {n: getattr(_t_sne, n) for n in names}

        def wrap(fn):
            def hooked(*args, **kwargs):
                callback()
                return fn(*args, **kwargs)
            return hooked

        for n in names:
            setattr(_t_sne, n, wrap(originals[n]))
        try:
            yield
        finally:
            for n, fn in originals.items():
                setattr(_t_sne, n, fn)


def tsne(points: np.ndarray, *, perplexity: float = 30.0, max_iter: int = 500, seed: int = 0,
         progress: Callable[[float], None] | None = None,
         should_stop: Callable[[], bool] | None = None) -> np.ndarray:
    """2D t-SNE of N x D points (PCA initialised). progress(fraction) is called as it goes;
    should_stop() returning True raises Cancelled within one iteration."""
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits  # installed with scikit-learn

    perplexity = min(perplexity, max(1.0, (len(points) - 1) / 3))
    done = [0]

    def tick():
        if should_stop and should_stop():
            raise Cancelled()
        done[0] += 1
        if progress and done[0] % 10 == 0:
            progress(min(1.0, done[0] / max_iter))

    kwargs = dict(n_components=2, perplexity=perplexity, init="pca", random_state=seed)
    try:
        model = TSNE(max_iter=max_iter, **kwargs)
    except TypeError:  # scikit-learn < 1.5 calls it n_iter
        model = TSNE(n_iter=max_iter, **kwargs)
    # One thread: on a small machine that also trains, more threads spin against each other.
    with _iteration_hook(tick), threadpool_limits(1):
        xy = model.fit_transform(np.asarray(points, dtype=np.float32))
    if progress:
        progress(1.0)
    return xy


def embed_clusters(data: ClusterInput, normalise: bool = True, **tsne_args) -> ClusterEmbedding:
    """One t-SNE of image latents and label latents together, as the reference draws it.

    normalise: embed the directions (unit vectors) only, the geometry CLIP scores by; label
    latents then land inside their classes' clusters instead of in a clump of their own.
    """
    points = np.concatenate([data.image_mu, data.label_mu]).astype(np.float64)
    if normalise:
        points /= np.maximum(np.linalg.norm(points, axis=1, keepdims=True), 1e-12)
    xy = tsne(points, **tsne_args)
    n = len(data.image_mu)
    return ClusterEmbedding(xy[:n], xy[n:], data.labels, data.indices)
