"""The trainer finds each training image's background and content margins once (for the image
shifts, core/augment.py) instead of every step: the shifted batch and the loss stay the same."""
import torch

from clipvae_studio.core import Trainer, augment, preset
from clipvae_studio.core.synthetic import coloured_digits


def test_kept_margins_give_the_same_shifts_and_loss_as_finding_them_each_step():
    data = coloured_digits(16, 3, 3, seed=0, train_per_label=12, test_per_label=2)
    config = preset("studio").with_values(arch="conv", z_dim=4, width=16, batch_size=24, augment_px=2.0)
    trainer = Trainer(config, data, eval_size=None, num_threads=1)
    assert trainer.shift_px == 2.0
    x, y = trainer._next_batch()
    fill, margins = trainer._shift_margins()
    rows = trainer._batch_idx
    assert torch.equal(margins.index_select(0, rows), augment.content_margins(x))
    assert torch.equal(fill.index_select(0, rows), augment.background(x))
    assert (margins > 0).any()  # the digits have a border to shift within
    torch.manual_seed(5)
    kept = trainer._loss_terms(x, y)
    torch.manual_seed(5)
    fresh = trainer.model.loss_terms(x, y, trainer.loss_config)
    for key in fresh:
        assert torch.equal(kept[key], fresh[key]), key
