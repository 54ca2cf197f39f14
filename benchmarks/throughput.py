"""Headless training throughput: the studio Trainer against the reference loop, same model.

The `reference` preset's model and loss (shared blocks, uniform noise, arange CLIP, mean BCE)
train in both. The studio trainer is measured at the reference batch 64 (same everything) and
at a larger batch (a studio choice the reference does not make), wall clock, with its default
evaluation and latent-snapshot cadence included. The baseline is the faster of the reference
loop with torch's default thread count and with one thread (on a busy 2-core machine the
default can be many times slower, which would flatter the ratio). Measurements alternate in
rounds so that a change in machine load hits every contender alike; medians are reported.

    python benchmarks/throughput.py [--seconds 2] [--rounds 3] [--large-batch 1024]
"""
from __future__ import annotations

import argparse
import time

import _common  # noqa: F401
import torch
from _common import emit, machine, median
from reference_loop import reference_steps

from clipvae_studio.core import Trainer, load_dataset, preset

TARGET_RATIO = 5.0


def measure_reference(steps, seconds: float) -> float:
    t0, n0, _ = next(steps)
    for t, n, _ in steps:
        if t - t0 >= seconds:
            return (n - n0) / (t - t0)


def measure_trainer(trainer: Trainer, seconds: float) -> float:
    start_steps, start = trainer.step_count, time.perf_counter()
    trainer.run(time_budget=seconds)
    return (trainer.step_count - start_steps) * trainer.config.batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--large-batch", type=int, default=1024)
    args = parser.parse_args()

    default_threads = torch.get_num_threads()
    data = load_dataset("mnist5k")
    reference = preset("reference").with_values(epochs=10**6)
    contenders = {
        "reference_loop_default_threads": ("reference", default_threads, reference_steps(data)),
        "reference_loop_1_thread": ("reference", 1, reference_steps(data)),
        "studio_trainer_batch_64": ("trainer", None, Trainer(reference, data)),
        f"studio_trainer_batch_{args.large_batch}": (
            "trainer", None, Trainer(reference.with_values(batch_size=args.large_batch), data)),
        "studio_trainer_studio_preset": ("trainer", None, Trainer(preset("studio").with_values(epochs=10**6), data)),
    }
    for kind, threads, thing in contenders.values():  # warm-up: first steps allocate and dispatch
        if kind == "reference":
            torch.set_num_threads(threads)
            for _ in range(5):
                next(thing)
        else:
            thing.run(max_steps=3)
    rates = {name: [] for name in contenders}
    for _ in range(args.rounds):
        for name, (kind, threads, thing) in contenders.items():
            if kind == "reference":
                torch.set_num_threads(threads)
                rates[name].append(measure_reference(thing, args.seconds))
            else:
                rates[name].append(measure_trainer(thing, args.seconds))
    result = {name: round(median(values), 1) for name, values in rates.items()}
    baseline = max(result["reference_loop_default_threads"], result["reference_loop_1_thread"])
    b64 = result["studio_trainer_batch_64"]
    big = result[f"studio_trainer_batch_{args.large_batch}"]
    emit({
        "benchmark": "throughput",
        "unit": "samples/s (wall clock, median of rounds)",
        "samples_per_second": result,
        "all_rounds": {k: [round(v, 1) for v in vals] for k, vals in rates.items()},
        "baseline": round(baseline, 1),
        "ratio_batch_64": round(b64 / baseline, 2),
        f"ratio_batch_{args.large_batch}": round(big / baseline, 2),
        "ratio_studio_preset": round(result["studio_trainer_studio_preset"] / baseline, 2),
        "target_ratio": TARGET_RATIO,
        "large_batch": args.large_batch,
        "met_batch_64": b64 / baseline >= TARGET_RATIO,
        "met_large_batch": big / baseline >= TARGET_RATIO,
        "trainer_threads": contenders["studio_trainer_batch_64"][2].num_threads,
        "default_threads": default_threads,
        "machine": machine(),
    })


if __name__ == "__main__":
    main()
