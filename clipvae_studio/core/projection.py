"""2D maps of the latent space that go both ways: project(z) -> (u, v) and lift((u, v)) -> z,
so a click on the map names a latent vector (docs/architecture.md, "Latent map geometry"). The planes live here; the
neighbourhood map (t-SNE with a Delaunay inverse) in neighbourhood_map.py, under the same contract."""
from __future__ import annotations

import numpy as np


class Projection:
    name = "projection"

    def project(self, z: np.ndarray) -> np.ndarray:
        """N x D latents -> N x 2 map coordinates."""
        raise NotImplementedError

    def lift(self, uv: np.ndarray) -> np.ndarray:
        """N x 2 map coordinates -> N x D latents on the plane."""
        raise NotImplementedError

    @property
    def z_dim(self) -> int:
        """The latent dimension this projection maps (0 before it is fitted)."""
        raise NotImplementedError


class PlaneProjection(Projection):
    """z = origin + u * axes[0] + v * axes[1], axes orthonormal."""

    def __init__(self, origin: np.ndarray, axes: np.ndarray):
        self.origin = np.asarray(origin, dtype=np.float64)
        self.axes = np.asarray(axes, dtype=np.float64)

    def project(self, z):
        return (np.atleast_2d(z) - self.origin) @ self.axes.T

    def lift(self, uv):
        return self.origin + np.atleast_2d(uv) @ self.axes

    @property
    def z_dim(self) -> int:
        return self.axes.shape[1]


class PCAProjection(PlaneProjection):
    """The plane of the two leading principal components of the image-latent means.

    update() refits on a new snapshot and rotates/flips the new basis within its plane to
    best match the previous one (orthogonal Procrustes), so the map does not flip or spin.
    """
    name = "pca"

    def __init__(self, z: np.ndarray | None = None):
        super().__init__(np.zeros(2), np.eye(2))
        self.explained = np.zeros(2)
        if z is not None:
            self.update(z)

    def update(self, z: np.ndarray) -> "PCAProjection":
        z = np.asarray(z, dtype=np.float64)
        mean = z.mean(0)
        centred = z - mean
        # Eigenvectors of the d x d scatter matrix are the SVD's axes; far cheaper than an SVD of
        # the N x d data (10,000 points: 0.3 ms, not 8-140 ms with OpenBLAS threads on a busy CPU).
        power, vectors = np.linalg.eigh(centred.T @ centred)
        order = np.argsort(power)[::-1]
        s, vt = np.sqrt(np.clip(power[order], 0, None)), vectors[:, order].T
        axes = vt[:2]
        if axes.shape[0] < 2:  # one-dimensional latent: pad with a zero axis
            axes = np.vstack([axes, np.zeros_like(axes)])
        if self.axes.shape == axes.shape:
            u, _, wt = np.linalg.svd(self.axes @ axes.T)
            axes = (u @ wt) @ axes
        self.origin, self.axes = mean, axes
        total = (s ** 2).sum()
        self.explained = (s[:2] ** 2) / total if total > 0 else np.zeros(2)
        return self


class LabelPlaneProjection(PlaneProjection):
    """The plane through three label latents: the first at the origin, the second on the u axis."""
    name = "label-plane"

    def __init__(self, label_latents: np.ndarray, labels=(0, 1, 2)):
        self.labels = tuple(labels)
        self.update(label_latents)

    def update(self, label_latents: np.ndarray) -> "LabelPlaneProjection":
        a, b, c = (np.asarray(label_latents[i], dtype=np.float64) for i in self.labels)
        e1 = b - a
        e1 /= max(np.linalg.norm(e1), 1e-12)
        e2 = (c - a) - ((c - a) @ e1) * e1
        e2 /= max(np.linalg.norm(e2), 1e-12)
        super().__init__(a, np.stack([e1, e2]))
        return self


class IdentityProjection(PlaneProjection):
    """For z_dim == 2 the map is the latent space itself."""
    name = "exact-2d"

    def __init__(self):
        super().__init__(np.zeros(2), np.eye(2))

    def update(self, *_):
        return self


def __getattr__(name):
    # The t-SNE map keeps this contract in its own module (which imports this one): named here too.
    if name == "NeighbourhoodMap":
        from .neighbourhood_map import NeighbourhoodMap

        return NeighbourhoodMap
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
