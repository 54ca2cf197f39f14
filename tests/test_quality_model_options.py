"""The studio's model options: the label-match term, image jitter, and a reference left untouched."""
import pytest
import torch

from clipvae_studio.core import CLIPVAE, preset
from clipvae_studio.core.augment import jitter
from clipvae_studio.core.losses import LOSS_TERMS, label_match
from clipvae_studio.core.model import weighted_total


def test_label_match_is_the_gaussian_kl_and_zero_for_equal_posteriors():
    mu, logvar = torch.randn(6, 4), torch.randn(6, 4) * 0.3
    assert label_match(mu, logvar, mu, logvar).item() == pytest.approx(0.0, abs=1e-6)
    # KL(N(1, 1) || N(0, e^2)) per dimension = 0.5 * (2 + (1 + 1) / e^2 - 1)
    one = torch.ones(1, 3)
    expected = 3 * 0.5 * (2 + 2 / torch.e ** 2 - 1)
    assert label_match(one, torch.zeros(1, 3), torch.zeros(1, 3), 2 * one).item() == pytest.approx(expected)


def test_label_match_optimum_is_the_moment_matched_class_gaussian():
    torch.manual_seed(0)
    mu_x = torch.randn(500, 3) * torch.tensor([0.5, 1.0, 2.0]) + torch.tensor([3.0, -1.0, 0.0])
    logvar_x = torch.full((500, 3), -2.0)
    mu_y = mu_x.mean(0, keepdim=True).clone().requires_grad_(True)
    var = logvar_x.exp().mean(0) + mu_x.var(0, unbiased=False)
    logvar_y = var.log().unsqueeze(0).clone().requires_grad_(True)
    loss = label_match(mu_x, logvar_x, mu_y.expand(500, 3), logvar_y.expand(500, 3))
    loss.backward()
    assert mu_y.grad.abs().max().item() < 1e-5 and logvar_y.grad.abs().max().item() < 1e-5


def test_reverse_label_match_optimum_is_the_tight_precision_weighted_gaussian():
    torch.manual_seed(0)
    mu_x = torch.randn(500, 3) * torch.tensor([0.5, 1.0, 2.0]) + torch.tensor([3.0, -1.0, 0.0])
    logvar_x = torch.randn(500, 3) * 0.3 - 2.0
    precision = torch.exp(-logvar_x)
    mu_y = ((precision * mu_x).sum(0) / precision.sum(0)).unsqueeze(0).clone().requires_grad_(True)
    logvar_y = (-precision.mean(0).log()).unsqueeze(0).clone().requires_grad_(True)  # harmonic mean of var_x
    loss = label_match(mu_x, logvar_x, mu_y.expand(500, 3), logvar_y.expand(500, 3), reverse=1.0)
    loss.backward()
    assert mu_y.grad.abs().max().item() < 1e-4 and logvar_y.grad.abs().max().item() < 1e-4
    # tighter than even one image's mean posterior (harmonic <= arithmetic mean), let alone the
    # forward optimum, which also covers the spread of mu_x
    var_y = logvar_y.detach().exp()[0]
    assert (var_y <= logvar_x.exp().mean(0)).all()
    assert (var_y < 0.5 * (logvar_x.exp().mean(0) + mu_x.var(0))).all()


def test_reverse_label_match_never_moves_the_image_side():
    mu_x = torch.randn(5, 2, requires_grad=True)
    logvar_x = torch.zeros(5, 2, requires_grad=True)
    mu_y, logvar_y = torch.ones(5, 2), torch.zeros(5, 2)
    only_reverse = torch.autograd.grad(label_match(mu_x, logvar_x, mu_y, logvar_y, pull=1.0, reverse=1.0),
                                       (mu_x, logvar_x), allow_unused=True)
    assert all(g is None or g.abs().sum() == 0 for g in only_reverse)
    mixed = torch.autograd.grad(label_match(mu_x, logvar_x, mu_y, logvar_y, pull=1.0, reverse=0.25), mu_x)[0]
    forward = torch.autograd.grad(label_match(mu_x, logvar_x, mu_y, logvar_y, pull=1.0), mu_x)[0]
    assert torch.allclose(mixed, 0.75 * forward)


