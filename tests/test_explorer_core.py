"""Core of the latent explorer (no Qt): steering, decision map, manifold, clusters, generation."""
import numpy as np
import pytest
import torch

from clipvae_studio.core import load_checkpoint
from clipvae_studio.core.clusters import ClusterInput, cluster_input, embed_clusters
from clipvae_studio.core.decision_map import (Cancelled, cell_centres, colorize, compute_decision_map,
                                              manifold_image)
from clipvae_studio.core.explore import decode_points, inference_copy
from clipvae_studio.core.generation import blend_latents, corner_weights, image_grid, interpolate, label_blend
from clipvae_studio.core.projection import LabelPlaneProjection, PlaneProjection
from clipvae_studio.core.steering import steer


@pytest.fixture(scope="module")
def model(trained_checkpoint):
    return inference_copy(load_checkpoint(trained_checkpoint).model)


def _far_from(model, label):
    """A start point that CLIP does not already give to `label`: the latent of the label it likes least."""
    protos = model.label_latents().numpy()
    cos = protos @ protos[label] / np.linalg.norm(protos, axis=1) / np.linalg.norm(protos[label])
    return protos[int(np.argmin(cos))]


@pytest.mark.parametrize("label", [1, 7])
def test_steering_raises_the_label_score_monotonically(model, label):
    path = steer(model, _far_from(model, label), label, steps=30)
    scores = path.scores[:, label]  # re-encoded decode, the default objective
    assert scores[0] < 0.5 and scores[-1] > 0.9, scores
    assert np.all(np.diff(np.log(scores)) >= -1e-5), "a step lowered the steered label's score"
    assert path.z.shape == (len(scores), model.z_dim)
    np.testing.assert_allclose(path.scores.sum(1), 1.0, atol=1e-5)
    # The recorded scores are what decoding the path gives.
    again = decode_points(model, path.z[[0, -1]])
    np.testing.assert_allclose([d.scores[label] for d in again], scores[[0, -1]], atol=1e-5)


def test_steering_crosses_label_borders_instead_of_stalling(model, mnist5k):
    """With routed decoder heads the decoded picture jumps where CLIP's label at z changes, and
    plain gradient ascent on the re-encoded score stalls at such borders (5 of these 20 paths
    end below 0.9 without the escape along the direct score)."""
    with torch.no_grad():
        starts = model.encode_image(mnist5k.test_images[:20].float().div(255))[0].numpy()
    stalled = []
    for i, z0 in enumerate(starts):
        label = (int(mnist5k.test_labels[i]) + 1 + i % 9) % 10  # any label but the image's own
        path = steer(model, z0, label, steps=40)
        assert np.all(np.diff(np.log(path.scores[:, label])) >= -1e-5)
        if path.scores[-1, label] <= 0.9:
            stalled.append((i, label, round(float(path.scores[-1, label]), 3), len(path.z) - 1))
    assert len(stalled) <= 1, stalled


def test_steering_the_direct_score(model):
    path = steer(model, _far_from(model, 3), 3, steps=20, objective="direct")
    direct = path.direct_scores[:, 3]
    assert np.all(np.diff(direct) >= -1e-6) and direct[-1] > direct[0]
    with pytest.raises(ValueError):
        steer(model, path.z[0], 99)


def test_decision_map_agrees_with_single_decodes(model):
    projection = LabelPlaneProjection(model.label_latents().numpy(), labels=(0, 1, 2))
    rect = (-1.0, -1.0, 4.0, 3.0)
    dmap = compute_decision_map(model, projection, rect, resolution=8, rows=6)
    assert dmap.top.shape == (6, 8) and dmap.scores.shape == (6, 8, model.num_labels)
    np.testing.assert_allclose(dmap.scores.sum(-1), 1.0, atol=1e-5)
    uv = cell_centres(rect, 8, 6)
    assert uv[0, 1] < uv[-1, 1]  # row 0 is the bottom row (smallest v)
    expected = decode_points(model, projection.lift(uv).astype(np.float32))
    np.testing.assert_array_equal(dmap.top.ravel(), [int(np.argmax(d.scores)) for d in expected])
    # At the label-0 anchor (the plane's origin) the map says 0.
    at_anchor = compute_decision_map(model, projection, (-0.01, -0.01, 0.02, 0.02), resolution=1)
    assert at_anchor.top[0, 0] == 0
    rgba = colorize(dmap, np.array([[i * 20, 0, 0] for i in range(model.num_labels)]))
    assert rgba.shape == (6, 8, 4) and rgba.dtype == np.uint8
    np.testing.assert_array_equal(rgba[..., 0], dmap.top * 20)
    assert (rgba[..., 3][dmap.confidence > 0.99] > rgba[..., 3][dmap.confidence < 0.5].max(initial=0)).all()
    with pytest.raises(Cancelled):
        compute_decision_map(model, projection, rect, resolution=8, should_stop=lambda: True)


def test_manifold_places_tiles_bottom_row_first(model):
    projection = PlaneProjection(np.zeros(model.z_dim), np.eye(2, model.z_dim))
    rect = (-2.0, -2.0, 4.0, 4.0)
    picture = manifold_image(model, projection, rect, count=3, rows=2)
    h, w = model.image_shape[1:]
    assert picture.shape == (2 * h, 3 * w)
    # Tile (row 0, col 2) of the array is the bottom-right cell, shown upright on a y-up canvas.
    bottom_right = projection.lift(cell_centres(rect, 3, 2))[2]
    tile = decode_points(model, bottom_right[None].astype(np.float32))[0].image
    np.testing.assert_allclose(picture[:h, 2 * w:][::-1], tile, atol=1e-5)


