"""Checkpoints: one file with config, labels, weights, optimiser state, step and history.

Written atomically (temporary file in the same folder, then rename) and read with
torch.load(weights_only=True) only, so opening a file can never run code. The same
loader opens the published reference's plain state_dict (docs/architecture.md, "The reference model").
"""
from __future__ import annotations

import math
import os
import pickle
import re
import tempfile
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .config import TrainConfig, preset
from .model import CLIPVAE
from .speed import all_finite
from .state_tree import map_tensors

FORMAT = "clipvae-studio"
VERSION = 1


class CheckpointError(ValueError):
    """A file could not be used as a checkpoint; the message says why."""


@dataclass
class Checkpoint:
    model: CLIPVAE
    config: TrainConfig
    step: int = 0
    epoch: float = 0.0
    optimizer: dict | None = None
    history: dict = field(default_factory=dict)
    eval_history: list = field(default_factory=list)
    train_seconds: float = 0.0
    dataset: str | None = None
    source: str = FORMAT  # or "reference" for a published-format state_dict

    @property
    def label_names(self) -> list[str]:
        return self.model.label_names

    def payload(self) -> dict:
        return {"optimizer": self.optimizer, "step": self.step, "history": self.history,
                "eval_history": self.eval_history, "train_seconds": self.train_seconds}


