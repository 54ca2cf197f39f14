"""Time to quality: training seconds until zero-shot accuracy on the bundled test split
(mnist5k, all 1,000 test images) first reaches 92%, for the reference loop and for the
studio preset in the studio trainer.

Both are evaluated every 0.25 s of training time; evaluation time is not counted (the reference
loop's clock stops between steps, the trainer counts only its optimiser steps). Several seeds
run alternately; the median time per contender is compared. The reference loop runs with one
thread and with torch's default; the faster is the baseline. A contender still short of the
target after the baseline's time stops there (it cannot meet the target any more).

    python benchmarks/time_to_quality.py [--seeds 0 1 2] [--target 0.92] [--cap 40]
"""
from __future__ import annotations

import argparse

import _common  # noqa: F401
import torch
from _common import emit, machine, median
from reference_loop import reference_steps

from clipvae_studio.core import Trainer, load_dataset, preset
from clipvae_studio.core.metrics import evaluate

EVAL_EVERY_S = 0.25
TARGET_FRACTION = 1 / 3


def reference_time(data, seed: int, target: float, cap: float, threads: int) -> dict:
    torch.set_num_threads(threads)
    next_eval, accuracy = EVAL_EVERY_S, 0.0
    for seconds, samples, model in reference_steps(data, seed):
        if seconds >= next_eval:
            torch.set_num_threads(1)  # not timed; one thread keeps a busy machine from stretching it
            accuracy = evaluate(model, data.test_images, data.test_labels)["zero_shot_accuracy"]
            torch.set_num_threads(threads)
            if accuracy >= target:
                return {"seconds": round(seconds, 3), "samples": samples, "accuracy": accuracy}
            next_eval = seconds + EVAL_EVERY_S
        if seconds > cap:
            return {"seconds": None, "samples": samples, "accuracy": accuracy}


def studio_time(data, seed: int, target: float, cap: float) -> dict:
    """The studio preset as a user gets it (its planned epochs and cosine schedule), one
    optimiser step at a time; evaluated whenever another EVAL_EVERY_S of training time has passed.
    (Calling run(time_budget=0.25) in a loop would fit the whole cosine decay into every quarter
    second: the learning rate would fall to 0 four times a second.)"""
    config = preset("studio").with_values(seed=seed, eval_every_steps=10**9)
    trainer = Trainer(config, data, eval_size=None)
    trainer.prepare()  # the optimiser, as the reference loop builds its own before its clock starts
    accuracy, next_eval = 0.0, EVAL_EVERY_S
    while trainer.train_seconds <= cap and trainer.step_count < trainer.total_steps:
        trainer.step()
        if trainer.train_seconds >= next_eval:
            accuracy = evaluate(trainer.model, data.test_images, data.test_labels)["zero_shot_accuracy"]
            if accuracy >= target:
                return {"seconds": round(trainer.train_seconds, 3), "samples": trainer.step_count * config.batch_size,
                        "accuracy": accuracy, "threads": trainer.num_threads}
            next_eval = trainer.train_seconds + EVAL_EVERY_S
    return {"seconds": None, "samples": trainer.step_count * config.batch_size, "accuracy": accuracy}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--target", type=float, default=0.92)
    parser.add_argument("--cap", type=float, default=30.0, help="give up after this many training seconds")
    args = parser.parse_args()

    default_threads = torch.get_num_threads()
    data = load_dataset("mnist5k")
    runs = {"reference_loop_1_thread": [], "reference_loop": [], "studio": []}
    for seed in args.seeds:
        # Caps keep a busy machine from turning this into minutes: a contender that has trained
        # longer than the best reference run so far cannot change the verdict.
        single = reference_time(data, seed, args.target, args.cap, 1)
        runs["reference_loop_1_thread"].append(single)
        best = single["seconds"] or args.cap
        if default_threads != 1:
            runs["reference_loop"].append(reference_time(data, seed, args.target, best, default_threads))
        runs["studio"].append(studio_time(data, seed, args.target, best))

    def typical(name):
        times = [r["seconds"] if r["seconds"] is not None else float("inf") for r in runs[name]]
        return median(times) if times else float("inf")

    # The baseline is the faster reference configuration (see throughput.py for why).
    baseline = min(typical("reference_loop"), typical("reference_loop_1_thread"))
    studio = typical("studio")
    finite = baseline not in (0, float("inf")) and studio != float("inf")
    fraction = studio / baseline if finite else None
    emit({
        "benchmark": "time_to_quality",
        "target_accuracy": args.target, "eval_every_s": EVAL_EVERY_S, "seeds": args.seeds,
        "reference_loop_seconds": round(baseline, 3) if baseline != float("inf") else None,
        "studio_seconds": round(studio, 3) if studio != float("inf") else None,
        "fraction_of_reference": round(fraction, 3) if fraction is not None else None,
        "speedup": round(1 / fraction, 2) if fraction else None,
        "target_fraction": round(TARGET_FRACTION, 3),
        "met": fraction is not None and fraction <= TARGET_FRACTION,
        "studio_best_accuracy": max((r["accuracy"] for r in runs["studio"]), default=None),
        "runs": runs, "default_threads": default_threads, "machine": machine(),
    })


if __name__ == "__main__":
    main()