def test_generation_helpers(model):
    weights = corner_weights((0, 1, 2, 3), model.num_labels, steps=4)
    np.testing.assert_allclose(weights.sum(1).numpy(), 1.0, atol=1e-6)
    assert torch.allclose(blend_latents(model, torch.eye(model.num_labels)), model.label_latents())
    assert label_blend(model, weights).shape == (16,) + model.image_shape
    protos = model.label_latents().numpy()
    path = interpolate(model, protos[0], protos[1], steps=5)
    assert path.shape == (5,) + model.image_shape
    assert torch.allclose(path[0], model.decode_image(torch.as_tensor(protos[:1])), atol=1e-6)
    grid = image_grid(path, nrow=5)
    assert grid.shape[0] == 3 and grid.shape[2] > 5 * model.image_shape[2]


def test_tsne_of_image_and_label_latents(model, mnist5k):
    data = cluster_input(model, mnist5k.test_images, mnist5k.test_labels, count=300)
    assert data.image_mu.shape == (300, model.z_dim) and len(np.unique(data.indices)) == 300
    progress = []
    emb = embed_clusters(data, max_iter=300, progress=progress.append)
    assert emb.image_xy.shape == (300, 2) and emb.label_xy.shape == (model.num_labels, 2)
    assert progress and progress[-1] == 1.0 and progress == sorted(progress)
    # Each label latent lands nearer its own class's images than the average image (trained model).
    own = [np.linalg.norm(emb.image_xy[emb.labels == k] - emb.label_xy[k], axis=1).mean() for k in range(10)]
    every = [np.linalg.norm(emb.image_xy - emb.label_xy[k], axis=1).mean() for k in range(10)]
    assert np.mean(np.array(own) < np.array(every)) >= 0.8
    calls = []

    def stop():
        calls.append(1)
        return len(calls) > 5

    with pytest.raises(Cancelled):
        embed_clusters(ClusterInput(data.image_mu, data.labels, data.indices, data.label_mu), should_stop=stop)


def test_label_mixing_and_gallery_pictures_in_core(mnist5k):
    """The explorer's views hand numbers to core.generation and get latents or pictures back."""
    import numpy as np
    import torch

    from clipvae_studio.core import Trainer, preset
    from clipvae_studio.core.explore import inference_copy
    from clipvae_studio.core.generation import gallery_picture, label_points, mix_labels

    trainer = Trainer(preset("studio").with_values(width=32, depth=1, snapshot_size=50), mnist5k, eval_size=50)
    model = inference_copy(trainer.model)
    protos = model.label_latents().numpy()
    weights = np.zeros(model.num_labels, np.float32)
    weights[[2, 7]] = 0.25, 0.75
    assert np.allclose(mix_labels(model, weights), 0.25 * protos[2] + 0.75 * protos[7], atol=1e-5)
    assert np.allclose(label_points(model, (3, 1)), protos[[3, 1]])
    c, h, w = mnist5k.image_shape
    n = 3
    grid = lambda rows: (c if c == 3 else 3, rows * (h + 2) + 2, n * (w + 2) + 2)  # noqa: E731 (make_grid's size)
    assert tuple(gallery_picture(model, "noise", n, seed=0).shape) == grid(n)
    assert tuple(gallery_picture(model, "labels", n, seed=0).shape) == grid(model.num_labels)
    assert tuple(gallery_picture(model, "corners", n, seed=0).shape) == grid(n)
    ends = label_points(model, (0, 1))
    line = gallery_picture(model, "interpolate", n, seed=0, ends=ends)
    assert tuple(line.shape) == grid(1)
    assert torch.equal(gallery_picture(model, "noise", n, seed=4), gallery_picture(model, "noise", n, seed=4))


def test_decode_keeps_an_inference_copys_label_latents_and_follows_a_training_model(mnist5k):
    """A drag decodes a point per move: an inference copy (frozen weights) computes its label
    latents once; a model that still trains is scored with its label latents of the moment."""
    from clipvae_studio.core import Trainer, preset
    from clipvae_studio.core.explore import label_latents_of

    trainer = Trainer(preset("studio").with_values(width=32, depth=1, snapshot_size=50), mnist5k, eval_size=50)
    copy = inference_copy(trainer.model)
    z = np.random.default_rng(0).normal(size=(3, copy.z_dim)).astype(np.float32)
    first = decode_points(copy, z)
    assert label_latents_of(copy) is label_latents_of(copy)  # kept, not recomputed
    assert torch.allclose(label_latents_of(copy), copy.label_latents())
    assert np.allclose(first[1].z, z[1]) and np.allclose(decode_points(copy, z)[1].scores, first[1].scores)
    live = trainer.model.eval()
    before = decode_points(live, z)[0].direct_scores
    with torch.no_grad():
        for p in live.label_encoder.parameters():
            p.add_(0.5)  # the live weights move (an optimiser step would)
    assert not np.allclose(decode_points(live, z)[0].direct_scores, before)
