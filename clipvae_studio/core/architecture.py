"""Sizing rules: which image network serves an input, how wide its layers are, and how the
learning rate and the reconstruction weight follow the input's size.

Two facts drive them:
- AdamW moves every weight by about the learning rate per step whatever the gradient's size,
  so a layer's output moves by about lr x fan-in x |input|. The mlp's first layer reads every
  pixel: at 64 x 64 RGB (12,288 inputs) one step at the studio's rate moved its output by ~12
  (0.7 at the start), the image posteriors' log-variances fell to -15 in one step and to -113
  by step 8, and exp(-logvar) overflowed. Gradient clipping cannot prevent this: Adam divides
  the clipped gradient by its own running size again. A per-layer rate that falls with the
  fan-in past a reference size (muP's rule for Adam) moves every layer by the same amount at
  every input size.
- Summed over pixels, the reconstruction's nats grow with the pixel count while the KL, CLIP
  and label terms do not, so the balance tuned on 784-pixel digits tilts towards sharp, barely
  regularised posteriors on bigger images. Scaled to nats per 784 pixel values the balance is
  the same at every size; at 1 x 28 x 28 both rules are exactly the identity.
"""
from __future__ import annotations

import math

from torch import nn

REFERENCE_PIXELS = 28 * 28  # the size the studio preset was tuned at
CONV_PARAM_BUDGET = 4_000_000  # image encoder + decoder weights of a conv model, at any size
CONV_MACS_PER_IMAGE = 4_500_000  # multiply-adds of one image through both conv stacks (forward)
CONV_TOP_SIDE = 4  # the encoder halves the image until its side is at most this
CONV_MAX_CHANNELS = 256
MLP_MAX_PIXELS = REFERENCE_PIXELS  # "auto": the mlp up to one 28 x 28 grey image's values


def resolve_arch(arch: str, image_shape) -> str:
    """'auto' -> 'mlp' for small grey images (up to 784 values: the tuned case), else 'conv'.

    The mlp's first and last layers hold pixels x width weights each (per label with routed
    heads): 35 M weights at 64 x 64 RGB, and they learn nothing about neighbouring pixels; the
    conv net's weights stay within CONV_PARAM_BUDGET at every size."""
    if arch != "auto":
        return arch
    return "mlp" if math.prod(image_shape) <= MLP_MAX_PIXELS else "conv"


def conv_stages(side: int) -> int:
    """Stride-2 stages that bring `side` down to CONV_TOP_SIDE or less (at least one)."""
    return max(1, math.ceil(math.log2(max(side, 1) / CONV_TOP_SIDE)))


def conv_channels(image_shape, budget: int = CONV_PARAM_BUDGET, macs: int = CONV_MACS_PER_IMAGE) -> list[int]:
    """Channels after each encoder stage (the decoder mirrors them), doubling per stage.

    The base width is the largest power of two (8..64) whose stacks fit both the compute
    (`macs` per image: a stage costs about 25 x c_in x c_out x its grid, the same at every stage
    when channels double as the grid halves, so the base falls as the image grows) and the
    parameter budget (the top stages' weights and the flattened top map's dense layer)."""
    c, h, w = image_shape
    stages = conv_stages(max(h, w))
    base = 64
    while base > 8:
        channels = [min(CONV_MAX_CHANNELS, base << i) for i in range(stages)]
        if conv_macs(image_shape, channels) <= macs and conv_params(image_shape, channels) <= budget:
            break
        base //= 2
    return [min(CONV_MAX_CHANNELS, base << i) for i in range(stages)]


def _grids(image_shape, stages: int) -> list[tuple[int, int]]:
    _, h, w = image_shape
    grids = []
    for _ in range(stages):
        h, w = math.ceil(h / 2), math.ceil(w / 2)
        grids.append((h, w))
    return grids


DRAW_WIDTH = 2  # with a 2 x 2 drawing stage, the map it reads: this many times channels[0]
PATCH_DRAW_MAX_WIDTH = 8  # the 2 x 2 drawing stage where the encoder's first width is at most this


def patch_drawing(channels) -> bool:
    """Whether the decoder draws the pixels with a 2 x 2 stride-2 transposed convolution (each
    feature pixel its own patch, run as a product per row: networks._patch_transpose) instead of
    the 4 x 4 one. Only where the first width is at its floor (images of ~64 px and more): there
    the 4 x 4 stage over so few channels was the slowest layer of a step (oneDNN runs 8 channels
    at a fraction of its speed). At 32 px (16 channels) the 2 x 2 stage saved little time and
    cost ~2 % reconstruction nats (two seeds; docs/performance.md), so the 4 x 4 stays there."""
    return len(channels) > 1 and channels[0] <= PATCH_DRAW_MAX_WIDTH


