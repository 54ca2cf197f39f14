"""TensorBoard event files for a run folder, when the optional `tensorboard` package is installed
(`pip install clipvae-studio[tensorboard]`); without it, nothing is written and nothing fails."""
from __future__ import annotations

import importlib.util
from pathlib import Path

FOLDER = "tb"  # inside the run folder: `tensorboard --logdir RUNS` shows every run under RUNS


def tensorboard_available() -> bool:
    return importlib.util.find_spec("tensorboard") is not None


class TensorBoardLog:
    """The scalars of metrics.jsonl under the same names: loss/<term>, eval/<metric>, speed, lr."""

    def __init__(self, run_dir, purge_step: int | None = None):
        from torch.utils.tensorboard import SummaryWriter

        # purge_step hides the events an interrupted attempt logged after the step it resumes from.
        self.writer = SummaryWriter(log_dir=str(Path(run_dir) / FOLDER), purge_step=purge_step, flush_secs=10)

    def scalars(self, prefix: str, values: dict, step: int, walltime: float | None = None) -> None:
        for name, value in values.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(f"{prefix}/{name}" if prefix else name, value, step, walltime=walltime)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def open_tensorboard(run_dir, purge_step: int | None = None) -> TensorBoardLog | None:
    """A TensorBoardLog, or None when the package is not installed."""
    return TensorBoardLog(run_dir, purge_step) if tensorboard_available() else None
