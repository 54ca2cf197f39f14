"""Any image shape: stable training at other sizes and colours, an architecture sized to the
input, and the studio preset unchanged on 28 x 28 grey digits (core/architecture.py)."""
import math

import pytest
import torch

from clipvae_studio.core import CLIPVAE, Trainer, preset
from clipvae_studio.core.architecture import (CONV_PARAM_BUDGET, param_groups, reconstruction_scale,
                                              resolve_arch)
from clipvae_studio.core.events import ErrorEvent
from clipvae_studio.core.synthetic import coloured_digits


def _image_weights(model) -> int:
    return sum(p.numel() for m in (model.image_encoder, model.image_decoder) for p in m.parameters())


@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("lr_factor", [1.0, 3.0])
def test_studio_preset_trains_finite_on_rgb_images(size, lr_factor):
    # Before the sizing rules the studio preset's loss became non-finite by step 12 at 32 px
    # and by step 2 at 64 px (issue 20).
    data = coloured_digits(size, 3, 10, train_per_label=12, test_per_label=2)
    config = preset("studio")
    config = config.with_values(lr=config.lr * lr_factor, batch_size=32, device="cpu", eval_every_steps=10**9,
                                snapshot_every_s=1e9, snapshot_size=20)
    errors = []
    trainer = Trainer(config, data, eval_size=None, num_threads=1,
                      listener=lambda e: errors.append(e) if isinstance(e, ErrorEvent) else None)
    summary = trainer.run(max_steps=16)
    assert not errors and summary["state"] == "finished" and trainer.step_count == 16
    assert all(math.isfinite(v) for key in ("total", "rec_image", "clip") for v in trainer.history[key])
    assert math.isfinite(summary["metrics"]["recon_nats"])
    assert trainer.model.arch == "conv" and trainer.config.arch == "auto"


def test_studio_preset_at_three_times_its_rate_stays_finite_on_28px_grey_digits():
    # The shape matrix's 28 px grey cases at lr x3: an image log-variance overshot to -30 within
    # ten steps and the label match (which divides by it) overflowed at step 29.
    data = coloured_digits(28, 1, 10, train_per_label=200, test_per_label=2, seed=0)
    config = preset("studio")
    config = config.with_values(lr=config.lr * 3, seed=0, device="cpu", eval_every_steps=10**9,
                                snapshot_every_s=1e9, snapshot_size=20)
    errors = []
    trainer = Trainer(config, data, eval_size=None, num_threads=1,
                      listener=lambda e: errors.append(e) if isinstance(e, ErrorEvent) else None)
    summary = trainer.run(max_steps=40)
    assert not errors and summary["state"] == "finished" and trainer.step_count == 40
    assert all(math.isfinite(v) for v in trainer.history["label_match"])
    assert trainer.history["label_match"][-1] < 1e4  # recovered, not merely finite


def test_conv_model_stays_within_its_weight_budget_at_128_px():
    model = CLIPVAE.from_config(preset("studio"), (3, 128, 128), 10)
    assert model.arch == "conv"
    assert _image_weights(model) < CONV_PARAM_BUDGET  # 4 M (the mlp at this size: ~125 M)
    mlp = CLIPVAE.from_config(preset("studio").with_values(arch="mlp"), (1, 64, 64), 10)
    assert _image_weights(mlp) > 5 * _image_weights(model)  # the mlp at a quarter of the pixels


def test_conv_channels_follow_the_image_not_the_width():
    small = CLIPVAE((3, 32, 32), 10, arch="conv", width=256)
    big = CLIPVAE((3, 128, 128), 10, arch="conv", width=256)
    narrow = CLIPVAE((3, 32, 32), 10, arch="conv", width=64)
    assert small.image_encoder.channels == narrow.image_encoder.channels
    assert len(big.image_encoder.channels) > len(small.image_encoder.channels)  # more stages
    assert big.image_encoder.channels[0] < small.image_encoder.channels[0]  # a thinner base
    x = torch.rand(2, 3, 128, 128)
    assert big.decode_image(big.encode_image(x)[0]).shape == x.shape


@pytest.mark.parametrize("shape, arch", [((1, 28, 28), "mlp"), ((1, 8, 8), "mlp"), ((3, 28, 28), "conv"),
                                         ((3, 32, 32), "conv"), ((1, 64, 64), "conv")])
def test_auto_picks_the_mlp_for_small_grey_images_and_conv_above(shape, arch):
    assert resolve_arch("auto", shape) == arch
    model = CLIPVAE.from_config(preset("studio"), shape, 3)
    assert model.arch == arch and model.architecture()["arch"] == arch  # checkpoints rebuild it
    assert resolve_arch("mlp", shape) == "mlp"


def test_studio_at_28px_grey_is_exactly_the_tuned_setting():
    config = preset("studio")
    model = CLIPVAE.from_config(config, (1, 28, 28), 10)
    assert param_groups(model, config.lr_reference_fan_in) == list(model.parameters())  # one plain group
    assert reconstruction_scale((1, 28, 28), config.rec_reference_pixels) == 1.0
    torch.manual_seed(0)
    x, y = torch.rand(8, 1, 28, 28), torch.arange(8) % 10
    model.eval()
    torch.manual_seed(1)
    scaled = model.loss_terms(x, y, config)["rec_image"]
    torch.manual_seed(1)
    raw = model.loss_terms(x, y, config.with_values(rec_reference_pixels=0))["rec_image"]
    assert torch.allclose(scaled, raw)


def test_wide_layers_learn_at_a_rate_scaled_by_their_fan_in():
    config = preset("studio").with_values(arch="mlp", device="cpu")
    data = coloured_digits(32, 3, 2, train_per_label=4, test_per_label=1)
    trainer = Trainer(config, data, eval_size=None, num_threads=1)
    trainer.step()
    stem = trainer.model.image_encoder.stem.weight
    group = next(g for g in trainer.optimizer.param_groups if any(p is stem for p in g["params"]))
    assert group["lr_scale"] == pytest.approx(784 / (3 * 32 * 32))
    assert group["lr"] == pytest.approx(trainer._lr_at(0) * 784 / 3072)
    others = [g for g in trainer.optimizer.param_groups if g is not group]
    assert max(g["lr_scale"] for g in others) == 1.0  # the narrow layers keep the full rate
    # the summed reconstruction counts as 784 pixel values' worth
    assert reconstruction_scale((3, 32, 32), 784) == pytest.approx(784 / 3072)


def test_coloured_digits_carry_colour_and_up_to_hundreds_of_labels():
    rgb = coloured_digits(16, 3, 100, train_per_label=2, test_per_label=1)
    assert rgb.image_shape == (3, 16, 16) and rgb.num_labels == 100
    assert set(rgb.train_labels.tolist()) == set(range(100))
    spread = rgb.train_images.float().std(1).mean()  # channels differ: real colour, not grey
    assert spread > 10
    grey = coloured_digits(8, 1, 2, train_per_label=3, test_per_label=1)
    assert grey.image_shape == (1, 8, 8) and set(grey.train_labels.tolist()) == {0, 1}
    with pytest.raises(ValueError):
        coloured_digits(8, 2, 10)
