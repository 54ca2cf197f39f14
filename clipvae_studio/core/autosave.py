"""Recovery checkpoints: autosave while training, and what a crashed session left behind.

Each running session (one studio window) owns two files in paths.recovery_dir():

    session-<id>.lock   held open with an exclusive lock for as long as the session lives
    recovery-<id>.pt    the latest autosave (an ordinary checkpoint, written atomically)
    recovery-<id>.json  what the caller wants back with it (e.g. where the dataset came from)

A clean exit removes both. The operating system drops the lock when a process dies, even by
SIGKILL or power loss, so a lock file that nobody holds marks a session that crashed; its
checkpoint is offered back at the next launch. No Qt here: the GUI drives this with a timer.
"""
from __future__ import annotations

import json
import os
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from .checkpoint import CheckpointError, load_checkpoint, save_trainer
from .paths import recovery_dir

try:  # POSIX: an flock dies with its process, which is exactly "did the session end?"
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

DEFAULT_INTERVAL_S = 120.0  # autosave every two minutes of a running session
INTERVAL_ENV = "CLIPVAE_STUDIO_AUTOSAVE_S"  # lets tests and impatient users shorten it
# Process ids are reused (in a container the next launch may well get the crashed one's pid), so
# each process also marks its sessions with a random token.
PROCESS_TOKEN = uuid.uuid4().hex


def autosave_interval() -> float:
    """Seconds between autosaves: $CLIPVAE_STUDIO_AUTOSAVE_S, else two minutes."""
    try:
        value = float(os.environ.get(INTERVAL_ENV, DEFAULT_INTERVAL_S))
    except ValueError:
        return DEFAULT_INTERVAL_S
    return value if value > 0 else DEFAULT_INTERVAL_S


@dataclass
class Recovery:
    """A checkpoint left by a session that did not end cleanly."""
    checkpoint: Path
    lock: Path
    pid: int | None
    started: float | None  # time.time() when the crashed session began
    meta: dict  # what the crashed session passed to save(meta=...)

    @property
    def saved_at(self) -> float:
        return self.checkpoint.stat().st_mtime

    def load(self, image_shape=None, num_labels=None):
        """The checkpoint (raises CheckpointError if the crash damaged it, which atomic saves prevent)."""
        return load_checkpoint(self.checkpoint, image_shape, num_labels)

    def discard(self) -> None:
        for path in (self.checkpoint, _meta_path(self.checkpoint), self.lock):
            _unlink(path)


