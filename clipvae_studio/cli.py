"""Command line: `clipvae-studio` opens the GUI; sub-commands train, evaluate and sample headless."""
from __future__ import annotations

import argparse
import json
import math
import sys
import time

from .core.config import DATASET_KINDS, DEVICES, PRESETS

EXIT_BAD_INPUT = 2


class CLIError(Exception):
    """Bad input on the command line: printed as one line, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clipvae-studio", description="Train and explore CLIP-VAEs.")
    sub = parser.add_subparsers(dest="command")

    gui = sub.add_parser("gui", help="open the studio window (the default)")
    gui.add_argument("checkpoint", nargs="?", help="checkpoint to open")

    def data_args(p, default="mnist5k"):
        p.add_argument("--dataset", choices=DATASET_KINDS, default=default,
                       help="mnist5k is bundled; mnist/fashion-mnist/kmnist download once; idx/folder read --data-dir")
        p.add_argument("--data-dir", help="folder of IDX files (idx), of class sub-folders (folder), or download cache")
        p.add_argument("--image-size", type=int, default=28, help="side length for --dataset folder")

    train = sub.add_parser("train", help="train headless with a progress bar")
    data_args(train)
    train.add_argument("--preset", choices=list(PRESETS), default="studio")
    train.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config field, e.g. --set lr=3e-4 (repeatable)")
    budget = train.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=int, help="passes over the training split")
    budget.add_argument("--time-budget", type=float, metavar="SECONDS", help="stop after this much training time")
    train.add_argument("--device", choices=DEVICES, help="default: the config's (auto)")
    train.add_argument("--out", help="checkpoint to write at the end (and on Ctrl-C)")
    train.add_argument("--force", action="store_true", help="let --out replace a file that is not a checkpoint")
    train.add_argument("--resume", metavar="CKPT", help="continue from a checkpoint")
    train.add_argument("--json", action="store_true", help="print one JSON summary line at the end")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_run_arguments(train)

    ev = sub.add_parser("eval", help="evaluate a checkpoint on a test split")
    ev.add_argument("checkpoint")
    data_args(ev, default=None)
    ev.add_argument("--json", action="store_true")
    ev.add_argument("--device", choices=DEVICES, default="auto")
    ev.add_argument("--classifier", metavar="CLF",
                    help="judge generated images with this classifier (from train-classifier): "
                         "conditional accuracy, diversity, confidence on z ~ N(0, I) samples")
    ev.add_argument("--samples-per-label", type=int, default=100, help="posterior samples per label (default 100)")
    ev.add_argument("--noise-samples", type=int, default=1000, help="z ~ N(0, I) samples (default 1000)")
    ev.add_argument("--seed", type=int, default=0, help="seed of the generation samples")

    clf = sub.add_parser("train-classifier", help="train the independent CNN that judges generated images")
    data_args(clf)
    clf.add_argument("--out", required=True, help="classifier file to write")
    clf.add_argument("--epochs", type=int, default=40)
    clf.add_argument("--width", type=int, default=16, help="channels of the first conv layer")
    clf.add_argument("--seed", type=int, default=0)
    clf.add_argument("--device", choices=DEVICES, default="cpu")
    clf.add_argument("--json", action="store_true", help="print one JSON summary line")

    sample = sub.add_parser("sample", help="decode a grid of samples to PNG")
    sample.add_argument("checkpoint")
    what = sample.add_mutually_exclusive_group(required=True)
    what.add_argument("--label", help="label name (or index) to sample from its posterior")
    what.add_argument("--noise", action="store_true", help="sample z ~ N(0, I)")
    sample.add_argument("--n", type=int, default=64, help="number of images")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--out", required=True, help="PNG file to write")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in (None, "gui"):
        from .gui.app import run_gui

        return run_gui(getattr(args, "checkpoint", None))
    from .core import CheckpointError, DatasetError, DeviceError

    handlers = {"train": cmd_train, "eval": cmd_eval, "sample": cmd_sample,
                "train-classifier": cmd_train_classifier}
    try:
        return handlers[args.command](args)
    except (CLIError, CheckpointError, DatasetError, DeviceError, ValueError, FileNotFoundError) as exc:
        print(f"clipvae-studio {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _dataset(args, fallback: str = "mnist5k"):
    from .core.data import load_dataset

    name = args.dataset or fallback
    options = {"image_size": args.image_size} if name == "folder" else {}
    dataset = load_dataset(name, args.data_dir, **options)
    for warning in dataset.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return dataset


def cmd_train(args) -> int:
    from tqdm import tqdm

    from .cli_checks import adopt_label_names, check_train_args, training_problems
    from .core import Trainer, load_checkpoint, preset, resolve_device, save_trainer
    from .core.config import MODEL_FIELDS, apply_overrides
    from .core.events import ErrorEvent, StepEvent
    from .core.augment import shift_note
    from .core.validation import check_training, fit_to_dataset

    check_train_args(args)
    dataset = _dataset(args)
    model, payload = None, None
    explicit = {pair.split("=", 1)[0].strip() for pair in args.overrides}
    if args.resume:
        ckpt = load_checkpoint(args.resume, dataset.image_shape, dataset.num_labels)
        config, model, payload = ckpt.config, ckpt.model, ckpt.payload()
        touched = explicit & set(MODEL_FIELDS)
        if touched:
            raise CLIError(f"cannot change {', '.join(sorted(touched))} when resuming: the weights fix the architecture")
        for note in adopt_label_names(model, dataset, args.resume):
            print(f"warning: {note}", file=sys.stderr)
    else:
        config = preset(args.preset)
    config = apply_overrides(config, args.overrides)
    notes = []
    if model is None:
        config, notes = fit_to_dataset(config, dataset.image_shape, dataset.num_labels, explicit)
    if args.epochs is not None:
        config = config.with_values(epochs=args.epochs)
    elif args.time_budget:
        config = config.with_values(epochs=10**6)  # the time budget ends the run
    if args.device:
        config = config.with_values(device=args.device)
    notes += check_training(config, dataset.image_shape, dataset.num_labels, len(dataset.train_images),
                            fresh_model=model is None, device=resolve_device(config.device))
    for note in notes:
        print(f"warning: {note}", file=sys.stderr)
    if _run_folder_or_torchrun(args):
        from .cli_run import cmd_train_run

        return cmd_train_run(args, dataset, config, model, payload, CLIError)
    trainer = Trainer(config, dataset, model=model)
    if payload:
        trainer.restore(payload)
    shifts = shift_note(config, len(dataset.train_images), dataset.num_labels)
    if shifts and not args.quiet:
        print(f"note: {shifts}", file=sys.stderr)
    trainer.prepare()  # the optimiser's first construction imports torch._dynamo (seconds): not training time

    errors: list[str] = []
    bar = tqdm(total=None if args.time_budget else trainer.total_steps, initial=trainer.step_count,
               disable=args.quiet, unit="step", dynamic_ncols=True, file=sys.stderr)
    last_postfix = [0.0]

    def listen(event):
        if isinstance(event, StepEvent):
            bar.update(1)
            now = time.monotonic()
            if now - last_postfix[0] > 0.2:
                last_postfix[0] = now
                bar.set_postfix({k: f"{v:.3g}" for k, v in event.losses.items()}
                                | {"samples/s": f"{event.samples_per_second:,.0f}"}, refresh=False)
        elif isinstance(event, ErrorEvent):
            errors.append(event.message)

    trainer.add_listener(listen)
    seconds_before = trainer.train_seconds
    try:
        summary = trainer.run(time_budget=args.time_budget)
    except KeyboardInterrupt:
        trainer.stop()
        summary = trainer.summary()
        print("\ninterrupted: saving what was trained", file=sys.stderr)
    finally:
        bar.close()
    if args.time_budget and not args.epochs and trainer.train_seconds - seconds_before >= 0.99 * args.time_budget:
        # The budget was the plan and its schedule has run out: record the epochs it took instead of
        # the 10**6 placeholder, so the checkpoint reads "epoch 143.7 / 144" and training it further
        # in the studio goes on at the end of the schedule, not at the full learning rate again.
        trainer.config = trainer.config.with_values(epochs=max(1, math.ceil(trainer.epoch)))
    problems = training_problems(trainer, summary)
    if args.out and not problems:
        save_trainer(args.out, trainer)
        summary["checkpoint"] = args.out
    errors += [problem + ("; nothing was saved" if args.out else "") for problem in problems]
    summary.update(preset=args.preset if not args.resume else "resumed", dataset=dataset.name)
    if args.json:
        print(json.dumps(summary))
    else:
        m = summary["metrics"]
        print(f"{summary['steps']} steps in {summary['seconds']:.1f} s ({summary['samples_per_second']:,.0f} samples/s); "
              f"zero-shot accuracy {m.get('zero_shot_accuracy', float('nan')):.3f}, "
              f"reconstruction {m.get('recon_nats', float('nan')):.1f} nats", file=sys.stderr)
    if errors:
        print(f"clipvae-studio train: error: {errors[0]}", file=sys.stderr)
        return 1
    return 0


def _add_run_arguments(train) -> None:
    from .cli_run import add_run_arguments

    add_run_arguments(train)


def _run_folder_or_torchrun(args) -> bool:
    """`--run-dir`, or launched by torchrun: trained by cli_run.py (docs/distributed.md)."""
    from .core.distributed_train import launched_by_torchrun

    return bool(args.run_dir) or launched_by_torchrun()


def cmd_eval(args) -> int:
    import torch

    from .core import load_checkpoint, resolve_device
    from .core.metrics import evaluate

    from .cli_checks import eval_dataset_name

    ckpt = load_checkpoint(args.checkpoint)
    dataset = _dataset(args, fallback=eval_dataset_name(args, ckpt))
    if len(dataset.test_images) == 0:
        raise CLIError(f"{dataset.name} has no test images to evaluate on")
    ckpt = load_checkpoint(args.checkpoint, dataset.image_shape, dataset.num_labels)
    model = ckpt.model.to(resolve_device(args.device))
    with torch.no_grad():
        metrics = evaluate(model, dataset.test_images, dataset.test_labels)
    result = {"checkpoint": args.checkpoint, "dataset": dataset.name, "split": "test",
              "source": ckpt.source, "step": ckpt.step, **metrics}
    if args.classifier:
        result.update(_generation_figures(model, dataset, args))
    if args.json:
        print(json.dumps(result))
    else:
        rows = {key: value for key, value in result.items() if key != "generation_per_label"}
        width = max(map(len, rows))
        for key, value in rows.items():
            print(f"{key:>{width}}: {value:.4f}" if isinstance(value, float) else f"{key:>{width}}: {value}")
    return 0


def _generation_figures(model, dataset, args) -> dict:
    """Generation quality judged by an independent classifier (core/quality.py)."""
    from .core.classifier import accuracy, load_classifier
    from .core.quality import generation_report

    if args.samples_per_label < 1 or args.noise_samples < 1:
        raise CLIError("--samples-per-label and --noise-samples must be at least 1")
    classifier, info = load_classifier(args.classifier)
    if classifier.num_labels != model.num_labels or tuple(classifier.image_shape) != tuple(model.image_shape):
        raise CLIError(f"{args.classifier}: the classifier knows {classifier.num_labels} labels of shape "
                       f"{tuple(classifier.image_shape)}, the model {model.num_labels} of shape {tuple(model.image_shape)}")
    classifier.to(model.device)
    report = generation_report(model, classifier, dataset, per_label=args.samples_per_label,
                               n_noise=args.noise_samples, seed=args.seed)
    cond, uncond = report["conditional"], report["unconditional"]
    return {
        "classifier": args.classifier,
        "classifier_test_accuracy": accuracy(classifier, dataset.test_images, dataset.test_labels),
        "conditional_accuracy": cond["accuracy"],
        "conditional_min_label_accuracy": cond["min_label_accuracy"],
        **({"conditional_clip_routed_accuracy": cond["clip_routed_accuracy"]} if "clip_routed_accuracy" in cond else {}),
        "conditional_diversity": cond["diversity"],
        "real_test_diversity": cond["real_diversity"],
        "unconditional_confident_share": uncond["confident_share"],
        **({"unconditional_clip_routed_confident_share": uncond["clip_routed_confident_share"]}
           if "clip_routed_confident_share" in uncond else {}),
        "unconditional_mean_confidence": uncond["mean_confidence"],
        "unconditional_effective_labels": uncond["effective_labels"],
        "generation_per_label": cond["per_label"],
    }


def cmd_train_classifier(args) -> int:
    from .core.classifier import save_classifier, train_classifier

    if args.epochs < 1 or args.width < 1:
        raise CLIError("--epochs and --width must be at least 1")
    dataset = _dataset(args)

    def progress(epoch, epochs, loss):
        if not args.json:
            print(f"epoch {epoch}/{epochs}: loss {loss:.3f}", file=sys.stderr)

    classifier, info = train_classifier(dataset, epochs=args.epochs, width=args.width, seed=args.seed,
                                        device=args.device, progress=progress)
    save_classifier(args.out, classifier.cpu(), info, dataset.name)
    summary = {"classifier": args.out, "dataset": dataset.name, **info}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"test accuracy {info['test_accuracy']:.4f} (train {info['train_accuracy']:.4f}) after "
              f"{info['epochs']} epochs in {info['seconds']:.1f} s; wrote {args.out}", file=sys.stderr)
    return 0


def cmd_sample(args) -> int:
    import torch
    from torchvision.utils import save_image

    from .core import load_checkpoint
    from .core.generation import sample_label, sample_noise

    ckpt = load_checkpoint(args.checkpoint)
    model = ckpt.model.eval()
    if args.n < 1:
        raise CLIError("--n must be at least 1")
    if model.image_shape[0] not in (1, 3):
        raise CLIError(f"the model draws {model.image_shape[0]}-channel images; a PNG holds 1 (grey) or 3 (RGB)")
    generator = torch.Generator().manual_seed(args.seed)
    if args.noise:
        images = sample_noise(model, args.n, generator)
    else:
        names = model.label_names
        if args.label in names:
            label = names.index(args.label)
        elif args.label.isdigit() and int(args.label) < len(names):
            label = int(args.label)
        else:
            raise CLIError(f"unknown label {args.label!r}; the model's labels are {', '.join(names)}")
        images = sample_label(model, label, args.n, generator)
    try:
        save_image(images, args.out, nrow=max(1, int(round(args.n ** 0.5))), padding=2, pad_value=0.5)
    except (OSError, ValueError) as exc:
        raise CLIError(f"cannot write {args.out}: {exc}") from None
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
