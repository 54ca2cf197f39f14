"""A t-SNE map of the latent space that maps both ways (docs/architecture.md, "the latent map").

- The layout: openTSNE on the image-latent means only (never on the true labels), so the map shows
  the model's own neighbourhoods. A refit starts from the previous layout (a few warm iterations,
  no early exaggeration) and is then turned and shifted onto it (orthogonal Procrustes, no
  reflection): a point moves only as much as its latent did.
- project(z), out of sample: the layout positions of z's nearest data latents, weighted by
  closeness; a data latent lands exactly on its own point.
- lift(uv): inside the layout's convex hull, barycentric interpolation of the data latents over a
  Delaunay triangulation (exact at the data points); outside it, the closeness-weighted mean of the
  nearest points' latents: finite everywhere. extrapolation(uv) in 0..1 says how far a map point
  is from any data (0 near the data, 1 where a picture is a guess), so views can shade it.

update(z) fits synchronously; fitted(z) returns a new, independent map fitted from this one, so a
worker thread can fit while the GUI keeps drawing with the old map.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .projection import Projection

NEIGHBOURS = 8  # data latents that place an out-of-sample point (project) and fill gaps (lift)
PERPLEXITY = 30.0
COLD_EXAGGERATED, COLD_ITERATIONS = 125, 300  # half openTSNE's default schedule: the live refits keep polishing
# After early exaggeration: attraction x EXAGGERATION, Student-t tails of DOF degrees of freedom
# (openTSNE's `exaggeration`, `dof`). The warm refits use the same, so they keep the cold layout's shape.
# 1.25: hit k=10 +0.002 on average on 2,000-step models of two sets, label shares kept; 1.5 gained
# +0.005 but shrank the smallest label's share towards half its points' share (docs/quality.md).
EXAGGERATION, DOF = 1.25, 1.0
WARM_ITERATIONS = 25  # a refit from the previous layout: ~0.15 s for 2,000 points (Barnes-Hut)
EXACT_NEIGHBOURS_UP_TO = 5000  # brute-force kNN is faster than annoy's index below this many points
# extrapolation: 0 within NEAR spacings of the nearest point, 1 beyond FAR spacings, where a
# spacing is the median distance from a point to its nearest neighbour on the map.
NEAR_SPACINGS, FAR_SPACINGS = 2.0, 6.0
# project: only neighbours placed within this many spacings of the nearest one's place count, so a
# point whose latent neighbours lie in two clusters lands in one of them, not in the gap between
# (held-out click-to-class agreement .80 -> .90 on a 40-s model, at the ceiling its nearest point sets).
PLACE_SPACINGS = 2.0
# How the map compares latents: "cosine" (the angle, what CLIP scores) or "euclidean". The layout's
# affinities and the forward map's neighbour search both use it; lift still mixes the raw latents.
METRIC = "euclidean"


def geometry(z: np.ndarray, metric: str | None = None) -> np.ndarray:
    """The latents as the map compares them: unit vectors under the cosine metric (their Euclidean
    distances order pairs as the angle does), unchanged under the Euclidean one."""
    z = np.asarray(z, dtype=np.float64)
    if (metric or METRIC) != "cosine":
        return z
    return z / np.maximum(np.linalg.norm(z, axis=-1, keepdims=True), 1e-12)


def _rigid_alignment(moving: np.ndarray, fixed: np.ndarray) -> np.ndarray:
    """moving, turned and shifted (no reflection, no scaling) to best overlay fixed."""
    from scipy.linalg import orthogonal_procrustes

    mc, fc = moving.mean(0), fixed.mean(0)
    rotation, _ = orthogonal_procrustes(moving - mc, fixed - fc)
    if np.linalg.det(rotation) < 0:  # the best fit is a mirror image: take the best rotation instead
        u, _, vt = np.linalg.svd((moving - mc).T @ (fixed - fc))
        d = np.diag([1.0, np.sign(np.linalg.det(u @ vt))])
        rotation = u @ d @ vt
    return (moving - mc) @ rotation + fc


def tsne_layout(z: np.ndarray, previous: np.ndarray | None = None, seed: int = 0,
                should_stop: Callable[[], bool] | None = None, metric: str | None = None) -> np.ndarray:
    """N x 2 layout of the latents z; from `previous` (same N) when given: warm, then aligned to it."""
    from openTSNE import TSNE, TSNEEmbedding, affinity
    from openTSNE.callbacks import Callback

    z = geometry(z, metric)
    n = len(z)
    perplexity = float(min(PERPLEXITY, max(2.0, (n - 1) / 3.0)))

    class _Stop(Callback):
        def __call__(self, iteration, error, embedding):
            return bool(should_stop and should_stop())

    callbacks = [_Stop()] if should_stop else None
    neighbours = "exact" if n <= EXACT_NEIGHBOURS_UP_TO else "annoy"
    if previous is None or len(previous) != n:
        tsne = TSNE(perplexity=perplexity, n_iter=COLD_ITERATIONS, early_exaggeration_iter=COLD_EXAGGERATED,
                    exaggeration=EXAGGERATION, dof=DOF, n_jobs=1, random_state=seed, initialization="pca", neighbors=neighbours,
                    negative_gradient_method="bh",
                    callbacks=callbacks, callbacks_every_iters=25, verbose=False)
        return np.asarray(tsne.fit(z), dtype=np.float64)
    affinities = affinity.PerplexityBasedNN(z, perplexity=perplexity, method=neighbours,
                                            n_jobs=1, random_state=seed, verbose=False)
    embedding = TSNEEmbedding(np.array(previous, dtype=np.float64), affinities, negative_gradient_method="bh",
                              dof=DOF, n_jobs=1, random_state=seed, callbacks=callbacks, callbacks_every_iters=10,
                              verbose=False)
    embedding = embedding.optimize(n_iter=WARM_ITERATIONS, exaggeration=EXAGGERATION, learning_rate=max(n / 12.0, 50.0),
                                   momentum=0.8)
    return _rigid_alignment(np.asarray(embedding, dtype=np.float64), np.asarray(previous, dtype=np.float64))


class NeighbourhoodMap(Projection):
    """The t-SNE map: update(z) fits it on the snapshot's image-latent means."""
    name = "neighbourhood"

    def __init__(self, metric: str | None = None):
        self.metric = metric or METRIC
        if self.metric not in ("cosine", "euclidean"):
            raise ValueError(f"unknown metric {self.metric!r}: 'cosine' or 'euclidean'")
        self.z = np.zeros((0, 0))  # the data latents, N x D
        self.uv = np.zeros((0, 2))  # their places on the map, N x 2
        self.spacing = 1.0
        self._latent_tree = self._map_tree = self._triangulation = None

    # --- fitting ------------------------------------------------------------------------------
    @property
    def is_fitted(self) -> bool:
        return len(self.uv) >= 3

    @property
    def z_dim(self) -> int:
        return self.z.shape[1] if self.z.ndim == 2 else 0

    def update(self, z: np.ndarray, should_stop: Callable[[], bool] | None = None) -> "NeighbourhoodMap":
        """Refit on new latents (warm from the current layout when the count is unchanged)."""
        z = np.asarray(z, dtype=np.float64)
        previous = self.uv if len(self.uv) == len(z) and self.z.shape == z.shape else None
        return self.set_layout(z, tsne_layout(z, previous, should_stop=should_stop, metric=self.metric))

    def fitted(self, z: np.ndarray, should_stop: Callable[[], bool] | None = None) -> "NeighbourhoodMap":
        """A new map fitted on z from this one's layout; this one is left as it was."""
        successor = NeighbourhoodMap(self.metric)
        successor.z, successor.uv = self.z, self.uv
        return successor.update(z, should_stop)

    def set_layout(self, z: np.ndarray, uv: np.ndarray) -> "NeighbourhoodMap":
        """Use a given layout of the latents z (also how a test builds a map with known places)."""
        from scipy.spatial import Delaunay, cKDTree

        z, uv = np.asarray(z, dtype=np.float64), np.asarray(uv, dtype=np.float64)
        if len(z) != len(uv) or len(z) < 3:
            raise ValueError(f"a neighbourhood map needs >= 3 latents with one place each (got {len(z)}, {len(uv)})")
        self.z, self.uv = z, uv
        self._latent_tree, self._map_tree = cKDTree(geometry(z, self.metric)), cKDTree(uv)
        nearest, _ = self._map_tree.query(uv, k=2)
        gaps = nearest[:, 1][nearest[:, 1] > 0]
        self.spacing = float(np.median(gaps)) if len(gaps) else 1.0
        try:
            self._triangulation = Delaunay(uv)
        except Exception:  # all points on a line: no triangles, lift falls back to neighbours
            self._triangulation = None
        return self

    # --- both directions --------------------------------------------------------------------------
    def project(self, z: np.ndarray) -> np.ndarray:
        z = np.atleast_2d(np.asarray(z, dtype=np.float64))
        if not self.is_fitted:
            raise RuntimeError("the neighbourhood map is not fitted yet")
        k = min(NEIGHBOURS, len(self.z))
        distance, index = self._latent_tree.query(geometry(z, self.metric), k=k)
        places = self.uv[index]
        if places.ndim == 2:  # a single neighbour
            return places.astype(np.float64)
        apart = np.linalg.norm(places - places[:, :1], axis=2) > PLACE_SPACINGS * self.spacing
        return _weighted(places, distance, ignore=apart)

    def lift(self, uv: np.ndarray) -> np.ndarray:
        uv = np.atleast_2d(np.asarray(uv, dtype=np.float64))
        if not self.is_fitted:
            raise RuntimeError("the neighbourhood map is not fitted yet")
        return self._interpolate(uv, self.z)

    def _interpolate(self, uv: np.ndarray, values: np.ndarray) -> np.ndarray:
        """values (one row per data point) interpolated at map points uv: barycentric over the
        Delaunay triangles inside the hull, closeness-weighted nearest points outside it."""
        out = np.empty((len(uv), values.shape[1]))
        inside = np.zeros(len(uv), bool)
        if self._triangulation is not None:
            simplex = self._triangulation.find_simplex(uv)
            inside = simplex >= 0
            if inside.any():
                s = simplex[inside]
                transform = self._triangulation.transform[s]  # (M, 3, 2): inverse and offset
                b = np.einsum("mij,mj->mi", transform[:, :2], uv[inside] - transform[:, 2])
                weights = np.column_stack([b, 1.0 - b.sum(1)])
                vertices = self._triangulation.simplices[s]
                out[inside] = np.einsum("mk,mkd->md", weights, values[vertices])
        outside = ~inside
        if outside.any():  # the neighbour search only where it is needed (a drag move is one point, mostly inside)
            distance, index = self._map_tree.query(uv[outside], k=min(NEIGHBOURS, len(self.z)))
            out[outside] = _weighted(values[index], distance)
        return out

    def carry(self, uv: np.ndarray, successor: "NeighbourhoodMap") -> np.ndarray:
        """Map points of this layout placed on a successor's layout of the same data points: the
        same barycentric mixture of the same points (inside the hull), or the same neighbours'
        weights (outside it). A picked point keeps its place among its neighbours across a refit."""
        uv = np.atleast_2d(np.asarray(uv, dtype=np.float64))
        if len(successor.uv) != len(self.uv):
            raise ValueError("carry needs a successor fitted on the same points")
        return self._interpolate(uv, successor.uv)

    def extrapolation(self, uv: np.ndarray) -> np.ndarray:
        """0..1 per map point: 0 near the data, 1 where the latent is a guess far from any point."""
        uv = np.atleast_2d(np.asarray(uv, dtype=np.float64))
        if not self.is_fitted:
            return np.ones(len(uv))
        distance, _ = self._map_tree.query(uv, k=1)
        spacings = distance / max(self.spacing, 1e-12)
        return np.clip((spacings - NEAR_SPACINGS) / (FAR_SPACINGS - NEAR_SPACINGS), 0.0, 1.0)


def _weighted(values: np.ndarray, distance: np.ndarray, ignore: np.ndarray | None = None) -> np.ndarray:
    """Mean of values (M x k x C) over k neighbours, weighted by inverse squared distance relative
    to the nearest one (a point at distance 0 takes its own value; far away, all k count alike and
    the result stays finite however large the distances are). `ignore` (M x k) drops neighbours."""
    if values.ndim == 2:  # k == 1
        return values.astype(np.float64)
    nearest = distance[:, :1]
    relative = np.where(nearest > 0, distance / np.where(nearest > 0, nearest, 1.0), 0.0)
    weights = np.where(nearest > 0, 1.0 / np.maximum(relative, 1.0) ** 2, 0.0)
    if ignore is not None:
        weights[ignore] = 0.0
    weights[:, 0] = 1.0  # the nearest always counts fully (and alone when it is an exact hit)
    weights /= weights.sum(1, keepdims=True)
    return np.einsum("mk,mkc->mc", weights, values)