class AutosaveSession:
    """Autosave for one training session; use begin() at start-up and end() on a clean exit."""

    def __init__(self, folder=None, interval_s: float | None = None, clock=time.monotonic):
        self.folder = Path(folder) if folder is not None else recovery_dir()
        self.interval_s = float(interval_s) if interval_s else autosave_interval()
        self.id = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.lock_path = self.folder / f"session-{self.id}.lock"
        self.checkpoint = self.folder / f"recovery-{self.id}.pt"
        self.last_error: str | None = None  # why the last save failed (shown once by the GUI)
        self.saves = 0
        self._clock = clock
        self._last_save = clock()
        self._lock_file = None

    # --- life cycle --------------------------------------------------------------
    def begin(self) -> "AutosaveSession":
        self.folder.mkdir(parents=True, exist_ok=True)
        fh = open(self.lock_path, "w", encoding="utf-8")
        if fcntl is not None:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # no locks on this file system: others will see the session as alive
                pass
        json.dump({"pid": os.getpid(), "token": PROCESS_TOKEN, "host": socket.gethostname(),
                   "started": time.time()}, fh)
        fh.flush()
        self._lock_file = fh
        self._last_save = self._clock()
        return self

    def end(self) -> None:
        """A clean exit: nothing to recover next time."""
        for path in (self.checkpoint, _meta_path(self.checkpoint), self.lock_path):
            _unlink(path)
        if self._lock_file is not None:
            self._lock_file.close()  # closing releases the lock
            self._lock_file = None

    def release(self) -> None:
        """End the session but keep its recovery files: the next launch offers them back (used
        when the window closes with unsaved training)."""
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    @property
    def active(self) -> bool:
        return self._lock_file is not None

    def __enter__(self) -> "AutosaveSession":
        return self.begin()

    def __exit__(self, *exc) -> None:
        self.end()

    # --- saving ------------------------------------------------------------------
    def due(self) -> bool:
        return self._clock() - self._last_save >= self.interval_s

    def save(self, trainer, dataset_name: str | None = None, meta: dict | None = None) -> Path | None:
        """Write the recovery checkpoint now. A failure (full disk...) is kept in last_error,
        never raised: autosave must not take training down with it, and the previous
        recovery file stays intact because checkpoints are written atomically.
        `meta` (plain JSON data) comes back as Recovery.meta."""
        self._last_save = self._clock()
        try:
            save_trainer(self.checkpoint, trainer, dataset_name)
            _write_json(_meta_path(self.checkpoint), meta or {})
        except CheckpointError as exc:
            self.last_error = str(exc)
            return None
        self.last_error = None
        self.saves += 1
        return self.checkpoint

    def maybe_save(self, trainer, dataset_name: str | None = None, meta: dict | None = None) -> Path | None:
        """Save if the interval has passed since the last save."""
        return self.save(trainer, dataset_name, meta) if self.due() else None

    def adopt(self, recovery: Recovery) -> None:
        """Take over a crashed session's checkpoint as this session's recovery file, so that it
        stays recoverable until this session has saved its own (a second crash loses nothing)."""
        os.replace(recovery.checkpoint, self.checkpoint)
        _write_json(_meta_path(self.checkpoint), recovery.meta)
        _unlink(_meta_path(recovery.checkpoint))
        _unlink(recovery.lock)


def find_recoveries(folder=None) -> list[Recovery]:
    """Checkpoints of sessions that ended without end(), newest first. Live sessions (another
    open window) are left alone; crashed sessions that never saved are tidied away."""
    folder = Path(folder) if folder is not None else recovery_dir()
    found = []
    for lock in sorted(folder.glob("session-*.lock")):
        if _is_held(lock):
            continue
        session_id = lock.name[len("session-"):-len(".lock")]
        checkpoint = folder / f"recovery-{session_id}.pt"
        info = _read_json(lock)
        if not checkpoint.is_file() or info.get("token") == PROCESS_TOKEN:
            # never saved, or a window of this very process dropped without closing: not a crash
            for path in (checkpoint, _meta_path(checkpoint), lock):
                _unlink(path)
            continue
        found.append(Recovery(checkpoint, lock, info.get("pid"), info.get("started"),
                              _read_json(_meta_path(checkpoint))))
    found.sort(key=lambda r: r.saved_at, reverse=True)
    return found


def _is_held(lock: Path) -> bool:
    if fcntl is None:  # pragma: no cover - without flock, trust only our own process id
        return _read_json(lock).get("pid") == os.getpid()
    try:
        with open(lock, "a", encoding="utf-8") as fh:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
            return False
    except OSError:
        return True  # unreadable: not ours to judge


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _meta_path(checkpoint: Path) -> Path:
    return checkpoint.with_suffix(".json")


def _write_json(path: Path, data: dict) -> None:
    """Atomically, like the checkpoint; a failure is reported as CheckpointError."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, path)
    except (OSError, TypeError, ValueError) as exc:
        _unlink(tmp)
        raise CheckpointError(f"cannot save to {path}: {exc}") from None


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def restore_trainer(checkpoint, dataset, **trainer_options):
    """A Trainer that continues exactly where the checkpoint stopped: same weights, optimiser
    state (AdamW moments), step counter and loss history."""
    from .trainer import Trainer

    ckpt = checkpoint if hasattr(checkpoint, "payload") else load_checkpoint(
        checkpoint, dataset.image_shape, dataset.num_labels)
    trainer = Trainer(ckpt.config, dataset, model=ckpt.model, **trainer_options)
    trainer.restore(ckpt.payload())
    return trainer