def test_label_pull_decides_whether_the_image_side_gets_a_gradient():
    mu_x = torch.randn(5, 2, requires_grad=True)
    logvar_x = torch.zeros(5, 2, requires_grad=True)
    mu_y, logvar_y = torch.ones(5, 2), torch.zeros(5, 2)
    label_match(mu_x, logvar_x, mu_y, logvar_y, pull=0.0).backward()
    assert mu_x.grad is None or mu_x.grad.abs().sum() == 0
    full = torch.autograd.grad(label_match(mu_x, logvar_x, mu_y, logvar_y, pull=1.0), mu_x)[0]
    half = torch.autograd.grad(label_match(mu_x, logvar_x, mu_y, logvar_y, pull=0.5), mu_x)[0]
    assert torch.allclose(full, (mu_x - mu_y).detach() / 5)  # d/dmu of 0.5 (mu - mu_y)^2, batch mean
    assert torch.allclose(half, 0.5 * full)
    # the value does not depend on pull
    a = label_match(mu_x, logvar_x, mu_y, logvar_y, pull=0.0)
    b = label_match(mu_x, logvar_x, mu_y, logvar_y, pull=1.0)
    assert a.item() == pytest.approx(b.item())


def test_jitter_moves_pixels_but_keeps_shape_and_range():
    x = torch.zeros(8, 1, 28, 28)
    x[:, :, 10:18, 12:16] = 1.0
    assert jitter(x, 0.0) is x
    y = jitter(x, 2.0, generator=torch.Generator().manual_seed(0))
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    assert not torch.allclose(y, x)
    # a block well inside the frame keeps all its ink
    assert torch.equal(y.sum((1, 2, 3)), x.sum((1, 2, 3)))


def test_jitter_shifts_by_whole_pixels_without_blurring():
    """Every image is its original moved by an integer offset within +-k: no pixel value that
    was not there before (no interpolation), and every offset in the range occurs."""
    x = torch.zeros(400, 1, 9, 9)
    x[:, 0, 4, 4] = 0.7  # one dot in the middle
    x[:, 0, 4, 5] = 0.3  # and a fainter one to its right, to tell x from y moves apart
    y = jitter(x, 2.0, generator=torch.Generator().manual_seed(3))
    assert torch.equal(y.unique(), x.unique())
    strong, faint = x[0, 0, 4, 4], x[0, 0, 4, 5]
    offsets = set()
    for image in y[:, 0]:
        (r, c), = (image == strong).nonzero().tolist()
        assert image[r, c + 1] == faint  # moved together
        offsets.add((r - 4, c - 4))
    assert offsets == {(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)}
    # content is never pushed out of the frame: a column on the left edge only moves right
    edge = torch.zeros(200, 1, 5, 5)
    edge[:, 0, :, 0] = 1.0
    moved = jitter(edge, 1.0, generator=torch.Generator().manual_seed(4))
    assert torch.equal(moved.sum((1, 2, 3)), edge.sum((1, 2, 3)))
    assert {int(image[0].argmax()) for image in moved[:, 0]} == {0, 1}


def test_jitter_keeps_each_images_content_and_background_colour():
    """Shifts stop at the content's edge, per image and per side, and what moves in is the
    image's own background colour (a coloured photo-like background gets no black bars)."""
    x = torch.full((300, 3, 12, 12), 0.0)
    x[:, 0] = 0.5  # a red background
    x[:100, :, 5:7, 5:7] = 1.0  # a dot in the middle: free to move 2 px every way
    x[100:200, :, 0:4, 3:9] = 1.0  # touches the top: never moves up
    x[200:, :, 2:10, 0:12] = 1.0  # spans the width: never moves sideways
    y = jitter(x, 2.0, generator=torch.Generator().manual_seed(5))
    assert torch.equal((y == 1).sum((1, 2, 3)), (x == 1).sum((1, 2, 3)))  # no content lost
    background = y[(y != 1).all(1, keepdim=True).expand_as(y)].view(-1)
    assert set(background.unique().tolist()) == {0.0, 0.5}  # the red background, nothing else
    first_row = lambda im: int((im[0] == 1).any(1).float().argmax())  # noqa: E731
    first_col = lambda im: int((im[0] == 1).any(0).float().argmax())  # noqa: E731
    assert {first_row(im) for im in y[:100]} == {3, 4, 5, 6, 7}
    assert {first_row(im) for im in y[100:200]} == {0, 1, 2}
    assert {first_col(im) for im in y[200:]} == {0}


