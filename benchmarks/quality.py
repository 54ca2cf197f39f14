"""Model quality, reference vs studio: same data, same seeds, same training-time budget.

Trains each preset for --time-budget seconds (wall clock, as the app counts them) on each
dataset and seed, then reports held-out zero-shot accuracy, reconstruction / KL / ELBO in nats,
and generation quality judged by an independent CNN (core/classifier.py; trained once per
dataset and kept in --judge-dir). Prints one JSON object: every run, and the median over seeds
of each (dataset, preset); --markdown also prints that table.

Datasets: the load_dataset names (mnist5k is bundled; fashion-mnist reads the Debian package
`dataset-fashion-mnist` offline when installed), idx/folder with --data-dir, and RGB sets made
offline from the bundled digits (core/synthetic.py): "coloured-digits-SIZE[-LABELS]"; and
"drawn-shapes-SIZE", ten classes of drawn shapes (core/synthetic_shapes.py), the family kept
aside for checking the preset, never for tuning it.

    python benchmarks/quality.py --dataset mnist5k,fashion-mnist --time-budget 60,120 --seeds 0,1,2 --markdown
    python benchmarks/quality.py --dataset coloured-digits-32 --time-budget 60
    python benchmarks/quality.py --variant no-shifts:augment_px=0 --presets studio   # ablations

--jobs N runs N trainings side by side, each in its own process with --threads threads (use it
with --clock cpu, which counts each process's own CPU seconds, so the runs do not shorten each
other's budget; wall-clock figures need one job on a quiet machine).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from _common import machine, median  # noqa: E402
from clipvae_studio.core import Trainer, load_dataset, preset  # noqa: E402
from clipvae_studio.core.classifier import accuracy, load_classifier, save_classifier, train_classifier  # noqa: E402
from clipvae_studio.core.config import parse_value  # noqa: E402
from clipvae_studio.core.metrics import evaluate  # noqa: E402
from clipvae_studio.core.quality import generation_report, sample_grid  # noqa: E402

RGB_PREFIX = "coloured-digits-"
SHAPES_PREFIX = "drawn-shapes-"  # the family kept aside: checked, never tuned on (core/synthetic_shapes.py)
# The figures the median table shows, in order (the issue targets' columns first).
TABLE_FIELDS = ("zero_shot_accuracy", "recon_nats", "conditional_accuracy", "conditional_vs_judge",
                "unconditional_confident_share", "kld_nats", "steps")


def load_benchmark_dataset(name: str, data_dir=None, seed: int = 0):
    """A load_dataset name or a generated RGB set: coloured-digits-SIZE[-LABELS]; NAME@K keeps the
    first K training images of each label (the test split whole): the same family, less data."""
    if "@" in name:
        base, _, per_label = name.rpartition("@")
        return subsample(load_benchmark_dataset(base, data_dir, seed), int(per_label), name)
    if name.startswith(RGB_PREFIX):
        from clipvae_studio.core.synthetic import coloured_digits

        try:
            size, *labels = (int(v) for v in name[len(RGB_PREFIX):].split("-"))
        except ValueError:
            raise SystemExit(f"--dataset {name}: expected {RGB_PREFIX}SIZE or {RGB_PREFIX}SIZE-LABELS") from None
        return coloured_digits(size, 3, labels[0] if labels else 10, seed=0)
    if name.startswith(SHAPES_PREFIX):
        from clipvae_studio.core.synthetic_shapes import drawn_shapes

        return drawn_shapes(int(name[len(SHAPES_PREFIX):] or 28))
    return load_dataset(name, data_dir)


def subsample(dataset, per_label: int, name: str):
    from dataclasses import replace

    labels = dataset.train_labels
    keep = torch.cat([torch.nonzero(labels == k).flatten()[:per_label] for k in range(dataset.num_labels)]).sort().values
    return replace(dataset, name=name, train_images=dataset.train_images[keep], train_labels=labels[keep])


def parse_variant(text: str) -> tuple[str, dict]:
    """'NAME:key=value,key=value' -> (NAME, {key: text}); 'NAME' alone is a preset as it is."""
    name, _, changes = text.partition(":")
    pairs = [c.split("=", 1) for c in changes.split(",") if c.strip()]
    if any(len(p) != 2 for p in pairs):
        raise SystemExit(f"--variant {text!r}: expected NAME:key=value[,key=value]")
    return name, {k.strip(): v.strip() for k, v in pairs}


def build_config(preset_name: str, changes: dict, seed: int):
    config = preset(preset_name)
    values = {k: parse_value(config, k, v) for k, v in changes.items()}
    return config.with_values(**values, seed=seed, device="cpu", eval_every_steps=10**9, snapshot_every_s=1e9)


def train(config, dataset, seconds: float, max_steps: int | None, clock: str, threads: int | None = None) -> tuple:
    # num_threads=0 keeps the count set by --threads; None lets the trainer pick, as the app does
    trainer = Trainer(config, dataset, eval_size=None, num_threads=0 if threads else None)
    trainer.prepare()  # the optimiser's one-off import cost is not training
    cpu0 = time.process_time()
    if clock == "wall":  # the app's own budget: seconds spent in training steps
        summary = trainer.run(time_budget=seconds, max_steps=max_steps)
    else:  # CPU seconds of this process: other work on the machine does not shrink it
        # the schedule follows this budget as the app's follows a wall-clock one (Trainer._progress)
        total = trainer.total_steps
        trainer._progress = lambda step: min(1.0, max(step / total, (time.process_time() - cpu0) / seconds))
        while time.process_time() - cpu0 < seconds and trainer.step_count < trainer.total_steps \
                and (max_steps is None or trainer.step_count < max_steps):
            trainer.step()
        summary = trainer.summary()
        summary["steps"] = trainer.step_count
    summary["cpu_seconds"] = round(time.process_time() - cpu0, 1)
    return trainer.model.eval(), summary


def report(model, summary: dict, dataset, classifier, seed: int, judge_accuracy: float) -> dict:
    metrics = evaluate(model, dataset.test_images, dataset.test_labels)
    generation = generation_report(model, classifier, dataset, seed=seed)
    cond, uncond = generation["conditional"], generation["unconditional"]
    return {
        "arch": model.arch, "steps": summary["steps"], "train_seconds": summary["seconds"],
        "cpu_seconds": summary["cpu_seconds"], "samples_per_second": summary["samples_per_second"],
        "zero_shot_accuracy": round(metrics["zero_shot_accuracy"], 4),
        "recon_nats": round(metrics["recon_nats"], 2),
        "kld_nats": round(metrics["kld_nats"], 2),
        "elbo_nats": round(metrics["elbo_nats"], 2),
        "label_decoder_accuracy": round(metrics["label_decoder_accuracy"], 4),
        "conditional_accuracy": round(cond["accuracy"], 4),
        # the bar: conditional samples recognised, relative to the judge's own test accuracy
        "conditional_vs_judge": round(cond["accuracy"] / judge_accuracy, 4),
        "conditional_min_label_accuracy": round(cond["min_label_accuracy"], 4),
        "conditional_diversity": round(cond["diversity"], 4),
        "real_test_diversity": round(cond["real_diversity"], 4),
        "unconditional_confident_share": round(uncond["confident_share"], 4),
        "unconditional_effective_labels": round(uncond["effective_labels"], 2),
    }


JUDGE_EPOCHS, JUDGE_MAX_IMAGES = 40, 720_000  # the digits' judge as documented; Fashion-MNIST's: 12 epochs


def judge_for(dataset, judge_dir: Path | None, epochs: int | None, seed: int = 0) -> tuple:
    """The dataset's judge: loaded from judge_dir when there, else trained (and saved there)."""
    epochs = epochs or max(1, min(JUDGE_EPOCHS, JUDGE_MAX_IMAGES // len(dataset.train_images)))
    path = judge_dir / f"judge-{dataset.name}-{seed}.pt" if judge_dir else None
    if path is not None and path.is_file():
        classifier, info = load_classifier(path)
    else:
        classifier, info = train_classifier(dataset, epochs=epochs, seed=seed)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            save_classifier(path, classifier, info, dataset.name)
    info = dict(info, test_accuracy=round(accuracy(classifier, dataset.test_images, dataset.test_labels), 4))
    return classifier, info


def run_one(job: dict) -> dict:
    """One training and its report; job holds plain values so it can cross a process boundary."""
    if job.get("threads"):
        torch.set_num_threads(job["threads"])
    dataset = load_benchmark_dataset(job["dataset"], job.get("data_dir"))
    classifier, judge = judge_for(dataset, Path(job["judge_dir"]) if job.get("judge_dir") else None,
                                  job["classifier_epochs"])
    config = build_config(job["preset"], job["changes"], job["seed"])
    model, summary = train(config, dataset, job["budget"], job.get("max_steps"), job["clock"], job.get("threads"))
    row = {"dataset": job["dataset"], "variant": job["variant"], "preset": job["preset"], "changes": job["changes"],
           "seed": job["seed"], "budget_s": job["budget"], "judge_test_accuracy": judge["test_accuracy"]}
    row.update(report(model, summary, dataset, classifier, job["seed"], judge["test_accuracy"]))
    if job.get("samples_dir"):
        from torchvision.utils import save_image

        out = Path(job["samples_dir"])
        out.mkdir(parents=True, exist_ok=True)
        grid = torch.nn.functional.interpolate(sample_grid(model, seed=job["seed"]), scale_factor=2)
        save_image(grid, out / f"samples-{job['variant']}.png", nrow=10, padding=4, pad_value=0.5)
    return row


def run_in_subprocess(job: dict) -> dict:
    out = subprocess.run([sys.executable, __file__, "--one", json.dumps(job)], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{job['dataset']}/{job['variant']}/seed {job['seed']} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def median_table(rows: list[dict]) -> list[dict]:
    groups: dict = {}
    for row in rows:
        groups.setdefault((row["dataset"], row["variant"]), []).append(row)
    table = []
    for (dataset, variant), runs in groups.items():
        entry = {"dataset": dataset, "variant": variant, "seeds": [r["seed"] for r in runs], "budget_s": runs[0]["budget_s"]}
        for field in TABLE_FIELDS:
            entry[field] = median([r[field] for r in runs])
            entry[field + "_per_seed"] = [r[field] for r in runs]
        table.append(entry)
    return table


def markdown(table: list[dict]) -> str:
    lines = ["| dataset | budget | variant | seeds | zero-shot | reconstruction, nats | conditional / judge | confident noise | steps |",
             "|---|---:|---|---|---:|---:|---:|---:|---:|"]
    for e in table:
        per = lambda f, scale=100, fmt="{:.1f}": " / ".join(fmt.format(v * scale) for v in e[f + "_per_seed"])  # noqa: E731
        lines.append(f"| {e['dataset']} | {e['budget_s']:g} s | {e['variant']} | {','.join(map(str, e['seeds']))} "
                     f"| **{e['zero_shot_accuracy'] * 100:.1f} %** ({per('zero_shot_accuracy')}) "
                     f"| **{e['recon_nats']:.0f}** ({per('recon_nats', 1, '{:.0f}')}) "
                     f"| {e['conditional_vs_judge'] * 100:.1f} % | {e['unconditional_confident_share'] * 100:.1f} % "
                     f"| {e['steps']:.0f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one job (JSON) and print its row
    parser.add_argument("--dataset", default="mnist5k", help="comma-separated dataset names (see above)")
    parser.add_argument("--time-budget", default="60",
                        help="training seconds per run: one number, or one per dataset, comma-separated")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall: seconds of training steps, as the app counts them (default); cpu: CPU "
                             "seconds of each run's process, steady on a machine shared with other work")
    parser.add_argument("--max-steps", type=int, help="also stop each run after this many steps")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds")
    parser.add_argument("--presets", default="reference,studio")
    parser.add_argument("--variant", action="append", default=[],
                        help="NAME:key=value[,...] a studio-preset variant (repeatable); PRESET:key=value "
                             "changes another preset when NAME is a preset's name plus '/': reference/x:lr=3e-3")
    parser.add_argument("--data-dir")
    parser.add_argument("--judge-dir", default=str(Path.home() / ".cache" / "clipvae-studio" / "judges"),
                        help="where each dataset's judge is kept (trained on first use)")
    parser.add_argument("--classifier-epochs", type=int,
                        help="judge training epochs (default: 40, fewer for large sets: at most 720,000 images seen)")
    parser.add_argument("--samples-dir", help="write samples-<variant>.png grids here")
    parser.add_argument("--threads", type=int, help="torch threads per run (default: torch's choice)")
    parser.add_argument("--jobs", type=int, default=1, help="runs side by side, each in its own process")
    parser.add_argument("--markdown", action="store_true", help="also print the median table as Markdown (stderr)")
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(json.loads(args.one))))
        return 0

    datasets = [d.strip() for d in args.dataset.split(",") if d.strip()]
    budgets = [float(b) for b in args.time_budget.split(",")]
    if len(budgets) not in (1, len(datasets)):
        raise SystemExit("--time-budget: give one number, or one per dataset")
    budgets = budgets * len(datasets) if len(budgets) == 1 else budgets
    runs = [(p.strip(), p.strip(), {}) for p in args.presets.split(",") if p.strip()]
    for text in args.variant:
        name, changes = parse_variant(text)
        base, _, _ = name.partition("/") if "/" in name else ("studio", "", "")
        runs.append((name, base, changes))
    seeds = [int(s) for s in args.seeds.split(",")]
    for name in datasets:  # judges first, once per dataset, so parallel runs do not race to train one
        judge_for(load_benchmark_dataset(name, args.data_dir), Path(args.judge_dir), args.classifier_epochs)
    jobs = [dict(dataset=d, data_dir=args.data_dir, budget=b, variant=v, preset=p, changes=c, seed=s,
                 clock=args.clock, max_steps=args.max_steps, threads=args.threads, judge_dir=args.judge_dir,
                 classifier_epochs=args.classifier_epochs, samples_dir=args.samples_dir)
            for d, b in zip(datasets, budgets) for s in seeds for v, p, c in runs]
    if args.jobs > 1:
        with ThreadPoolExecutor(args.jobs) as pool:
            rows = list(pool.map(run_in_subprocess, jobs))
    else:
        rows = [run_one(job) for job in jobs]
    table = median_table(rows)
    print(json.dumps({
        "benchmark": "quality", "split": "test", "clock": args.clock, "jobs": args.jobs,
        "torch_threads": args.threads or torch.get_num_threads(), "machine": machine(),
        "load_average_at_end": [round(v, 2) for v in os.getloadavg()], "table": table, "runs": rows,
    }))
    if args.markdown:
        print(markdown(table), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
