"""Run folders: what a training run leaves on disk, written by one process, read by any other.

    config.json     the TrainConfig and how the run was started
    metrics.jsonl   one JSON record per line: "start" at each attempt, "step", "eval"
    last.pt         the newest checkpoint (always a complete file: written aside, then renamed)
    step-NNNNNNNN.pt  periodic checkpoints (the newest few are kept)
    status.json     state, step, attempt, pid, host, ... (rewritten atomically)
    tb/             TensorBoard event files, when the optional `tensorboard` package is installed

metrics.jsonl is append-only. A restarted attempt resumes at its checkpoint's step and writes a
"start" record naming that step; the records an earlier attempt wrote after it are orphaned, and
RunReader hides them. A line cut short by a killed writer is closed with a newline before the next
attempt appends, so it never merges with a good record; readers skip it.

No Qt here: RunReader.poll() is what a window (or a script) calls on a timer.
"""
from __future__ import annotations

import json
import os
import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

CONFIG, METRICS, STATUS, LAST = "config.json", "metrics.jsonl", "status.json", "last.pt"
PERIODIC_PATTERN = "step-{:08d}.pt"


class RunFolderError(ValueError):
    """A folder cannot be used as a run folder; the message says why."""


def write_json_atomic(path: Path, data: dict) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def read_json(path: Path) -> dict:
    try:
        with open(path) as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


# --- writing ------------------------------------------------------------------------------
class RunFolderWriter:
    """The one writer of a run folder (rank 0 of a distributed run)."""

    def __init__(self, path, keep_checkpoints: int = 3):
        self.path = Path(path)
        self.keep_checkpoints = max(0, int(keep_checkpoints))
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunFolderError(f"cannot create run folder {self.path}: {exc.strerror or exc}") from None
        if not self.path.is_dir():
            raise RunFolderError(f"{self.path} is not a folder")
        previous = read_json(self.path / STATUS)
        if (previous.get("state") == "running" and previous.get("host") == socket.gethostname()
                and isinstance(previous.get("pid"), int) and previous["pid"] != os.getpid()
                and _pid_alive(previous["pid"])):
            raise RunFolderError(f"{self.path} is in use: process {previous['pid']} is training into it")
        self.attempt = int(previous.get("attempt", -1)) + 1
        self._remove_stale_temporaries()
        self._close_cut_line()
        self._metrics = open(self.path / METRICS, "a", encoding="utf-8")
        self.status: dict = {}

    @property
    def last_checkpoint(self) -> Path | None:
        path = self.path / LAST
        return path if path.is_file() else None

    def _remove_stale_temporaries(self) -> None:
        """Temporary files of a writer that was killed mid-write (checkpoints, status)."""
        for tmp in self.path.glob(".*.tmp"):
            try:
                tmp.unlink()
            except OSError:
                pass

    def _close_cut_line(self) -> None:
        path = self.path / METRICS
        if path.is_file() and path.stat().st_size:
            with open(path, "rb+") as fh:
                fh.seek(-1, os.SEEK_END)
                if fh.read(1) != b"\n":
                    fh.write(b"\n")

    # records ---------------------------------------------------------------------------
    def append(self, record: dict) -> None:
        """One line per record, written with one call and flushed: another process may be reading."""
        self._metrics.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._metrics.flush()

    def write_config(self, config: dict) -> None:
        write_json_atomic(self.path / CONFIG, config)

    def start(self, step: int, **info) -> None:
        self.append({"kind": "start", "attempt": self.attempt, "step": int(step), "time": time.time(), **info})
        self.set_status("running", step=int(step), **info)

    def set_status(self, state: str, **fields) -> None:
        self.status.update(fields)
        self.status.update(state=state, attempt=self.attempt, pid=os.getpid(), host=socket.gethostname(),
                           updated=time.time())
        write_json_atomic(self.path / STATUS, self.status)

    # checkpoints ---------------------------------------------------------------------------
    def save_checkpoint(self, trainer) -> Path:
        """step-N.pt (periodic, the newest keep_checkpoints kept) and last.pt, each complete on disk."""
        from .checkpoint import save_trainer

        step = trainer.step_count
        last = self.path / LAST
        if not self.keep_checkpoints:
            save_trainer(last, trainer)
        else:
            periodic = save_trainer(self.path / PERIODIC_PATTERN.format(step), trainer)
            self._publish_as_last(periodic, last)
            for old in sorted(self.path.glob("step-*.pt"))[:-self.keep_checkpoints]:
                try:
                    old.unlink()
                except OSError:
                    pass
        self.set_status(self.status.get("state", "running"), step=step, checkpoint=LAST, checkpoint_step=step)
        return last

    def _publish_as_last(self, source: Path, last: Path) -> None:
        fd, tmp = tempfile.mkstemp(prefix=f".{last.name}.", suffix=".tmp", dir=self.path)
        os.close(fd)
        try:
            os.unlink(tmp)
            try:
                os.link(source, tmp)  # no second copy of the bytes where the file system allows
            except OSError:
                import shutil

                shutil.copyfile(source, tmp)
            os.replace(tmp, last)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    def close(self) -> None:
        if not self._metrics.closed:
            self._metrics.close()