def test_reference_keeps_its_five_terms_and_no_jitter():
    ref = preset("reference")
    assert ref.w_label_match == 0 and ref.augment_px == 0 and ref.label_pull == 0 and ref.w_prior_mmd == 0
    torch.manual_seed(0)
    model = CLIPVAE.from_config(ref, (1, 28, 28), 10)
    x, y = torch.rand(16, 1, 28, 28), torch.arange(16) % 10
    torch.manual_seed(1)
    terms = model.loss_terms(x, y, ref)
    # the reference computes neither label_match nor prior_mmd, and decodes with one output layer
    assert tuple(terms) + ("label_match", "prior_mmd") == LOSS_TERMS
    assert not model.decoder_heads and hasattr(model.image_decoder, "out")
    total = sum(terms.values())  # every reference weight is 1
    assert weighted_total(terms, ref).item() == pytest.approx(total.item(), rel=1e-6)


def test_studio_adds_the_label_match_term_to_the_total():
    studio = preset("studio")
    assert studio.w_label_match > 0
    model = CLIPVAE.from_config(studio, (1, 28, 28), 10)
    terms = model.loss_terms(torch.rand(16, 1, 28, 28), torch.arange(16) % 10, studio)
    assert set(terms) == set(LOSS_TERMS) - {"prior_mmd"}  # the MMD term is computed only when weighted
    without = dict(terms)
    del without["label_match"]
    gap = weighted_total(terms, studio) - weighted_total(without, studio)
    # float32 sums of ~100-nat totals: compare to within 1e-5 of the total, not of the gap
    total = weighted_total(terms, studio).item()
    assert gap.item() == pytest.approx(studio.w_label_match * terms["label_match"].item(), abs=1e-5 * total)


def test_shifts_train_a_small_set_and_are_off_for_a_large_one(monkeypatch):
    """augment_max_per_label: the loss sees the preset's shift for a few images per label, none
    for many; the person's config itself is left as it was."""
    from clipvae_studio.core import Trainer
    from clipvae_studio.core.data import ImageDataset

    def dataset(per_label):
        n = 3 * per_label
        images = torch.randint(0, 255, (n, 1, 12, 12), dtype=torch.uint8)
        labels = torch.arange(n) % 3
        return ImageDataset("t", images, labels, images[:6], labels[:6], ["a", "b", "c"])

    config = preset("studio").with_values(width=16, depth=1, z_dim=4, batch_size=8, augment_max_per_label=10,
                                          arch="mlp", decoder_heads=False, device="cpu")
    seen = []
    original = CLIPVAE.loss_terms
    monkeypatch.setattr(CLIPVAE, "loss_terms", lambda self, x, y, cfg, **kw: seen.append(cfg.augment_px)
                        or original(self, x, y, cfg, **kw))
    for per_label, expected in ((10, 2.0), (11, 0.0)):
        trainer = Trainer(config, dataset(per_label), eval_size=None)
        trainer.step()
        assert trainer.shift_px == expected and seen[-1] == expected
        assert trainer.config.augment_px == 2.0


def test_label_match_stays_finite_when_a_posterior_collapses():
    # A runaway log-variance (-100: exp(100) overflows float32) is read at the floor, in both directions.
    from clipvae_studio.core.losses import MATCH_LOGVAR_FLOOR
    mu_x, mu_y = torch.zeros(4, 3), torch.full((4, 3), 2.0)
    collapsed, floored = torch.full((4, 3), -100.0), torch.full((4, 3), MATCH_LOGVAR_FLOOR)
    for args in ((mu_x, collapsed, mu_y, torch.zeros(4, 3)), (mu_x, torch.zeros(4, 3), mu_y, collapsed)):
        value = label_match(*args, pull=0.6, reverse=0.9)
        assert torch.isfinite(value)
        at_floor = [floored if a is collapsed else a for a in args]
        assert value.item() == pytest.approx(label_match(*at_floor, pull=0.6, reverse=0.9).item())
