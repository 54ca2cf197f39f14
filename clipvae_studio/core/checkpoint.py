"""Checkpoints: one file with config, labels, weights, optimiser state, step and history.

Written atomically (temporary file in the same folder, then rename) and read with
torch.load(weights_only=True) only, so opening a file can never run code. The same
loader opens the published reference's plain state_dict (DESIGN.md section 1).
"""
from __future__ import annotations

import io
import math
import os
import pickle
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .config import TrainConfig, preset
from .model import CLIPVAE

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
    with trainer.lock:
        return save_checkpoint(path, trainer.model, trainer.config, optimizer=trainer.optimizer,
                               step=trainer.step_count, epoch=trainer.epoch, history=trainer.history,
                               eval_history=trainer.eval_history, train_seconds=trainer.train_seconds,
                               dataset=dataset_name or trainer.dataset.name)


def load_checkpoint(path, image_shape=None, num_labels: int | None = None) -> Checkpoint:
    """Open a studio checkpoint or a reference state_dict, on the CPU.

    image_shape / num_labels, when given, are checked against the file (the chosen dataset).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"{path.name}: refused, the file holds objects other than tensors and plain data "
                              f"(it could run code when opened), so it was not loaded ({_first_line(exc)})") from None
    except (zipfile.BadZipFile, EOFError, RuntimeError, OSError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, UnicodeDecodeError) as exc:
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


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def _from_studio(data: dict, path: Path) -> Checkpoint:
    try:
        arch = dict(data["architecture"])
        config = TrainConfig.from_dict(data.get("config") or {})
        model = CLIPVAE(arch.pop("image_shape"), arch.pop("num_labels"), **arch)
        _load_weights(model, data["model"], path)
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path.name}: damaged studio checkpoint ({_first_line(exc)})") from None
    return Checkpoint(model=model, config=config, step=int(data.get("step", 0)), epoch=float(data.get("epoch", 0.0)),
                      optimizer=data.get("optimizer"), history=data.get("history") or {},
                      eval_history=data.get("eval_history") or [], train_seconds=float(data.get("train_seconds", 0.0)),
                      dataset=data.get("dataset"))


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
        raise CheckpointError(f"{path.name}: looks like a reference state_dict but lacks {exc}") from None
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
        result = model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path.name}: weights do not fit the architecture ({_first_line(exc)})") from None
    del result
    if not all(torch.isfinite(p).all() for p in model.parameters()):
        raise CheckpointError(f"{path.name}: the weights contain NaN or infinite values")


def _to_cpu(state):
    if isinstance(state, torch.Tensor):
        return state.detach().cpu()
    if isinstance(state, dict):
        return {k: _to_cpu(v) for k, v in state.items()}
    if isinstance(state, list):
        return [_to_cpu(v) for v in state]
    return state


def checkpoint_bytes(model: CLIPVAE, config: TrainConfig) -> bytes:
    """The checkpoint as bytes (for tests and clipboard-free transfers)."""
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, "version": VERSION, "config": config.to_dict(),
                "architecture": model.architecture(), "model": model.state_dict()}, buffer)
    return buffer.getvalue()
