"""Run folders (core/run_folder.py, core/run_logger.py): written by one process, followed by another."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from clipvae_studio.core.run_folder import RunFolderError, RunFolderWriter, RunReader

ROOT = Path(__file__).resolve().parent.parent

# A writer in another process, driven line by line through stdin; it answers "ok" after each command.
WRITER = r"""
import sys
from clipvae_studio.core.run_folder import RunFolderWriter
writer = None
for line in sys.stdin:
    command, *args = line.split()
    if command == "open":
        writer = RunFolderWriter(sys.argv[1])
        writer.start(int(args[0]))
    elif command == "steps":
        for step in range(int(args[0]), int(args[1]) + 1):
            writer.append({"kind": "step", "step": step, "attempt": writer.attempt, "losses": {"total": 1.0 / step}})
    elif command == "cut":  # half a record, as a writer killed mid-line leaves it
        writer._metrics.write('{"kind":"step","step":9')
        writer._metrics.flush()
    print("ok", flush=True)
"""


class Writer:
    def __init__(self, folder):
        self.process = subprocess.Popen([sys.executable, "-c", WRITER, str(folder)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})

    def __call__(self, command: str) -> None:
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        assert self.process.stdout.readline().strip() == "ok"  # waits for the write to be done

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()


def test_reader_follows_another_process_and_hides_records_orphaned_by_a_restart(tmp_path):
    folder = tmp_path / "run"
    first = Writer(folder)
    first("open 0")
    first("steps 1 3")
    reader = RunReader(folder)
    update = reader.poll()
    assert [r["step"] for r in update.records] == [1, 2, 3] and update.rewind_to is None
    first("steps 4 5")
    first("cut")
    update = reader.poll()  # only what was appended since the last poll; the cut line is not complete yet
    assert [r["step"] for r in update.records] == [4, 5]
    assert reader.poll().records == []
    first.kill()

    second = Writer(folder)  # a restart that resumes from a checkpoint at step 3
    second("open 3")
    second("steps 4 6")
    update = reader.poll()
    assert update.rewind_to == 3  # steps 4 and 5 of attempt 0 are orphaned: drop them, then append
    assert [(r["step"], r["attempt"]) for r in update.records] == [(4, 1), (5, 1), (6, 1)]
    assert [(r["step"], r["attempt"]) for r in reader.records()] == [(1, 0), (2, 0), (3, 0), (4, 1), (5, 1), (6, 1)]
    assert reader.skipped_lines == 1  # the cut line, closed by the second writer, never merged with a record
    second.kill()

    fresh = RunReader(folder)  # a reader that opens the folder later sees the same run
    fresh.poll()
    assert fresh.records() == reader.records()
    lines = (folder / "metrics.jsonl").read_text().splitlines()
    assert [line for line in lines if '"step":9' in line] == ['{"kind":"step","step":9']
    for line in lines:
        if '"step":9' not in line:
            json.loads(line)  # every other line is whole


def test_checkpoints_status_and_the_newest_checkpoint(tmp_path):
    from distributed_helpers import tiny_config, tiny_dataset

    from clipvae_studio.core.checkpoint import load_checkpoint
    from clipvae_studio.core.run_logger import RunLogger
    from clipvae_studio.core.trainer import Trainer

    trainer = Trainer(tiny_config(eval_every_steps=4), tiny_dataset(), eval_size=None, num_threads=1)
    RunFolderWriter(tmp_path).start(0)  # attempt 0, killed before its first checkpoint
    (tmp_path / ".last.pt.abc.tmp").write_bytes(b"left by a killed writer")
    writer = RunFolderWriter(tmp_path, keep_checkpoints=2)  # a new attempt clears it
    assert not list(tmp_path.glob(".*.tmp"))
    logger = RunLogger(writer, trainer, checkpoint_every=3, tensorboard=False)
    trainer.add_listener(logger)
    reader = RunReader(tmp_path)
    trainer.run(max_steps=7)
    logger.finish(trainer.state)
    update = reader.poll()
    assert update.checkpoint is not None and update.checkpoint.step == 7
    assert load_checkpoint(update.checkpoint.path).step == 7
    assert sorted(p.name for p in tmp_path.glob("step-*.pt")) == ["step-00000006.pt", "step-00000007.pt"]
    assert [r["step"] for r in reader.records("step")] == list(range(1, 8))
    assert [r["step"] for r in reader.records("eval")] == [4, 7]
    assert set(reader.records("step")[0]["losses"]) >= {"total", "clip", "rec_image", "prior_mmd"}
    status = reader.status()
    assert status["state"] == "finished" and status["step"] == 7 and status["pid"] == os.getpid()
    assert status["attempt"] == 1
    assert reader.poll().checkpoint is None  # unchanged since the last poll
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_folder_in_use_by_a_live_process_is_refused(tmp_path):
    writer = RunFolderWriter(tmp_path)
    writer.set_status("running")
    status = json.loads((tmp_path / "status.json").read_text())
    status["pid"] = os.getppid()  # another live process on this host
    (tmp_path / "status.json").write_text(json.dumps(status))
    with pytest.raises(RunFolderError, match="in use"):
        RunFolderWriter(tmp_path)
    with pytest.raises(RunFolderError, match="no such folder"):
        RunReader(tmp_path / "missing")


def test_cli_run_dir_resumes_and_writes_tensorboard_events(tmp_path, capsys):
    from clipvae_studio.cli import main

    folder = tmp_path / "run"
    args = ["train", "--preset", "reference", "--set", "width=16", "--set", "depth=1", "--set", "batch_size=512",
            "--set", "eval_every_steps=7", "--set", "snapshot_every_s=1000", "--quiet", "--device", "cpu", "--run-dir", str(folder),
            "--checkpoint-every", "5"]
    assert main(args + ["--epochs", "1"]) == 0
    assert main(args + ["--epochs", "2"]) == 0
    assert f"resuming from {folder / 'last.pt'} at step 7" in capsys.readouterr().err
    reader = RunReader(folder)
    reader.poll()
    assert [r["step"] for r in reader.records("step")] == list(range(1, 15))
    assert reader.status()["state"] == "finished" and reader.newest_checkpoint().step == 14
    assert json.loads((folder / "config.json").read_text())["config"]["epochs"] == 2
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder / "tb"))
    events.Reload()
    assert [e.step for e in events.Scalars("loss/total")] == list(range(1, 15))
    assert [e.step for e in events.Scalars("eval/zero_shot_accuracy")] == [7, 14]
