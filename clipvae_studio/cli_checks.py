"""Checks of the command line's runs: arguments checked before any data is read or any step is
trained (a run that cannot end well stops in the first second with the reason, not after the
training), and a finished run checked before anything is saved."""
from __future__ import annotations

import math
import os
import sys
import tempfile
from pathlib import Path


class ArgumentProblem(ValueError):
    """An argument that cannot work; the message names it."""


def check_train_args(args) -> None:
    budget = getattr(args, "time_budget", None)
    if budget is not None and not (math.isfinite(budget) and budget > 0):
        raise ArgumentProblem(f"--time-budget must be a positive number of seconds, not {budget}")
    epochs = getattr(args, "epochs", None)
    if epochs is not None and epochs < 1:
        raise ArgumentProblem(f"--epochs must be at least 1, not {epochs}")
    if getattr(args, "out", None) is not None:
        check_destination(args.out, force=getattr(args, "force", False))


def check_destination(out: str, force: bool = False) -> None:
    """Refuse an --out that would lose a file that is not a checkpoint, or that cannot be written."""
    if not out.strip():
        raise ArgumentProblem("--out is empty: name the checkpoint file to write")
    path = Path(out)
    if path.is_dir():
        raise ArgumentProblem(f"--out {out}: is a folder; name a file inside it, e.g. {path / 'model.pt'}")
    if path.exists() and not force and not is_checkpoint_file(path):
        raise ArgumentProblem(f"--out {out}: the file exists and is not a CLIP-VAE checkpoint; "
                              f"choose another name, or add --force to overwrite it")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise ArgumentProblem(f"--out {out}: the folder {folder} does not exist")
    try:  # a real write, not os.access: that answers "yes" for root on a read-only mount
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=folder)
    except OSError as exc:
        raise ArgumentProblem(f"--out {out}: cannot write in {folder} ({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(probe)


def is_checkpoint_file(path: Path) -> bool:
    """Whether `path` is a checkpoint this program writes or reads (its weights are not checked)."""
    import torch

    from .core.checkpoint import FORMAT

    try:
        with open(path, "rb") as fh:
            if not fh.read(4).startswith((b"PK\x03\x04", b"\x80")):  # neither torch's zip format nor a pickle
                return False
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 (any failure means: not a checkpoint we could have written)
        return False
    return isinstance(data, dict) and (data.get("format") == FORMAT or "image_encoder.stem.weight" in data)


def adopt_label_names(model, dataset, resumed: str) -> list[str]:
    """Labels are matched by position: when the names differ the model takes the data's, and a warning says so."""
    if list(model.label_names) == list(dataset.label_names):
        return []
    changed = [f"{old!r} -> {new!r}" for old, new in zip(model.label_names, dataset.label_names) if old != new]
    model.label_names = list(dataset.label_names)
    return [f"{resumed} names its labels differently from {dataset.name} ({len(changed)} differ: "
            f"{', '.join(changed[:5])}{' ...' if len(changed) > 5 else ''}); labels are matched by position and "
            f"the model now takes the dataset's names"]


def training_problems(trainer, summary: dict) -> list[str]:
    """What makes a finished run a failure although no step reported one (then nothing is saved)."""
    from .core.speed import all_finite

    problems = []
    if not all_finite([p for p in trainer.model.parameters() if p.numel()]):
        problems.append("the weights became non-finite (NaN or infinite): lower the learning rate")
    bad = sorted(k for k, v in summary["metrics"].items() if isinstance(v, float) and not math.isfinite(v))
    if bad:
        problems.append(f"the evaluation gave non-finite {', '.join(bad)}: the model diverged; lower the learning rate")
    return problems


def eval_dataset_name(args, ckpt) -> str:
    """The dataset to evaluate on: --dataset, else the one the model was trained on; a folder or IDX
    set must be named again (its path is not stored), never silently replaced by the bundled digits."""
    if args.dataset:
        return args.dataset
    if ckpt.dataset in ("mnist5k", "mnist", "fashion-mnist", "kmnist"):
        return ckpt.dataset
    if ckpt.dataset is None:
        print("note: the checkpoint does not name its dataset; evaluating on mnist5k", file=sys.stderr)
        return "mnist5k"
    raise ArgumentProblem(f"{args.checkpoint} was trained on {ckpt.dataset!r}, a folder or IDX set: name it with "
                          f"--dataset folder (or idx) --data-dir PATH")
