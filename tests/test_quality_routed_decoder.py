"""Routed decoder heads and the prior-matching MMD term (studio preset options)."""
import pytest
import torch
from torch import nn

from clipvae_studio.core import CLIPVAE, load_checkpoint, preset
from clipvae_studio.core.generation import sample_label, sample_noise
from clipvae_studio.core.losses import prior_mmd
from clipvae_studio.core.networks import routed_linear


def test_routed_linear_sends_each_row_through_its_own_head():
    torch.manual_seed(0)
    heads = nn.ModuleList([nn.Linear(5, 3) for _ in range(4)])
    h = torch.randn(9, 5)
    route = torch.tensor([3, 0, 0, 2, 3, 1, 0, 2, 2])
    expected = torch.stack([heads[int(k)](row) for row, k in zip(h, route)])
    assert torch.allclose(routed_linear(heads, h, route), expected, atol=1e-6)
    # one label only takes the single-head path; the answer is the same
    same = torch.full((9,), 2)
    assert torch.allclose(routed_linear(heads, h, same), heads[2](h), atol=1e-6)
    with pytest.raises(ValueError):
        routed_linear(heads, h, None)


def _model_with_marked_heads():
    torch.manual_seed(0)
    model = CLIPVAE((1, 4, 4), 3, z_dim=3, width=8, depth=1, decoder_heads=True).eval()
    with torch.no_grad():
        for k, head in enumerate(model.image_decoder.heads):  # head k paints every pixel 10 * (k - 1)
            head.weight.zero_()
            head.bias.fill_(10.0 * (k - 1))
    return model


def test_decoding_uses_the_head_of_the_label_clip_scores_highest():
    model = _model_with_marked_heads()
    protos = model.label_latents().detach()
    z = 3 * protos / protos.norm(dim=1, keepdim=True)  # each point sits on one label's direction
    assert torch.equal(model.clip_scores(z).argmax(1), torch.arange(3))
    logits = model.decode_image_logits(z)
    assert torch.allclose(logits.flatten(1).mean(1), torch.tensor([-10.0, 0.0, 10.0]))
    # an explicit label overrides CLIP (generating from a label)
    forced = model.decode_image_logits(z, torch.tensor([2, 2, 2]))
    assert torch.allclose(forced, torch.full_like(forced, 10.0))


def test_noise_samples_are_the_picture_clip_reranks_first_among_the_heads(trained_checkpoint):
    model = load_checkpoint(trained_checkpoint).model.eval()
    n, k = 200, model.num_labels
    generator = torch.Generator().manual_seed(0)
    z = torch.randn(n, model.z_dim, generator=generator)
    with torch.no_grad():
        # brute force: every head's picture, encoded again, scored by CLIP for that head's label
        pictures = [model.decode_image(z, torch.full((n,), j)) for j in range(k)]
        own = torch.stack([model.clip_scores(model.encode_image(p)[0])[:, j] for j, p in enumerate(pictures)], 1)
        best = own.argmax(1)
        expected = torch.stack([pictures[int(best[i])][i] for i in range(n)])
        assert torch.allclose(model.decode_reranked(z), expected, atol=1e-6)
        at_point = model.clip_logits(z).argmax(1)
        assert (best != at_point).any() and len(set(best.tolist())) > 1  # a different rule, not a constant
        # the sampler reranks; rerank=False decodes as the map does (CLIP's label at z)
        assert torch.allclose(sample_noise(model, n, torch.Generator().manual_seed(0)), expected, atol=1e-6)
        plain = sample_noise(model, n, torch.Generator().manual_seed(0), rerank=False)
        assert torch.allclose(plain, model.decode_image(z))


