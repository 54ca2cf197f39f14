"""Shape matrix: does a preset train at every image size, colour and label count?

For each side (8, 28, 32, 64, 128 px), grey and RGB, 2, 10 and 100 labels, and each learning-rate
factor (the preset's rate, and x3), trains the preset for --steps steps on coloured digits made
from the bundled set (core/synthetic.py, offline) and reports whether the loss ever became
non-finite (none allowed), the architecture "auto" picked, the median step time and the peak
memory. Each case runs in its own process so its peak memory is its own (CUDA: the allocator's
peak; CPU: the process's peak resident set). Prints one JSON object; exits 1 if any case diverged.

    python benchmarks/shape_matrix.py                        # the full matrix, 200 steps a case
    python benchmarks/shape_matrix.py --quick                # 8 cases: 8 and 64 px, 10 and 100 labels, lr x3, 30 steps
    python benchmarks/shape_matrix.py --sizes 8,32 --labels 2 --steps 5 --per-label 8   # a smoke run

Timings taken while other work runs are not figures (the divergence column still is).
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

from _common import emit, machine, median  # noqa: F401  (sets sys.path for the package too)


# The matrix the issue asks for, and a subset that keeps its hardest corners (the biggest image
# a conv net sees quickly, the most labels, the raised learning rate) for a run of a few minutes.
FULL = dict(sizes="8,28,32,64,128", channels="1,3", labels="2,10,100", lr_factors="1,3", steps=200, per_label=0)
QUICK = dict(sizes="8,64", channels="1,3", labels="10,100", lr_factors="3", steps=30, per_label=0)


def run_case(case: dict) -> dict:
    """One training run, in this process."""
    import torch

    from clipvae_studio.core import Trainer, preset
    from clipvae_studio.core.events import ErrorEvent
    from clipvae_studio.core.synthetic import coloured_digits

    data = coloured_digits(case["size"], case["channels"], case["labels"], seed=case["seed"],
                           train_per_label=case["per_label"], test_per_label=2)
    config = preset(case["preset"])
    config = config.with_values(lr=config.lr * case["lr_factor"], device=case["device"], seed=case["seed"],
                                eval_every_steps=10**9, snapshot_every_s=1e9, snapshot_size=50,
                                **({"batch_size": case["batch_size"]} if case["batch_size"] else {}))
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # torch and the data, before the model
    errors: list = []
    step_times: list[float] = []
    trainer = Trainer(config, data, eval_size=None, num_threads=case["threads"],
                      listener=lambda e: errors.append(e.message) if isinstance(e, ErrorEvent) else None)
    cuda = trainer.device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(trainer.device)
    while trainer.step_count < case["steps"] and not errors:
        t0 = time.perf_counter()
        if trainer.step() is None:
            break
        if cuda:
            torch.cuda.synchronize(trainer.device)
        step_times.append(time.perf_counter() - t0)
    steady = step_times[min(3, len(step_times) - 1):] if step_times else []  # past the first steps' set-up
    step_s = median(steady) if steady else None
    history = trainer.history["total"]
    peak = (torch.cuda.max_memory_allocated(trainer.device) if cuda
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return dict(case, arch=trainer.model.arch, batch_size=config.batch_size, steps_done=trainer.step_count,
                diverged=bool(errors) or not all(v == v and abs(v) != float("inf") for v in history),
                error=errors[0] if errors else None,
                weights=sum(p.numel() for p in trainer.model.parameters()),
                step_ms=round(1000 * step_s, 2) if step_s else None,
                samples_per_second=round(config.batch_size / step_s, 1) if step_s else None,
                first_loss=round(history[0], 3) if history else None,
                last_loss=round(history[-1], 3) if history else None,
                peak_memory_mb=round(peak / 2**20, 1), peak_memory_kind="cuda" if cuda else "cpu_rss",
                rss_before_training_mb=round(rss_before / 2**20, 1))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="studio")
    parser.add_argument("--quick", action="store_true",
                        help="a quicker subset: " + ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in QUICK.items())
                        + " (options given explicitly still win)")
    parser.add_argument("--sizes", default=None, help=f"image sides (default {FULL['sizes']})")
    parser.add_argument("--channels", default=None, help=f"1 = grey, 3 = RGB (default {FULL['channels']})")
    parser.add_argument("--labels", default=None, help=f"label counts (default {FULL['labels']})")
    parser.add_argument("--lr-factors", default=None,
                        help=f"multiples of the preset's learning rate (default {FULL['lr_factors']})")
    parser.add_argument("--steps", type=int, default=None, help=f"steps a case (default {FULL['steps']})")
    parser.add_argument("--batch-size", type=int, default=0, help="0 = the preset's")
    parser.add_argument("--per-label", type=int, default=None, help="training images per label (0: ~2,000 in all)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = the trainer's choice)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one case given as JSON
    args = parser.parse_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.one:
        print(json.dumps(run_case(json.loads(args.one))))
        return 0

    def ints(text):
        return [int(v) for v in text.split(",") if v.strip()]

    def floats(text):
        return [float(v) for v in text.split(",") if v.strip()]

    results = []
    t0 = time.perf_counter()
    for size in ints(args.sizes):
        for channels in ints(args.channels):
            for labels in ints(args.labels):
                for lr_factor in floats(args.lr_factors):
                    case = dict(preset=args.preset, size=size, channels=channels, labels=labels,
                                lr_factor=lr_factor, steps=args.steps, batch_size=args.batch_size,
                                per_label=args.per_label or max(4, 2000 // labels), device=args.device,
                                threads=args.threads or None, seed=args.seed)
                    done = subprocess.run([sys.executable, __file__, "--one", json.dumps(case)],
                                          capture_output=True, text=True)
                    if done.returncode != 0:
                        row = dict(case, diverged=None, error=f"crashed: {done.stderr.strip()[-500:]}")
                    else:
                        row = json.loads(done.stdout.strip().splitlines()[-1])
                    print(f"{size:>4} px  {'rgb ' if channels == 3 else 'grey'}  {labels:>3} labels  "
                          f"lr x{lr_factor:g}: {row.get('arch')}, "
                          f"{'DIVERGED' if row['diverged'] else ('crashed' if row['diverged'] is None else 'finite')}, "
                          f"{row.get('step_ms')} ms/step", file=sys.stderr)
                    results.append(row)
    failed = [r for r in results if r["diverged"] is not False]
    emit({"benchmark": "shape_matrix", "preset": args.preset, "steps": args.steps, "quick": args.quick,
          "machine": machine(),
          "wall_seconds": round(time.perf_counter() - t0, 1), "cases": len(results),
          "diverged_or_crashed": len(failed), "results": results})
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
