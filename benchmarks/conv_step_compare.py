"""Studio training step at 64 x 64 RGB (conv net, routed heads), now against before, in one process.

"before" is the same trainer with what this comparison is about put back as it was: the
decoder's pixel-drawing stage as 4 x 4 stride-2 transposed convolutions from a map as wide as the
encoder's first (routed per row by a grouped transposed convolution) instead of 2 x 2 ones from a
map twice as wide (a matrix product per row), the BCE with one logarithm per pixel, and the
image shifts' background and margins found again for every batch (now kept per training image). Steps alternate between the contenders (one step each, in turn), so
a change in machine load hits both alike; per contender the minimum and the median step are
reported. --clock cpu counts this thread's CPU time (with --threads 1 the figures hold up on a busy
machine); wall is what a person waits. Prints one JSON object.

    python benchmarks/conv_step_compare.py                    # 10 labels, 2 threads, wall clock
    python benchmarks/conv_step_compare.py --threads 1 --clock cpu --labels 10,100
    python benchmarks/conv_step_compare.py --steps 2 --size 16  # a smoke run
"""
from __future__ import annotations

import argparse
import time

import _common  # noqa: F401  (sets sys.path for the package)
import torch
from _common import emit, machine, median
from torch import nn

from clipvae_studio.core import Trainer, fast_losses, preset
from clipvae_studio.core.synthetic import coloured_digits


class _BCEOneLogPerValue(torch.autograd.Function):
    """The BCE as it was: the same value, a logarithm and a product per pixel."""

    @staticmethod
    def forward(ctx, logits, target, divisor: float):
        s = torch.sigmoid(logits)
        log_norm = torch.maximum(s, 1 - s).log_()
        total = (logits.clamp(min=0) - target * logits - log_norm).sum() / divisor
        ctx.save_for_backward(s, target)
        ctx.divisor = divisor
        return total

    @staticmethod
    def backward(ctx, grad):
        s, target = ctx.saved_tensors
        return (s - target) * (grad / ctx.divisor), None, None


def _old_drawing_stage(trainer: Trainer) -> None:
    """Put the previous design back: the decoder's last map as wide as the encoder's first
    (not DRAW_WIDTH times), and the drawing heads 4 x 4 stride-2 transposed convolutions."""
    decoder = trainer.model.image_decoder
    width = decoder.channels[0]
    if len(decoder.up):
        last = decoder.up[-3]  # [transposed conv, GroupNorm, GELU] per stage
        decoder.up[-3] = nn.ConvTranspose2d(last.in_channels, width, 4, 2, 1)
        decoder.up[-2] = nn.GroupNorm(min(8, width // 4), width)
    c_out = trainer.model.image_shape[0]
    if decoder.routed:
        decoder.heads = nn.ModuleList([nn.ConvTranspose2d(width, c_out, 4, 2, 1) for _ in decoder.heads])
    else:
        decoder.out = nn.ConvTranspose2d(width, c_out, 4, 2, 1)
    trainer._optimizer = None  # rebuilt over the new parameters on the next step


def _timed_step(trainer: Trainer, bce, clock) -> float:
    saved = fast_losses._BCEWithLogitsSum
    fast_losses._BCEWithLogitsSum = bce
    try:
        t0 = clock()
        trainer.step()
        return clock() - t0
    finally:
        fast_losses._BCEWithLogitsSum = saved


def compare(size: int, labels: int, steps: int, threads: int, clock_name: str, warmup: int = 3) -> dict:
    clock = time.thread_time if clock_name == "cpu" else time.perf_counter
    data = coloured_digits(size, 3, labels, seed=0, train_per_label=max(4, 2000 // labels), test_per_label=2)
    config = preset("studio").with_values(arch="conv", eval_every_steps=10**9, snapshot_every_s=1e9, snapshot_size=50)
    contenders = {"now": (Trainer(config, data, eval_size=None, num_threads=threads), fast_losses._BCEWithLogitsSum),
                  "before": (Trainer(config, data, eval_size=None, num_threads=threads), _BCEOneLogPerValue)}
    before = contenders["before"][0]
    _old_drawing_stage(before)
    # and the shifts' margins found again in every batch, as they were
    before._loss_terms = lambda x, y: before.model.loss_terms(x, y, before.loss_config)
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for i in range(warmup + steps):
        for name, (trainer, bce) in contenders.items():
            seconds = _timed_step(trainer, bce, clock)
            if i >= warmup:
                times[name].append(seconds)
    batch = config.batch_size
    out = {"size": size, "labels": labels, "threads": threads, "clock": clock_name, "steps": steps}
    for name, values in times.items():
        out[name] = {"min_ms": round(1000 * min(values), 1), "median_ms": round(1000 * median(values), 1),
                     "samples_per_second_at_min": round(batch / min(values), 1),
                     "weights": sum(p.numel() for p in contenders[name][0].model.parameters())}
    out["speed_up_min"] = round(out["before"]["min_ms"] / out["now"]["min_ms"], 3)
    out["speed_up_median"] = round(out["before"]["median_ms"] / out["now"]["median_ms"], 3)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--labels", default="10", help="comma-separated label counts")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per contender (after 3 warm-up steps)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    args = parser.parse_args(argv)
    results = [compare(args.size, int(k), args.steps, args.threads, args.clock) for k in args.labels.split(",")]
    emit({"benchmark": "conv_step_compare", "machine": machine(), "results": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
