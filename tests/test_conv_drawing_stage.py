"""At ~64 px and more the conv decoder draws its pixels with 2 x 2 stride-2 transposed convolutions
(core/architecture.py patch_drawing, core/networks.py _draw): one output patch per feature pixel,
computed as a product per row; smaller images keep the 4 x 4 stage. A conv checkpoint saved with
the earlier decoder end is refused with a message naming the layer."""
import pytest
import torch
from torch import nn

from clipvae_studio.core import CheckpointError, CLIPVAE, load_checkpoint, preset, save_checkpoint


def test_drawing_stage_is_a_patch_per_feature_pixel_on_large_images_only():
    model = CLIPVAE((3, 60, 60), 3, arch="conv", z_dim=4, width=16, decoder_heads=True)
    decoder = model.image_decoder
    assert all(tuple(h.kernel_size) == tuple(h.stride) == (2, 2) for h in decoder.heads)
    assert decoder.heads[0].in_channels == 2 * decoder.channels[0]  # a wider map under the patches
    assert decoder.trunk(torch.randn(2, 4)).shape[-1] * 2 == 64  # the patches cover the image, then cropped
    assert decoder(torch.randn(2, 4), torch.tensor([0, 2])).shape == (2, 3, 60, 60)
    small = CLIPVAE((3, 32, 32), 3, arch="conv", z_dim=4, width=16, decoder_heads=True).image_decoder
    assert tuple(small.heads[0].kernel_size) == (4, 4) and small.heads[0].in_channels == small.channels[0]


def test_checkpoint_with_the_earlier_drawing_stage_is_refused_clearly(tmp_path):
    model = CLIPVAE((3, 60, 60), 3, arch="conv", z_dim=4, width=16, decoder_heads=True)
    decoder = model.image_decoder
    width = decoder.channels[0]  # the earlier design: the last map as wide as the encoder's first
    decoder.up[-3] = nn.ConvTranspose2d(decoder.up[-3].in_channels, width, 4, 2, 1)
    decoder.up[-2] = nn.GroupNorm(min(8, width // 4), width)
    decoder.heads = nn.ModuleList([nn.ConvTranspose2d(width, 3, 4, 2, 1) for _ in range(3)])
    path = save_checkpoint(tmp_path / "old-conv.pt", model, preset("studio").with_values(arch="conv", z_dim=4, width=16))
    with pytest.raises(CheckpointError, match=r"do not fit the architecture \(image_decoder\.up\.\d+\.weight is"):
        load_checkpoint(path)