def save_checkpoint(path, model: CLIPVAE, config: TrainConfig, *, optimizer=None, step: int = 0,
                    epoch: float = 0.0, history: dict | None = None, eval_history: list | None = None,
                    train_seconds: float = 0.0, dataset: str | None = None) -> Path:
    """Write atomically: the old file at `path` survives any failure (full disk, no permission)."""
    path = Path(path)
    weights = [v for v in model.state_dict().values() if v.is_floating_point() and v.numel()]
    if not all_finite(weights):  # the loader refuses them anyway: never write a file that cannot be opened
        raise CheckpointError(f"not saved to {path}: the weights contain NaN or infinite values")
    data = {
        "format": FORMAT, "version": VERSION,
        "config": config.to_dict(), "architecture": model.architecture(),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": _to_cpu(optimizer.state_dict()) if hasattr(optimizer, "state_dict") else optimizer,
        "step": int(step), "epoch": float(epoch), "train_seconds": float(train_seconds),
        "history": {k: [float(v) for v in vals] for k, vals in (history or {}).items()},
        "eval_history": [{k: float(v) for k, v in row.items() if isinstance(v, (int, float))}
                         for row in (eval_history or [])],
        "dataset": dataset,
    }
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise CheckpointError(f"cannot save to {path}: folder {folder} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise CheckpointError(f"cannot save to {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(data, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise CheckpointError(f"cannot save to {path}: {exc.strerror or exc}; the previous file is untouched") from None
        raise
    return path


def save_trainer(path, trainer, dataset_name: str | None = None) -> Path:
    """Save a trainer, also while it trains in another thread (autosave): the lock keeps weights and
    optimiser state from one step; the history lists are cut to a common length because the
    training thread appends to them after it has released the lock."""
    with trainer.lock:
        history = {k: list(v) for k, v in trainer.history.items()}
        rows = min((len(v) for v in history.values()), default=0)
        return save_checkpoint(path, trainer.model, trainer.config, optimizer=trainer.optimizer,
                               step=trainer.step_count, epoch=trainer.epoch,
                               history={k: v[:rows] for k, v in history.items()},
                               eval_history=list(trainer.eval_history), train_seconds=trainer.train_seconds,
                               dataset=dataset_name or trainer.dataset.name)


def load_checkpoint(path, image_shape=None, num_labels: int | None = None) -> Checkpoint:
    """Open a studio checkpoint or a reference state_dict, on the CPU.

    image_shape / num_labels, when given, are checked against the file (the chosen dataset).
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder, not a checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise CheckpointError(f"{path.name}: cannot read ({exc.strerror or exc})") from None
    if not head.startswith((b"PK\x03\x04", b"\x80")):  # neither torch's zip format nor a pickle
        raise CheckpointError(f"{path.name}: not a readable checkpoint; the file is truncated or corrupt, or not a "
                              f"PyTorch file at all ({_describe_head(head)})")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols of files it then refuses anyway
            warnings.simplefilter("ignore", UserWarning)
            data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(_unpickling_message(path, exc)) from None
    except (zipfile.BadZipFile, EOFError, RuntimeError, OSError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, UnicodeDecodeError, MemoryError, OverflowError) as exc:
        size = path.stat().st_size
        raise CheckpointError(f"{path.name}: not a readable checkpoint; the file is truncated or corrupt "
                              f"({size} bytes; {_first_line(exc)})") from None
    if isinstance(data, dict) and data.get("format") == FORMAT:
        ckpt = _from_studio(data, path)
    elif isinstance(data, dict) and "image_encoder.stem.weight" in data:
        ckpt = _from_reference(data, path)
    else:
        raise CheckpointError(f"{path.name}: a torch file, but not a CLIP-VAE checkpoint "
                              f"(neither a studio checkpoint nor a reference state_dict)")
    model = ckpt.model
    if image_shape is not None and tuple(image_shape) != tuple(model.image_shape):
        if math.prod(image_shape) != math.prod(model.image_shape) or ckpt.source == FORMAT:
            raise CheckpointError(f"{path.name}: the model was trained on images of shape "
                                  f"{'x'.join(map(str, model.image_shape))} but the dataset has "
                                  f"{'x'.join(map(str, image_shape))}")
        model.image_shape = tuple(image_shape)  # reference files store flat vectors; reshape
        model.image_decoder.image_shape = tuple(image_shape)
    if num_labels is not None and num_labels != model.num_labels:
        raise CheckpointError(f"{path.name}: the model knows {model.num_labels} labels but the dataset has {num_labels}")
    return ckpt


def _describe_head(head: bytes) -> str:
    if not head:
        return "it is empty"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return f"it starts with bytes {head[:4].hex()}"
    return f"it starts with the text {text[:8]!r}" if text.isprintable() or "\n" in text else f"it starts with bytes {head[:4].hex()}"


def _unpickling_message(path: Path, exc: BaseException) -> str:
    """Tell a file that would run code (refused) from one that is merely damaged."""
    wanted = re.search(r"GLOBAL ([\w.]+)", str(exc))  # torch names the import it blocked
    if wanted:
        return (f"{path.name}: refused, the file holds objects other than tensors and plain data (it asks for "
                f"{wanted.group(1)}, which could run code when opened), so it was not loaded")
    return (f"{path.name}: not a readable checkpoint; the file is truncated or corrupt, or holds data of an "
            f"unknown kind (refused without running it)")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def _from_studio(data: dict, path: Path) -> Checkpoint:
    try:
        arch = dict(data["architecture"])
        config = TrainConfig.from_dict(data.get("config") or {})
        image_shape, num_labels = arch.pop("image_shape"), arch.pop("num_labels")
        state = data["model"]
        if not isinstance(state, dict):
            raise TypeError(f"weights stored as {type(state).__name__}, not a state_dict")
        # Build on the meta device first: a damaged or hostile header (width=10**9) costs nothing
        # there, and the real module is only allocated once every shape matches the file.
        with torch.device("meta"):
            skeleton = CLIPVAE(image_shape, num_labels, **arch)
        _check_shapes(skeleton, state, path)
        model = CLIPVAE(image_shape, num_labels, **arch)
        _load_weights(model, state, path)
        optimizer = data.get("optimizer")
        _check_optimizer(model, optimizer, path)
        history = data.get("history") or {}
        if not isinstance(history, dict) or not all(isinstance(v, list) for v in history.values()):
            raise TypeError("the loss history is not a table of lists")
        step, epoch = int(data.get("step", 0)), float(data.get("epoch", 0.0))
        train_seconds = float(data.get("train_seconds", 0.0))
        eval_history = data.get("eval_history") or []
        if not isinstance(eval_history, list):
            raise TypeError("the evaluation history is not a list")
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError, OverflowError, MemoryError, AttributeError) as exc:
        raise CheckpointError(f"{path.name}: damaged studio checkpoint ({_first_line(exc)})") from None
    return Checkpoint(model=model, config=config, step=step, epoch=epoch, optimizer=optimizer, history=history,
                      eval_history=eval_history, train_seconds=train_seconds, dataset=data.get("dataset"))


def _check_shapes(skeleton: CLIPVAE, state: dict, path: Path) -> None:
    expected = skeleton.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{path.name}: weights do not fit the architecture ("
                              + "; ".join(filter(None, [f"missing {', '.join(missing[:3])}" if missing else "",
                                                        f"unexpected {', '.join(unexpected[:3])}" if unexpected else ""]))
                              + ")")
    for key, tensor in expected.items():
        value = state[key]
        if not isinstance(value, torch.Tensor) or tuple(value.shape) != tuple(tensor.shape):
            got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise CheckpointError(f"{path.name}: weights do not fit the architecture ({key} is {got}, "
                                  f"expected {tuple(tensor.shape)})")


def _check_optimizer(model: CLIPVAE, state, path: Path) -> None:
    """Refuse optimiser state that would only fail later, at the first step of resumed training."""
    if state is None:
        return
    try:
        params = list(model.parameters())
        groups, per_param = state["param_groups"], state["state"]
        ids = [i for g in groups for i in g["params"]]
        if sorted(ids) != list(range(len(params))):
            raise ValueError(f"it covers {len(ids)} tensors, the model has {len(params)}")
        for index, slots in per_param.items():
            for name, value in slots.items():
                if name != "step" and isinstance(value, torch.Tensor) and value.shape != params[index].shape:
                    raise ValueError(f"{name} of tensor {index} has shape {tuple(value.shape)}, "
                                     f"expected {tuple(params[index].shape)}")
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise CheckpointError(f"{path.name}: the optimiser state does not fit the model ({_first_line(exc)})") from None


def _guess_image_shape(features: int):
    side = math.isqrt(features)
    if side * side == features:
        return (1, side, side)
    side = math.isqrt(features // 3)
    if features % 3 == 0 and side * side * 3 == features:
        return (3, side, side)
    return (1, 1, features)


def _from_reference(state: dict, path: Path) -> Checkpoint:
    """Map the published reference's state_dict onto the `mlp` model, dimensions read from shapes."""
    try:
        width, features = state["image_encoder.stem.weight"].shape
        z_dim = state["image_encoder.to_mu.weight"].shape[0]
        num_labels = state["label_encoder.net.0.weight"].shape[0]
        depth = len({k.split(".")[2] for k in state if k.startswith("image_encoder.blocks.")})
    except (KeyError, AttributeError, ValueError, IndexError) as exc:
        raise CheckpointError(f"{path.name}: looks like a reference state_dict but is damaged ({_first_line(exc)})") from None
    shared = depth > 1 and all(
        torch.equal(state[f"image_encoder.blocks.0.{p}"], state[f"image_encoder.blocks.{i}.{p}"])
        for i in range(1, depth) for p in ("0.weight", "0.bias", "1.weight", "1.bias")
        if f"image_encoder.blocks.{i}.{p}" in state)
    config = preset("reference").with_values(z_dim=int(z_dim), width=int(width), depth=depth, shared_blocks=shared)
    model = CLIPVAE(_guess_image_shape(int(features)), int(num_labels), arch="mlp", z_dim=int(z_dim),
                    width=int(width), depth=depth, shared_blocks=shared, noise="uniform")
    _load_weights(model, state, path)
    return Checkpoint(model=model, config=config, source="reference")


def _load_weights(model: CLIPVAE, state: dict, path: Path) -> None:
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path.name}: weights do not fit the architecture ({_first_line(exc)})") from None
    if not all(torch.isfinite(p).all() for p in model.parameters()):
        raise CheckpointError(f"{path.name}: the weights contain NaN or infinite values")


def _to_cpu(state):
    return map_tensors(lambda t: t.detach().cpu(), state)

