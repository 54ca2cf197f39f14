"""Routed decoder heads of the conv decoder run as one grouped operation, with the same
results (values and gradients) as sending each row through its own head (core/networks.py)."""
import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

from clipvae_studio.core import CLIPVAE
from clipvae_studio.core.networks import every_head_output, routed_linear


def _heads(count: int, kind: str) -> nn.ModuleList:
    torch.manual_seed(count)
    if kind == "conv":
        return nn.ModuleList([nn.ConvTranspose2d(4, 3, 4, 2, 1) for _ in range(count)])
    if kind == "patch":  # the conv decoder's drawing stage: kernel = stride (a product per row)
        return nn.ModuleList([nn.ConvTranspose2d(4, 3, 2, 2) for _ in range(count)])
    return nn.ModuleList([nn.Linear(6, 5) for _ in range(count)])


def _one_row_at_a_time(heads, h, route):
    return torch.cat([heads[int(k)](h[i:i + 1]) for i, k in enumerate(route)])


def _grads(heads, h, out, seed):
    torch.manual_seed(seed)
    weights = torch.randn_like(out)  # a loss that tells the rows apart
    params = [h, *heads.parameters()]
    grads = torch.autograd.grad((out * weights).sum(), params, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]  # unused head: zero


def test_batched_routing_equals_each_row_through_its_own_head():
    for kind, shape in (("conv", (4, 5, 7)), ("patch", (4, 5, 7)), ("linear", (6,))):
        heads = _heads(100, kind)
        h = torch.randn(37, *shape, requires_grad=True)
        route = torch.randint(0, 100, (37,), generator=torch.Generator().manual_seed(1))
        got, expected = routed_linear(heads, h, route), _one_row_at_a_time(heads, h, route)
        assert got.shape == expected.shape
        assert torch.allclose(got, expected, atol=1e-5)
        for g, e in zip(_grads(heads, h, got, 2), _grads(heads, h, expected, 2)):
            assert torch.allclose(g, e, atol=1e-5)


def test_every_head_output_is_each_head_on_every_row():
    for kind, shape in (("conv", (4, 3, 3)), ("patch", (4, 3, 3)), ("linear", (6,))):
        heads = _heads(7, kind)
        h = torch.randn(5, *shape)
        expected = torch.stack([head(h) for head in heads], 1)
        assert torch.allclose(every_head_output(heads, h), expected, atol=1e-5)


def _convolutions_in_a_step(num_labels: int) -> int:
    model = CLIPVAE((3, 16, 16), num_labels, arch="conv", z_dim=4, width=16, decoder_heads=True)
    z, route = torch.randn(64, 4), torch.arange(64) % num_labels
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        model.decode_image_logits(z, route).sum().backward()
    return sum(e.count for e in prof.key_averages() if e.key in ("aten::convolution", "aten::bmm"))


def test_a_hundred_labels_take_as_many_convolutions_as_ten():
    # one call per head made a 100-label step several times slower than a 10-label one
    assert _convolutions_in_a_step(100) == _convolutions_in_a_step(10)


def test_one_label_batch_and_unrouted_decoder_draw_as_the_module_does():
    torch.manual_seed(3)
    heads = _heads(5, "patch")
    h = torch.randn(6, 4, 5, 7)
    with torch.no_grad():
        assert torch.allclose(routed_linear(heads, h, torch.full((6,), 2)), heads[2](h), atol=1e-5)
        model = CLIPVAE((3, 60, 60), 4, arch="conv", z_dim=4, width=16).eval()  # one shared 2 x 2 drawing stage
        decoder, z = model.image_decoder, torch.randn(6, 4)
        assert tuple(decoder.out.kernel_size) == (2, 2)
        expected = decoder.out(decoder.trunk(z))[..., :60, :60]
        assert torch.allclose(decoder(z), expected, atol=1e-5)


def test_conv_decoder_routes_each_image_through_its_labels_head():
    torch.manual_seed(0)
    model = CLIPVAE((3, 20, 20), 12, arch="conv", z_dim=4, width=16, decoder_heads=True).eval()
    z, route = torch.randn(9, 4), torch.tensor([0, 11, 3, 3, 7, 0, 5, 11, 2])
    with torch.no_grad():
        got = model.decode_image_logits(z, route)
        alone = torch.cat([model.decode_image_logits(z[i:i + 1], route[i:i + 1]) for i in range(9)])
        every = model.image_decoder.every_head(z)
    assert got.shape == (9, 3, 20, 20)
    assert torch.allclose(got, alone, atol=1e-5)
    assert torch.allclose(every[torch.arange(9), route], got, atol=1e-5)
