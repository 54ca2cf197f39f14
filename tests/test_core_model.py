"""The CLIPVAE model and its loss terms (no Qt)."""
import math

import pytest
import torch

from clipvae_studio.core import CLIPVAE, preset
from clipvae_studio.core import losses
from clipvae_studio.core.model import weighted_total


@pytest.mark.parametrize("arch", ["mlp", "conv"])
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (1, 19, 23)])
def test_any_image_shape_and_label_count(arch, shape):
    torch.manual_seed(0)
    model = CLIPVAE(shape, 7, arch=arch, z_dim=5, width=16, depth=2)
    x = torch.rand(4, *shape)
    mu, logvar = model.encode_image(x)
    assert mu.shape == logvar.shape == (4, 5)
    out = model.decode_image(mu)
    assert out.shape == (4, *shape) and out.min() >= 0 and out.max() <= 1
    p = model.clip_scores(mu)
    assert p.shape == (4, 7)
    assert torch.allclose(p.sum(1), torch.ones(4))
    assert model.decode_label(mu).shape == (4, 7)
    terms = model.loss_terms(x, torch.tensor([0, 1, 6, 6]), preset("studio"))
    assert set(losses.LOSS_TERMS) - {"prior_mmd"} <= set(terms)  # studio adds label_match; MMD only when weighted
    assert all(torch.isfinite(v) and v.dim() == 0 for v in terms.values())


def test_reference_preset_reproduces_published_defects():
    cfg = preset("reference")
    assert (cfg.z_dim, cfg.width, cfg.depth, cfg.batch_size, cfg.lr, cfg.epochs) == (16, 64, 6, 64, 1e-3, 50)
    assert (cfg.noise, cfg.shared_blocks, cfg.clip_mode, cfg.rec_reduction, cfg.kld_reduction) == \
        ("uniform", True, "batch", "mean", "mean")
    model = CLIPVAE.from_config(cfg, (1, 28, 28), 10)
    blocks = model.image_encoder.blocks
    assert all(b is blocks[0] for b in blocks)  # one module reused, as published
    studio = CLIPVAE.from_config(preset("studio"), (1, 28, 28), 10)
    if len(studio.image_encoder.blocks) > 1:
        assert studio.image_encoder.blocks[0] is not studio.image_encoder.blocks[1]


def test_reparameterisation_noise_kinds():
    model = CLIPVAE((1, 4, 4), 2, noise="gaussian")
    mu, logvar = torch.zeros(20000, 1), torch.zeros(20000, 1)
    z = model.reparameterize(mu, logvar)
    assert abs(z.mean().item()) < 0.05 and abs(z.std().item() - 1) < 0.05 and z.min() < 0
    model.noise = "uniform"
    z = model.reparameterize(mu, logvar)
    assert z.min() >= 0 and z.max() < 1  # the reference's rand_like


def test_weights_scale_each_term():
    torch.manual_seed(0)
    model = CLIPVAE((1, 8, 8), 3, width=8, depth=1)
    x, y = torch.rand(6, 1, 8, 8), torch.tensor([0, 1, 2, 0, 1, 2])
    cfg = preset("studio").with_values(w_label_match=0, w_prior_mmd=0)  # the five terms only
    torch.manual_seed(1)
    terms = model.loss_terms(x, y, cfg)
    only_clip = cfg.with_values(w_kld_image=0, w_kld_label=0, w_rec_image=0, w_ce_label=0, w_clip=2.0)
    assert torch.isclose(weighted_total(terms, only_clip), 2 * terms["clip"])
    assert torch.isclose(weighted_total(terms, cfg, kl_factor=0.0),
                         sum(getattr(cfg, f"w_{k}") * terms[k] for k in ("clip", "rec_image", "ce_label")))


def test_clip_batch_matches_hand_computation():
    zi, zl = torch.randn(5, 3), torch.randn(5, 3)
    scale = torch.tensor(math.log(10.0))
    ni, nl = zi / zi.norm(dim=1, keepdim=True), zl / zl.norm(dim=1, keepdim=True)
    logits = 10.0 * ni @ nl.t()
    lp = logits.log_softmax(1).diag().mean()
    lq = logits.t().log_softmax(1).diag().mean()
    assert torch.isclose(losses.clip_batch(zi, zl, scale), -(lp + lq) / 2, atol=1e-5)


def test_clip_prototype_treats_same_class_images_as_positives():
    protos = torch.eye(3)
    scale = torch.tensor(math.log(50.0))
    y = torch.tensor([0, 0, 1, 2])
    aligned = losses.clip_prototype(protos[y] * 3, y, protos, scale)
    shuffled = losses.clip_prototype(protos[torch.tensor([1, 2, 0, 0])], y, protos, scale)
    assert aligned < 0.05 < shuffled
    # the two class-0 images are both positives: the label->image term is not penalised by their tie
    assert aligned.item() == pytest.approx(0.0, abs=0.05)


def test_reconstruction_and_kl_reductions():
    logits = torch.zeros(2, 1, 2, 2)
    x = torch.ones(2, 1, 2, 2)
    assert losses.reconstruction(logits, x, "mean").item() == pytest.approx(math.log(2))
    assert losses.reconstruction(logits, x, "sum").item() == pytest.approx(4 * math.log(2))
    mu, logvar = torch.ones(2, 4), torch.zeros(2, 4)
    assert losses.kl_divergence(mu, logvar, "mean").item() == pytest.approx(0.5)
    assert losses.kl_divergence(mu, logvar, "sum").item() == pytest.approx(2.0)
    assert losses.kl_divergence(torch.zeros(2, 4), logvar, "sum", free_bits=0.25).item() == pytest.approx(1.0)
