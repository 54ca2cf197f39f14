"""Checks of command-line arguments made before any data is read or any step is trained, so a
run that cannot end well stops in the first second with the reason, not after the training."""
from __future__ import annotations

import math
import os
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