def decoder_widths(channels) -> list[int]:
    """Channels of the decoder's maps, from the top map to the one the pixels are drawn from:
    the encoder's mirrored, the last DRAW_WIDTH times wider with a 2 x 2 drawing stage (each
    feature pixel draws its whole patch, so the features under it must say all of it: at 64 x 64
    RGB, reading 8 channels cost 0.7 % reconstruction nats, 16 did not; docs/performance.md)."""
    widths = list(channels[::-1])
    if patch_drawing(channels):
        widths[-1] *= DRAW_WIDTH
    return widths


def conv_macs(image_shape, channels) -> int:
    """Forward multiply-adds of one image through the encoder and decoder stacks: 3 x 3 stride-2
    convolutions down; 4 x 4 stride-2 transposed ones up, the drawing stage 2 x 2 or 4 x 4."""
    c = image_shape[0]
    grids = _grids(image_shape, len(channels))
    ins = [c] + list(channels[:-1])
    encoder = sum(c_in * c_out * gh * gw * 9 for c_in, c_out, (gh, gw) in zip(ins, channels, grids))
    widths = decoder_widths(channels) + [c]  # top map ... drawing map, image
    grids_up = grids[::-1]  # each stage's input grid
    draw_taps = 4 if patch_drawing(channels) else 16
    decoder = sum(c_in * c_out * gh * gw * (draw_taps if i == len(grids_up) - 1 else 16)
                  for i, (c_in, c_out, (gh, gw)) in enumerate(zip(widths, widths[1:], grids_up)))
    return encoder + decoder


def conv_params(image_shape, channels, hidden: int = 256) -> int:
    """Approximate weights of both conv stacks and their dense ends."""
    c = image_shape[0]
    ins = [c] + list(channels[:-1])
    encoder = sum(c_in * c_out * 9 for c_in, c_out in zip(ins, channels))
    widths = decoder_widths(channels) + [c]
    draw_taps = 4 if patch_drawing(channels) else 16
    decoder = sum(c_in * c_out * (draw_taps if i == len(widths) - 2 else 16)
                  for i, (c_in, c_out) in enumerate(zip(widths, widths[1:])))
    gh, gw = _grids(image_shape, len(channels))[-1]
    dense = 2 * channels[-1] * gh * gw * hidden
    return encoder + decoder + dense


def fan_in_lr_scale(module: nn.Module, reference: int) -> float:
    """Learning-rate factor of a layer: 1 up to `reference` inputs, reference / fan-in past it."""
    if isinstance(module, nn.Linear):
        fan_in = module.in_features
    elif isinstance(module, nn.Conv2d):
        fan_in = module.in_channels * math.prod(module.kernel_size) // module.groups
    elif isinstance(module, nn.ConvTranspose2d):
        # each output reads in_channels x (kernel / stride^2) inputs
        fan_in = module.in_channels * math.prod(module.kernel_size) // math.prod(module.stride)
    else:
        return 1.0
    return min(1.0, reference / fan_in) if reference > 0 else 1.0


def param_groups(model: nn.Module, reference: int = 0) -> list:
    """AdamW parameter groups with an "lr_scale" each (see fan_in_lr_scale); one plain group
    when every factor is 1 (reference 0, or every layer within it): then the optimiser and its
    state_dict are exactly what they were before per-layer rates existed."""
    scales: dict[int, float] = {}
    if reference > 0:
        for module in model.modules():
            scale = fan_in_lr_scale(module, reference)
            for p in module.parameters(recurse=False):
                scales[id(p)] = scale
    params = list(model.parameters())
    if all(scales.get(id(p), 1.0) == 1.0 for p in params):
        return params
    groups: dict[float, list] = {}
    for p in params:
        groups.setdefault(scales.get(id(p), 1.0), []).append(p)
    return [{"params": ps, "lr_scale": s} for s, ps in sorted(groups.items(), reverse=True)]


def reconstruction_scale(image_shape, reference_pixels: int) -> float:
    """Factor on the summed reconstruction nats: reference_pixels / values per image (0 = 1)."""
    return reference_pixels / math.prod(image_shape) if reference_pixels > 0 else 1.0
