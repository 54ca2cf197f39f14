"""NeighbourhoodMap: the t-SNE map both ways (lift exact at the data, finite everywhere), refits that
hold still, out-of-sample placement, and carrying a map point across a refit."""
import numpy as np
import pytest

from clipvae_studio.core.neighbourhood_map import NeighbourhoodMap
from clipvae_studio.core.projection import Projection


def blobs(n_per=60, classes=5, dim=12, seed=0):
    """Well-separated Gaussian clusters in `dim` dimensions (latents whose classes are known)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dim)) * 6
    z = np.concatenate([c + rng.normal(size=(n_per, dim)) for c in centres])
    return z, np.repeat(np.arange(classes), n_per)


def radius(uv):
    return float(np.percentile(np.linalg.norm(uv - uv.mean(0), axis=1), 95))


@pytest.fixture(scope="module")
def fitted():
    z, labels = blobs()
    return NeighbourhoodMap().update(z), z, labels


def test_contract_built_with_no_arguments():
    nmap = NeighbourhoodMap()
    assert isinstance(nmap, Projection) and not nmap.is_fitted
    with pytest.raises(RuntimeError):
        nmap.lift(np.zeros((1, 2)))


def test_layout_keeps_clusters_apart(fitted):
    nmap, z, labels = fitted
    assert nmap.uv.shape == (len(z), 2) and nmap.z_dim == z.shape[1]
    # each point's 10 nearest neighbours on the map share its cluster (the latent's neighbourhoods kept)
    d = np.linalg.norm(nmap.uv[:, None] - nmap.uv[None], axis=2)
    nearest = np.argsort(d, axis=1)[:, 1:11]
    assert (labels[nearest] == labels[:, None]).mean() > 0.95


def test_lift_is_exact_at_the_data_and_finite_everywhere(fitted):
    nmap, z, _ = fitted
    assert np.allclose(nmap.lift(nmap.uv), z, atol=1e-8)
    centre, r = nmap.uv.mean(0), radius(nmap.uv)
    far = np.array([[1e6, 1e6], [-1e6, 3.0], [0.0, -1e6], centre + [3 * r, 0], centre + [0, 1.5 * r]])
    grid = np.stack(np.meshgrid(np.linspace(-3, 3, 40), np.linspace(-3, 3, 40)), -1).reshape(-1, 2) * r + centre
    lifted = nmap.lift(np.concatenate([far, grid]))
    assert lifted.shape == (len(far) + len(grid), z.shape[1]) and np.isfinite(lifted).all()
    # far away the latent is a blend of data latents: within the data's range, not blown up
    assert np.all(np.abs(nmap.lift(far)) <= np.abs(z).max() + 1e-9)


def test_extrapolation_is_zero_at_the_data_and_one_far_away(fitted):
    nmap, _, _ = fitted
    assert np.all(nmap.extrapolation(nmap.uv) == 0)
    assert np.all(nmap.extrapolation(np.array([[1e6, 0.0], nmap.uv.mean(0) + [10 * radius(nmap.uv), 0]])) == 1)


def test_refit_with_unchanged_latents_holds_still(fitted):
    nmap, z, _ = fitted
    again = nmap.fitted(z)
    moved = np.linalg.norm(again.uv - nmap.uv, axis=1)
    assert np.median(moved) <= 0.02 * radius(nmap.uv)
    assert again is not nmap and np.array_equal(nmap.z, z)  # the old map is left as it was


def test_refit_follows_a_rotated_start_back_into_place(fitted):
    """The alignment turns a refit back onto the previous layout (rotation + translation only)."""
    from clipvae_studio.core.neighbourhood_map import _rigid_alignment

    nmap, _, _ = fitted
    angle = 0.7
    turn = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    turned = nmap.uv @ turn + [40.0, -7.0]
    assert np.allclose(_rigid_alignment(turned, nmap.uv), nmap.uv, atol=1e-8)
    mirrored = nmap.uv * [-1, 1]  # a mirror image is never undone by a reflection
    aligned = _rigid_alignment(mirrored, nmap.uv)
    assert np.linalg.det(np.cov((aligned - aligned.mean(0)).T)) > 0
    assert not np.allclose(aligned, nmap.uv, atol=1e-3)


def test_out_of_sample_project_lands_on_its_point(fitted):
    nmap, z, labels = fitted
    assert np.allclose(nmap.project(z), nmap.uv, atol=1e-9)  # a data latent: exactly its own point
    rng = np.random.default_rng(1)
    nearby = z[::7] + rng.normal(scale=0.05, size=z[::7].shape)
    placed = nmap.project(nearby)
    gap = np.linalg.norm(placed - nmap.uv[::7], axis=1)
    assert np.median(gap) <= 2 * nmap.spacing
    # ... and lift(project(z)) comes back to a latent of the same cluster
    centres = np.stack([z[labels == k].mean(0) for k in range(labels.max() + 1)])
    back = nmap.lift(placed)
    cluster = np.argmin(np.linalg.norm(back[:, None] - centres[None], axis=2), axis=1)
    assert (cluster == labels[::7]).mean() > 0.95


def test_carry_keeps_a_point_on_the_same_latent(fitted):
    nmap, z, _ = fitted
    again = nmap.fitted(z)
    inside = 0.5 * (nmap.uv[3] + nmap.uv[4])
    carried = nmap.carry(inside[None], again)
    assert np.allclose(again.lift(carried), nmap.lift(inside[None]), atol=0.05 * np.abs(z).max())


def test_bad_layout_is_refused():
    with pytest.raises(ValueError, match="needs >= 3"):
        NeighbourhoodMap().set_layout(np.zeros((2, 4)), np.zeros((2, 2)))
    collinear = NeighbourhoodMap().set_layout(np.eye(4), np.array([[0, 0], [1, 0], [2, 0], [3, 0.0]]))
    assert np.isfinite(collinear.lift(np.array([[1.5, 2.0]]))).all()


def test_cosine_metric_places_a_latent_by_its_direction():
    """Under the cosine metric (how CLIP compares latents) a latent twice as long points the same way
    and lands on its point; lift still returns the raw data latents. An unknown metric is refused."""
    z, _ = blobs(n_per=20, classes=3, dim=6)
    uv = np.random.default_rng(1).normal(size=(len(z), 2))
    cosine = NeighbourhoodMap(metric="cosine").set_layout(z, uv)
    assert np.allclose(cosine.project(2.0 * z[:5]), uv[:5])
    assert np.allclose(cosine.lift(uv), z)
    euclidean = NeighbourhoodMap(metric="euclidean").set_layout(z, uv)
    assert not np.allclose(euclidean.project(2.0 * z[:5]), uv[:5])  # the length counts there
    with pytest.raises(ValueError, match="metric"):
        NeighbourhoodMap(metric="manhattan")