# --- reading ------------------------------------------------------------------------------
@dataclass
class CheckpointInfo:
    path: Path
    step: int | None  # from status.json, when it names this checkpoint
    mtime_ns: int
    size: int

    @property
    def key(self) -> tuple:
        return (self.mtime_ns, self.size)


@dataclass
class RunUpdate:
    """What changed since the previous poll. Apply in order: first drop every record held with
    step > rewind_to (when not None; -1 means drop everything), then append `records`."""
    records: list[dict] = field(default_factory=list)
    rewind_to: int | None = None
    checkpoint: CheckpointInfo | None = None  # set when a newer checkpoint appeared
    status: dict = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.records) or self.rewind_to is not None or self.checkpoint is not None


class RunReader:
    """Follows a run folder that another process writes: poll() reads only what was appended since
    the last poll (by byte offset), hides records orphaned by a restart, and reports a newer
    checkpoint. Works on shared folders too (no file-change notification needed)."""

    def __init__(self, path):
        self.path = Path(path)
        if not self.path.is_dir():
            raise RunFolderError(f"{self.path}: no such folder")
        if not (self.path / METRICS).exists() and not (self.path / CONFIG).exists():
            raise RunFolderError(f"{self.path}: not a run folder (no {METRICS} or {CONFIG})")
        self._offset = 0
        self._records: list[dict] = []
        self._checkpoint_key: tuple | None = None
        self.skipped_lines = 0

    @property
    def config(self) -> dict:
        return read_json(self.path / CONFIG)

    def status(self) -> dict:
        status = read_json(self.path / STATUS)
        if status.get("state") == "running" and status.get("host") == socket.gethostname() \
                and isinstance(status.get("pid"), int):
            status["alive"] = _pid_alive(status["pid"])
        return status

    def records(self, kind: str | None = None) -> list[dict]:
        """Every visible record read so far (call poll() first), optionally of one kind."""
        return [r for r in self._records if kind is None or r.get("kind") == kind]

    def newest_checkpoint(self) -> CheckpointInfo | None:
        path = self.path / LAST
        try:
            stat = path.stat()
        except OSError:
            return None
        status = read_json(self.path / STATUS)
        step = status.get("checkpoint_step") if status.get("checkpoint") == LAST else None
        return CheckpointInfo(path, step, stat.st_mtime_ns, stat.st_size)

    def poll(self) -> RunUpdate:
        update = RunUpdate(status=self.status())
        new, rewind = self._read_new()
        if rewind is not None:
            update.rewind_to = rewind
        update.records = new
        checkpoint = self.newest_checkpoint()
        if checkpoint is not None and checkpoint.key != self._checkpoint_key:
            self._checkpoint_key = checkpoint.key
            update.checkpoint = checkpoint
        return update

    def _read_new(self) -> tuple[list[dict], int | None]:
        path = self.path / METRICS
        try:
            size = path.stat().st_size
        except OSError:
            return [], None
        rewind = None
        if size < self._offset:  # replaced or truncated: start over
            self._offset, self._records, rewind = 0, [], -1
        if size == self._offset:
            return [], rewind
        with open(path, "rb") as fh:
            fh.seek(self._offset)
            chunk = fh.read(size - self._offset)
        end = chunk.rfind(b"\n") + 1  # a line still being written waits for the next poll
        self._offset += end
        new: list[dict] = []
        for line in chunk[:end].splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                self.skipped_lines += 1  # cut short by a killed writer
                continue
            if not isinstance(record, dict) or "step" not in record:
                self.skipped_lines += 1
                continue
            if record.get("kind") == "start":
                step = record["step"]
                if any(r["step"] > step for r in self._records):
                    rewind = step if rewind is None else min(rewind, step)
                self._records = [r for r in self._records if r["step"] <= step]
                new = [r for r in new if r["step"] <= step]
                continue
            self._records.append(record)
            new.append(record)
        return new, rewind