def test_reranking_in_chunks_gives_the_same_samples(monkeypatch):
    import clipvae_studio.core.model as model_module

    torch.manual_seed(1)
    model = CLIPVAE((1, 4, 4), 3, z_dim=3, width=8, depth=1, decoder_heads=True).eval()
    z = torch.randn(50, 3)
    whole = model.decode_reranked(z)
    assert not torch.allclose(whole[0], whole[1])  # the pictures follow z: order matters
    monkeypatch.setattr(model_module, "RERANK_PIXELS", 7 * 3 * 16)  # 7 points per chunk
    assert torch.allclose(model.decode_reranked(z), whole, atol=1e-6)


def test_every_head_gives_each_heads_picture():
    model = _model_with_marked_heads()
    z = torch.randn(5, 3)
    every = model.image_decoder.every_head(z)
    assert every.shape == (5, 3, 1, 4, 4)
    for k in range(3):
        assert torch.allclose(every[:, k], model.decode_image_logits(z, torch.full((5,), k)))


def test_label_samples_come_from_the_labels_head_unless_clip_routing_is_asked_for():
    model = _model_with_marked_heads()
    g = torch.Generator().manual_seed(1)
    own = sample_label(model, 0, 50, g)
    assert torch.allclose(own, torch.full_like(own, torch.sigmoid(torch.tensor(-10.0)).item()))
    g = torch.Generator().manual_seed(1)
    clip = sample_label(model, 0, 50, g, route_by_label=False)
    heads_used = {round(v, 3) for v in clip.flatten(1).mean(1).tolist()}
    assert heads_used <= {round(torch.sigmoid(torch.tensor(v)).item(), 3) for v in (-10.0, 0.0, 10.0)}


def test_conv_decoder_routes_each_row_through_its_labels_head():
    torch.manual_seed(0)
    model = CLIPVAE((3, 12, 12), 3, arch="conv", z_dim=3, width=8, decoder_heads=True).eval()
    with torch.no_grad():
        for k, head in enumerate(model.image_decoder.heads):  # head k paints every pixel 10 * (k - 1)
            conv = next(m for m in head.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)))
            conv.weight.zero_()
            conv.bias.fill_(10.0 * (k - 1))
    z = torch.randn(6, 3)
    route = torch.tensor([2, 0, 1, 1, 2, 0])
    logits = model.decode_image_logits(z, route)
    assert logits.shape == (6, 3, 12, 12)
    assert torch.allclose(logits.flatten(1).mean(1), 10.0 * (route.float() - 1))
    every = model.image_decoder.every_head(z)
    assert every.shape == (6, 3, 3, 12, 12)
    assert model.decode_reranked(z).shape == (6, 3, 12, 12)
    preset("studio").with_values(arch="conv", decoder_heads=True)  # a valid setting now


def test_prior_mmd_is_near_zero_for_prior_samples_and_grows_with_a_mismatch():
    g = torch.Generator().manual_seed(0)
    same = [prior_mmd(torch.randn(256, 8, generator=g), torch.randn(256, 8, generator=g)).item() for _ in range(5)]
    assert abs(sum(same) / 5) < 0.01  # unbiased: zero in expectation
    shifted = prior_mmd(torch.randn(256, 8, generator=g) + 1.0, torch.randn(256, 8, generator=g)).item()
    clumped = prior_mmd(0.1 * torch.randn(256, 8, generator=g), torch.randn(256, 8, generator=g)).item()
    assert shifted > 0.1 and clumped > 0.1
    nearer = prior_mmd(torch.randn(256, 8, generator=g) + 0.3, torch.randn(256, 8, generator=g)).item()
    assert 0 < nearer < shifted


def test_prior_mmd_gradient_spreads_a_clump_towards_the_prior():
    g = torch.Generator().manual_seed(0)
    z = (0.2 * torch.randn(128, 4, generator=g)).requires_grad_()
    optimiser = torch.optim.SGD([z], lr=50.0)
    before = z.detach().std().item()
    for _ in range(100):
        optimiser.zero_grad()
        prior_mmd(z, torch.randn(128, 4, generator=g)).backward()
        optimiser.step()
    assert before < 0.3 < z.detach().std().item()
