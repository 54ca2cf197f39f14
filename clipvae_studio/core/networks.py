"""Building blocks of the CLIP-VAE: image and label encoders/decoders.

Module and attribute names follow the published reference (phykn/clip-vae) so that
its plain state_dict loads onto the `mlp` architecture without renaming.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .architecture import conv_channels, decoder_widths, patch_drawing


class ResidualBlock(nn.Sequential):
    """x + GELU(Linear(LayerNorm(x))); keys .0 (LayerNorm) and .1 (Linear) as in the reference."""

    def __init__(self, width: int):
        super().__init__(nn.LayerNorm(width), nn.Linear(width, width), nn.GELU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + super().forward(x)


def residual_stack(width: int, depth: int, shared: bool) -> nn.ModuleList:
    if shared:
        # Reference defect, kept for the reference preset: one module reused depth times.
        block = ResidualBlock(width)
        return nn.ModuleList([block] * depth)
    return nn.ModuleList([ResidualBlock(width) for _ in range(depth)])


class MLPImageEncoder(nn.Module):
    def __init__(self, image_shape, z_dim: int, width: int, depth: int, shared_blocks: bool = False):
        super().__init__()
        self.stem = nn.Linear(math.prod(image_shape), width)
        self.blocks = residual_stack(width, depth, shared_blocks)
        self.to_mu = nn.Linear(width, z_dim)
        self.to_log_var = nn.Linear(width, z_dim)

    def forward(self, x: torch.Tensor):
        h = self.stem(x.flatten(1))
        for block in self.blocks:
            h = block(h)
        return self.to_mu(h), self.to_log_var(h)


class MLPImageDecoder(nn.Module):
    """z -> pixel logits. With `heads` > 0 the last layer is one Linear per label ("routed
    heads"): every image comes out of the head of one label, chosen per row by `route`."""

    def __init__(self, image_shape, z_dim: int, width: int, depth: int, shared_blocks: bool = False,
                 heads: int = 0):
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.stem = nn.Linear(z_dim, width)
        self.blocks = residual_stack(width, depth, shared_blocks)
        pixels = math.prod(image_shape)
        if heads:
            self.heads = nn.ModuleList([nn.Linear(width, pixels) for _ in range(heads)])
        else:
            self.out = nn.Linear(width, pixels)  # the reference's name

    @property
    def routed(self) -> bool:
        return hasattr(self, "heads")

    def trunk(self, z: torch.Tensor) -> torch.Tensor:
        h = self.stem(z)
        for block in self.blocks:
            h = block(h)
        return h

    def forward(self, z: torch.Tensor, route: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of the pixel Bernoulli means, N x C x H x W (route: N label indices, needed
        with heads)."""
        h = self.trunk(z)
        if not self.routed:
            return self.out(h).view(-1, *self.image_shape)
        return routed_linear(self.heads, h, route).view(-1, *self.image_shape)

    def every_head(self, z: torch.Tensor) -> torch.Tensor:
        """Logits of every head's picture at each point, N x heads x C x H x W (trunk once)."""
        return every_head_output(self.heads, self.trunk(z)).view(len(z), len(self.heads), *self.image_shape)


def routed_linear(heads: nn.ModuleList, h: torch.Tensor, route: torch.Tensor) -> torch.Tensor:
    """Row i of h through heads[route[i]]: Linear heads (the mlp's) or transposed-convolution
    heads (the conv decoder's)."""
    if route is None:
        raise ValueError("a decoder with routed heads needs a label per row")
    if isinstance(heads[0], nn.ConvTranspose2d) and _is_patch_transpose(heads[0]):
        return _routed_conv_transpose(heads, h, route)  # as fast for one head as for many
    first = int(route[0]) if len(route) else 0
    if bool((route == first).all()):  # one head (a single point, or one label's samples)
        return heads[first](h)
    if isinstance(heads[0], nn.ConvTranspose2d):
        return _routed_conv_transpose(heads, h, route)
    return _routed_by_sorting(heads, h, route)


def _routed_by_sorting(heads: nn.ModuleList, h: torch.Tensor, route: torch.Tensor) -> torch.Tensor:
    """Rows sorted by head, one matrix product per head present, unsorted. Linear heads hold
    pixels x width weights each: a per-row copy of them (a batched product) would be ~200 MB at
    batch 256 and 28 x 28, and stacking them costs more than the loop; per head the work is
    exactly the rows' own."""
    order = torch.argsort(route)
    counts = torch.bincount(route, minlength=len(heads)).tolist()
    parts = h.index_select(0, order).split(counts)
    out = torch.cat([heads[k](part) for k, part in enumerate(parts) if counts[k]])
    return out.index_select(0, torch.argsort(order))  # argsort of a permutation is its inverse


def _routed_conv_transpose(heads: nn.ModuleList, h: torch.Tensor, route: torch.Tensor) -> torch.Tensor:
    """Every row through its own head in one operation whatever the label count. One call per
    head made a step at 100 labels several times slower than at 10 (a hundred small convolutions
    forward and backward, each a parallel region)."""
    head = heads[0]
    if head.groups != 1 or head.bias is None:
        raise ValueError("routed transposed-convolution heads need groups=1 and a bias")
    bias = torch.stack([m.bias for m in heads]).index_select(0, route)  # N x c_out
    if _is_patch_transpose(head):
        return _patch_transpose(h, torch.stack([m.weight for m in heads]).index_select(0, route), bias)
    # other kernels: a grouped transposed convolution, a group per row with its head's kernel
    n, c_in = h.shape[:2]
    weight = torch.stack([m.weight for m in heads]).index_select(0, route)  # N x c_in x c_out x k x k
    out = F.conv_transpose2d(h.reshape(1, n * c_in, *h.shape[2:]), weight.flatten(0, 1), bias.flatten(),
                             head.stride, head.padding, head.output_padding, n, head.dilation)
    return out.view(n, -1, *out.shape[2:])


def _is_patch_transpose(module: nn.ConvTranspose2d) -> bool:
    """Kernel = stride, no padding: each input pixel draws its own output patch, no overlap."""
    return (tuple(module.kernel_size) == tuple(module.stride) and tuple(module.padding) == (0, 0)
            and tuple(module.output_padding) == (0, 0) and tuple(module.dilation) == (1, 1) and module.groups == 1)


def _patch_transpose(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """A transposed convolution whose kernel equals its stride, as a matrix product per row and a
    pixel shuffle: h N x c_in x H x W, weight N x c_in x c_out x kh x kw (each row's own kernel),
    bias N x c_out. One batched product whatever the label count; at 64 x 64 RGB ~15x faster
    forward and backward than the grouped transposed convolution (a group per row), whose
    8-in, 3-out groups oneDNN runs far below its speed on wide layers (docs/performance.md)."""
    n, c_in, height, width = h.shape
    _, _, c_out, kh, kw = weight.shape
    out = torch.bmm(weight.flatten(2).transpose(1, 2), h.reshape(n, c_in, height * width))  # N x (c_out kh kw) x HW
    out = out.view(n, c_out, kh, kw, height, width).permute(0, 1, 4, 2, 5, 3).reshape(n, c_out, height * kh, width * kw)
    return out + bias[:, :, None, None]


def every_head_output(heads: nn.ModuleList, h: torch.Tensor) -> torch.Tensor:
    """Each row through every head: N x heads x (one head's output shape)."""
    if isinstance(heads[0], nn.ConvTranspose2d):
        head = heads[0]
        weight = torch.cat([m.weight for m in heads], 1)  # c_in x (heads c_out) x k x k: one call
        bias = torch.cat([m.bias for m in heads])
        out = F.conv_transpose2d(h, weight, bias, head.stride, head.padding, head.output_padding, 1, head.dilation)
        return out.view(len(h), len(heads), -1, *out.shape[2:])
    return torch.stack([head(h) for head in heads], 1)


class ConvImageEncoder(nn.Module):
    """Stride-2 3x3 convolutions halve the image until its side is 4 or less, channels doubling
    per stage from a base sized to the image (architecture.conv_channels), then one dense layer
    of `width` units on the flattened top map."""

    def __init__(self, image_shape, z_dim: int, width: int, depth: int = 0, shared_blocks: bool = False):
        super().__init__()
        c, h, w = image_shape
        self.channels = conv_channels(image_shape)
        layers, c_in = [], c
        for c_out in self.channels:
            # normalised per stage: a plain stack's signal fades with depth (4-5 stages at 64-128 px)
            layers += [nn.Conv2d(c_in, c_out, 3, 2, 1), nn.GroupNorm(min(8, c_out // 4), c_out), nn.GELU()]
            c_in = c_out
        self.features = nn.Sequential(*layers, nn.Flatten())
        with torch.no_grad():
            flat = self.features(torch.zeros(1, c, h, w)).shape[1]
        # LayerNorm: the dense layer sees inputs of one scale whatever the image's size and colours
        self.hidden = nn.Sequential(nn.LayerNorm(flat), nn.Linear(flat, width), nn.GELU())
        self.to_mu = nn.Linear(width, z_dim)
        self.to_log_var = nn.Linear(width, z_dim)

    def forward(self, x: torch.Tensor):
        h = self.hidden(self.features(x))
        return self.to_mu(h), self.to_log_var(h)


def _double(c_in: int, c_out: int) -> nn.ConvTranspose2d:
    """Twice the side: a 4 x 4 transposed convolution with stride 2 (each output pixel reads
    2 x 2 inputs per channel). Measured against a 3 x 3 convolution to 4 x c_out channels and a
    pixel shuffle: 16 instead of 36 multiply-adds per input pixel and channel pair, and a
    quarter less time for the whole image network at 64 x 64 RGB (docs/performance.md)."""
    return nn.ConvTranspose2d(c_in, c_out, 4, 2, 1)


def _draw(c_in: int, c_out: int, patch: bool) -> nn.ConvTranspose2d:
    """The stage that draws the pixels: 4 x 4 stride-2 like the stages before it, or with `patch`
    (architecture.patch_drawing: large images) a 2 x 2 transposed convolution with stride 2, i.e. each
    feature pixel draws its own 2 x 2 block of output pixels (a 1 x 1 convolution and a pixel
    shuffle); the 4 x 4 stages before it blend neighbouring features, and the map it reads is
    wider than the encoder's first (architecture.decoder_widths). At 64 x 64 RGB its 8-in,
    3-out 4 x 4 predecessor, routed per label, was a quarter of a training step (oneDNN runs so
    few channels at a fraction of its speed); as a matrix product per row (_patch_transpose),
    reading 16 channels, it is ~20 ms of ~250 on one core (docs/performance.md)."""
    return nn.ConvTranspose2d(c_in, c_out, 2, 2) if patch else _double(c_in, c_out)


class ConvImageDecoder(nn.Module):
    """The encoder mirrored: z -> dense -> the top map -> stages that double the side (4 x 4
    transposed convolutions with stride 2; the last, drawing the pixels, 2 x 2: see _draw),
    cropped to the image.
    With `heads` > 0 the last stage (the one that draws the pixels) is one per label, routed
    per row as the mlp's heads are."""

    def __init__(self, image_shape, z_dim: int, width: int, depth: int = 0, shared_blocks: bool = False,
                 heads: int = 0):
        super().__init__()
        self.image_shape = tuple(image_shape)
        c, h, w = image_shape
        self.channels = conv_channels(image_shape)
        stages = len(self.channels)
        self.grid = (math.ceil(h / 2 ** stages), math.ceil(w / 2 ** stages))
        top = self.channels[-1]
        self.stem = nn.Sequential(
            nn.Linear(z_dim, width), nn.GELU(),
            nn.Linear(width, top * self.grid[0] * self.grid[1]), nn.GELU(),
        )
        layers = []
        widths = decoder_widths(self.channels)  # the last, the map the pixels are drawn from, is wider
        for c_in, c_out in zip(widths, widths[1:]):
            layers += [_double(c_in, c_out), nn.GroupNorm(min(8, c_out // 4), c_out), nn.GELU()]
        self.up = nn.Sequential(*layers)

        patch = patch_drawing(self.channels)

        def draw():
            return _draw(widths[-1], c, patch)
        if heads:
            self.heads = nn.ModuleList([draw() for _ in range(heads)])
        else:
            self.out = draw()

    @property
    def routed(self) -> bool:
        return hasattr(self, "heads")

    def trunk(self, z: torch.Tensor) -> torch.Tensor:
        return self.up(self.stem(z).view(-1, self.channels[-1], *self.grid))

    def _crop(self, out: torch.Tensor) -> torch.Tensor:
        _, h, w = self.image_shape
        return out[..., :h, :w]

    def forward(self, z: torch.Tensor, route: torch.Tensor | None = None) -> torch.Tensor:
        h = self.trunk(z)
        if not self.routed:
            if not _is_patch_transpose(self.out):
                return self._crop(self.out(h))
            n = len(h)  # oneDNN's 2 x 2 transposed convolution is slower than the product
            return self._crop(_patch_transpose(h, self.out.weight.expand(n, -1, -1, -1, -1), self.out.bias.expand(n, -1)))
        return self._crop(routed_linear(self.heads, h, route))

    def every_head(self, z: torch.Tensor) -> torch.Tensor:
        """Logits of every head's picture at each point, N x heads x C x H x W (trunk once)."""
        return self._crop(every_head_output(self.heads, self.trunk(z)))


class LabelEncoder(nn.Module):
    def __init__(self, num_labels: int, z_dim: int, width: int):
        super().__init__()
        self.net = nn.Sequential(nn.Embedding(num_labels, width), nn.LayerNorm(width), nn.Linear(width, width), nn.GELU())
        self.to_mu = nn.Linear(width, z_dim)
        self.to_log_var = nn.Linear(width, z_dim)

    def forward(self, y: torch.Tensor):
        h = self.net(y)
        return self.to_mu(h), self.to_log_var(h)


class LabelDecoder(nn.Module):
    def __init__(self, num_labels: int, z_dim: int, width: int):
        super().__init__()
        self.stem = nn.Linear(z_dim, width)
        self.net = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), nn.GELU())
        self.out = nn.Linear(width, num_labels)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.out(self.net(self.stem(z)))


IMAGE_NETWORKS = {
    "mlp": (MLPImageEncoder, MLPImageDecoder),
    "conv": (ConvImageEncoder, ConvImageDecoder),
}
