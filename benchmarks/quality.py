"""Model quality, reference vs studio: same data, same seed, same training-time budget.

Trains both presets for --time-budget seconds each (wall clock, as the app does), then
reports held-out zero-shot accuracy, reconstruction / KL / ELBO in nats, and generation
quality judged by an independent CNN classifier (trained here unless --classifier is given).
Prints one JSON object. --samples-dir writes samples-<preset>.png grids.

Beside the digit sets, RGB sets made offline from the bundled digits (core/synthetic.py): each
digit drawn in a random colour on a darker background of another hue, at 32 or 64 px
("coloured-digits-32", "coloured-digits-64"; "coloured-digits-32-30" has 30 labels: digit x
colour band). Both presets train on the same images for the same budget.

    python benchmarks/quality.py --time-budget 60 --samples-dir resources/screenshots
    python benchmarks/quality.py --dataset coloured-digits-32 --time-budget 60
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from clipvae_studio.core import Trainer, load_dataset, preset  # noqa: E402
from clipvae_studio.core.classifier import load_classifier, save_classifier, train_classifier  # noqa: E402
from clipvae_studio.core.metrics import evaluate  # noqa: E402
from clipvae_studio.core.quality import generation_report, sample_grid  # noqa: E402


RGB_PREFIX = "coloured-digits-"


def load_benchmark_dataset(name: str, data_dir=None, seed: int = 0):
    """A digit set (load_dataset's names) or a generated RGB set: coloured-digits-SIZE[-LABELS]."""
    if name.startswith(RGB_PREFIX):
        from clipvae_studio.core.synthetic import coloured_digits

        try:
            size, *labels = (int(v) for v in name[len(RGB_PREFIX):].split("-"))
        except ValueError:
            raise SystemExit(f"--dataset {name}: expected {RGB_PREFIX}SIZE or {RGB_PREFIX}SIZE-LABELS") from None
        return coloured_digits(size, 3, labels[0] if labels else 10, seed=seed)
    return load_dataset(name, data_dir)


def train_preset(name: str, dataset, seconds: float, seed: int, max_steps: int | None, clock: str) -> tuple:
    config = preset(name).with_values(seed=seed, device="cpu", eval_every_steps=10**9, snapshot_every_s=1e9)
    trainer = Trainer(config, dataset, eval_size=None)
    cpu0 = time.process_time()
    if clock == "wall":  # the app's own budget: seconds spent in training steps
        summary = trainer.run(time_budget=seconds, max_steps=max_steps)
    else:  # CPU seconds of this process: other users' load on a shared machine does not shrink it
        while time.process_time() - cpu0 < seconds and trainer.step_count < trainer.total_steps \
                and (max_steps is None or trainer.step_count < max_steps):
            trainer.step()  # one optimiser step; no evaluation or snapshot in between
        summary = trainer.summary()
        summary["steps"] = trainer.step_count
    summary["cpu_seconds"] = round(time.process_time() - cpu0, 1)
    return trainer.model.eval(), summary


def report(name: str, model, summary: dict, dataset, classifier, seed: int) -> dict:
    metrics = evaluate(model, dataset.test_images, dataset.test_labels)
    generation = generation_report(model, classifier, dataset, seed=seed)
    cond, uncond = generation["conditional"], generation["unconditional"]
    return {
        "preset": name, "arch": model.arch,
        "steps": summary["steps"], "train_seconds": summary["seconds"], "cpu_seconds": summary["cpu_seconds"],
        "samples_per_second": summary["samples_per_second"],
        "zero_shot_accuracy": round(metrics["zero_shot_accuracy"], 4),
        "recon_nats": round(metrics["recon_nats"], 2),
        "kld_nats": round(metrics["kld_nats"], 2),
        "elbo_nats": round(metrics["elbo_nats"], 2),
        "label_decoder_accuracy": round(metrics["label_decoder_accuracy"], 4),
        "conditional_accuracy": round(cond["accuracy"], 4),
        "conditional_min_label_accuracy": round(cond["min_label_accuracy"], 4),
        "conditional_clip_routed_accuracy": (round(cond["clip_routed_accuracy"], 4)
                                             if "clip_routed_accuracy" in cond else None),
        "conditional_diversity": round(cond["diversity"], 4),
        "real_test_diversity": round(cond["real_diversity"], 4),
        "unconditional_confident_share": round(uncond["confident_share"], 4),
        "unconditional_clip_routed_confident_share": (round(uncond["clip_routed_confident_share"], 4)
                                                      if "clip_routed_confident_share" in uncond else None),
        "unconditional_mean_confidence": round(uncond["mean_confidence"], 4),
        "unconditional_effective_labels": round(uncond["effective_labels"], 2),
        "per_label": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}
                      for row in cond["per_label"]],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--time-budget", type=float, default=60.0, help="training seconds per preset (default 60)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall: seconds of training steps, as the app counts them (default); cpu: CPU "
                             "seconds of this process, steadier on a machine shared with other work")
    parser.add_argument("--max-steps", type=int, help="also stop each preset after this many steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--presets", default="reference,studio")
    parser.add_argument("--dataset", default="mnist5k",
                        help="mnist5k (bundled), idx or folder (with --data-dir), or a generated RGB set: "
                             "coloured-digits-32, coloured-digits-64 (coloured-digits-SIZE[-LABELS])")
    parser.add_argument("--data-dir")
    parser.add_argument("--classifier", help="judge to load (clipvae-studio train-classifier); default: train one")
    parser.add_argument("--save-classifier", help="write the classifier trained here to this file")
    parser.add_argument("--classifier-epochs", type=int, default=40)
    parser.add_argument("--samples-dir", help="write samples-<preset>.png grids here")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    dataset = load_benchmark_dataset(args.dataset, args.data_dir, args.seed)
    t0 = time.perf_counter()
    if args.classifier:
        classifier, clf_info = load_classifier(args.classifier)
        clf_info = dict(clf_info, path=args.classifier)
    else:
        classifier, clf_info = train_classifier(dataset, epochs=args.classifier_epochs, seed=args.seed)
        if args.save_classifier:
            save_classifier(args.save_classifier, classifier, clf_info, dataset.name)
    from clipvae_studio.core.classifier import accuracy

    clf_info["test_accuracy"] = round(accuracy(classifier, dataset.test_images, dataset.test_labels), 4)
    clf_info["wall_seconds"] = round(time.perf_counter() - t0, 1)

    results = {}
    for name in [p.strip() for p in args.presets.split(",") if p.strip()]:
        model, summary = train_preset(name, dataset, args.time_budget, args.seed, args.max_steps, args.clock)
        results[name] = report(name, model, summary, dataset, classifier, args.seed)
        if args.samples_dir:
            from torchvision.utils import save_image

            out = Path(args.samples_dir)
            out.mkdir(parents=True, exist_ok=True)
            grid = torch.nn.functional.interpolate(sample_grid(model, seed=args.seed), scale_factor=2)
            save_image(grid, out / f"samples-{name}.png", nrow=10, padding=4, pad_value=0.5)
    print(json.dumps({
        "benchmark": "quality", "dataset": dataset.describe(), "split": "test",
        "time_budget_s": args.time_budget, "clock": args.clock, "seed": args.seed, "torch_threads": torch.get_num_threads(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
        "classifier": clf_info, "results": results,
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
