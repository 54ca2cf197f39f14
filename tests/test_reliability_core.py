"""Reliability of the Qt-free core: autosave and crash recovery, saves that never destroy,
hostile or damaged checkpoints, missing devices, divergence roll-back."""
import errno
import os
import pickle
import zipfile
from pathlib import Path

import pytest
import torch

from clipvae_studio.core import CLIPVAE, Trainer, preset, resolve_device
from clipvae_studio.core.autosave import AutosaveSession, find_recoveries, restore_trainer
from clipvae_studio.core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint, save_trainer
from clipvae_studio.core.device import DeviceError
from clipvae_studio.core.events import ErrorEvent, StepEvent



def tiny(**changes):
    return preset("studio").with_values(width=16, depth=1, snapshot_size=100, eval_every_steps=10**6, **changes)


@pytest.fixture
def trained(mnist5k):
    trainer = Trainer(tiny(), mnist5k, eval_size=100)
    trainer.run(max_steps=15)
    return trainer


def _same_optimizer_state(a: dict, b: dict) -> bool:
    if a["param_groups"] != b["param_groups"] or a["state"].keys() != b["state"].keys():
        return False
    # .cpu(): checkpoints hold CPU tensors while a restored trainer may live on a GPU
    return all(torch.equal(torch.as_tensor(a["state"][i][k]).cpu(), torch.as_tensor(b["state"][i][k]).cpu())
               for i in a["state"] for k in a["state"][i])


# --- autosave and recovery ----------------------------------------------------------
def test_autosave_is_timed_and_a_clean_exit_leaves_nothing(trained, tmp_path):
    now = [0.0]
    session = AutosaveSession(tmp_path, interval_s=120, clock=lambda: now[0]).begin()
    assert session.maybe_save(trained) is None and not session.checkpoint.exists()
    now[0] = 119.0
    assert session.maybe_save(trained) is None
    now[0] = 120.0
    assert session.maybe_save(trained) == session.checkpoint and session.checkpoint.is_file()
    assert session.maybe_save(trained) is None  # the clock restarts at every save
    assert find_recoveries(tmp_path) == []  # a live session is never offered, even to its own process
    session.end()
    assert list(tmp_path.iterdir()) == []
    assert find_recoveries(tmp_path) == []


def test_crashed_session_is_found_and_resumes_exactly(mnist5k, tmp_path):
    # A session trains, autosaves and dies: its lock is released without end(). (The GUI test
    # SIGKILLs a real studio process; here another process's death is imitated by its token.)
    trainer = Trainer(tiny(), mnist5k, eval_size=100)
    crashed = AutosaveSession(tmp_path, interval_s=3600).begin()
    trainer.run(max_steps=12)
    crashed.save(trainer, meta={"dataset_source": ["mnist5k", None]})
    crashed._lock_file.close()
    crashed.lock_path.write_text('{"pid": 999999, "token": "a process that is gone"}')
    del trainer

    live = AutosaveSession(tmp_path).begin()  # this launch's own session must not be offered
    found = find_recoveries(tmp_path)
    assert len(found) == 1 and found[0].checkpoint.is_file()
    assert found[0].pid == 999999
    assert found[0].meta == {"dataset_source": ["mnist5k", None]}
    saved = torch.load(found[0].checkpoint, weights_only=True)

    trainer = restore_trainer(found[0].checkpoint, mnist5k, eval_size=100)
    assert trainer.step_count == saved["step"] == 12
    assert trainer.history["total"] == saved["history"]["total"] and len(trainer.history["total"]) == 12
    assert _same_optimizer_state(trainer.optimizer.state_dict(), saved["optimizer"])
    for key, value in saved["model"].items():
        assert torch.equal(trainer.model.state_dict()[key].cpu(), value), key
    # ... and it trains on from there
    trainer.run(max_steps=3)
    assert trainer.step_count == 15 and len(trainer.history["total"]) == 15

    # Adopting keeps the file recoverable until the new session saves its own.
    live.adopt(found[0])
    assert live.checkpoint.is_file() and not found[0].lock.exists()
    assert find_recoveries(tmp_path) == []
    live.end()
    assert list(tmp_path.iterdir()) == []


def test_which_leftovers_count_as_crashes(trained, tmp_path):
    # crashed before its first autosave: nothing to offer, tidied away
    (tmp_path / "session-999999-dead.lock").write_text('{"pid": 999999}')
    assert find_recoveries(tmp_path) == []
    assert list(tmp_path.iterdir()) == []
    # a window of this very process dropped without closing (its lock released): not a crash
    dropped = AutosaveSession(tmp_path).begin()
    dropped.save(trained)
    dropped._lock_file.close()
    assert find_recoveries(tmp_path) == []
    assert list(tmp_path.iterdir()) == []
    # a crashed process whose pid this process happens to have again (pid reuse): still a crash
    save_trainer(tmp_path / "recovery-reused.pt", trained)
    (tmp_path / "session-reused.lock").write_text(f'{{"pid": {os.getpid()}, "token": "another process"}}')
    found = find_recoveries(tmp_path)
    assert [r.checkpoint.name for r in found] == ["recovery-reused.pt"] and found[0].meta == {}
    found[0].discard()
    assert list(tmp_path.iterdir()) == []


def test_failing_autosave_keeps_the_previous_recovery_and_training_goes_on(trained, tmp_path, monkeypatch):
    session = AutosaveSession(tmp_path).begin()
    session.save(trained)
    before = session.checkpoint.read_bytes()
    trained.run(max_steps=2)

    def full_disk(obj, fh, *args, **kwargs):
        fh.write(b"\0" * 1000)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    assert session.save(trained) is None
    assert "No space left" in session.last_error
    assert session.checkpoint.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [session.checkpoint.name, session.checkpoint.with_suffix(".json").name, session.lock_path.name])
    monkeypatch.undo()
    assert session.save(trained) == session.checkpoint and session.last_error is None
    assert load_checkpoint(session.checkpoint).step == trained.step_count
    session.end()


# --- saving never destroys --------------------------------------------------------------
def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_save_into_read_only_folder_fails_cleanly(tmp_path, monkeypatch):
    model = CLIPVAE((1, 8, 8), 2, width=8, depth=1)
    folder = tmp_path / "ro"
    folder.mkdir()
    path = save_checkpoint(folder / "m.pt", model, preset("studio"))
    before = path.read_bytes()
    torch.nn.init.ones_(model.image_decoder.stem.weight)
    folder.chmod(0o555)
    if os.geteuid() == 0:
        # root writes through permission bits; make the kernel's answer for a read-only folder explicit
        import tempfile

        def denied(*args, **kwargs):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(folder))

        monkeypatch.setattr(tempfile, "mkstemp", denied)
    try:
        with pytest.raises(CheckpointError, match="Permission denied"):
            save_checkpoint(path, model, preset("studio"))
    finally:
        folder.chmod(0o755)
    assert path.read_bytes() == before
    assert _files(folder) == ["m.pt"]


def test_write_failure_midway_keeps_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    model = CLIPVAE((1, 8, 8), 2, width=8, depth=1)
    path = save_checkpoint(tmp_path / "m.pt", model, preset("studio"))
    before = path.read_bytes()
    real_save = torch.save

    def fails_after_some_bytes(obj, fh, *args, **kwargs):
        real_save(obj, fh, *args, **kwargs)  # the whole payload goes out ...
        fh.truncate(len(before) // 3)  # ... but the disk fills up a third of the way in
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", fails_after_some_bytes)
    with pytest.raises(CheckpointError, match="untouched"):
        save_checkpoint(path, model, preset("studio"))
    assert path.read_bytes() == before
    assert _files(tmp_path) == ["m.pt"]

    def fails_on_rename(src, dst):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(torch, "save", real_save)
    monkeypatch.setattr(os, "replace", fails_on_rename)
    with pytest.raises(CheckpointError, match="Input/output error"):
        save_checkpoint(path, model, preset("studio"))
    assert path.read_bytes() == before
    assert _files(tmp_path) == ["m.pt"]
    monkeypatch.undo()
    with pytest.raises(CheckpointError, match="does not exist"):
        save_checkpoint(tmp_path / "missing" / "m.pt", model, preset("studio"))


# --- bad checkpoint files -------------------------------------------------------------
class _CreatesFile:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


class _RunsShell:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


def _studio_file(tmp_path, name="good.pt"):
    return save_checkpoint(tmp_path / name, CLIPVAE((1, 8, 8), 3, width=8, depth=1), preset("studio"))


def test_malicious_pickles_are_refused_and_never_run(tmp_path):
    target = tmp_path / "pwned"
    payloads = {
        "torch-zip-open.pt": lambda p: torch.save({"model": _CreatesFile(str(target))}, p),
        "torch-zip-system.pt": lambda p: torch.save({"format": "clipvae-studio", "x": _RunsShell(target)}, p),
        "torch-legacy.pt": lambda p: torch.save(_CreatesFile(str(target)), p, _use_new_zipfile_serialization=False),
        "raw-pickle-2.pt": lambda p: p.write_bytes(pickle.dumps(_RunsShell(target), protocol=2)),
        "raw-pickle-5.pt": lambda p: p.write_bytes(pickle.dumps(_CreatesFile(str(target)), protocol=5)),
    }
    for name, write in payloads.items():
        path = tmp_path / name
        write(path)
        assert not target.exists()
        with pytest.raises(CheckpointError) as info:
            load_checkpoint(path)
        assert not target.exists(), f"{name} ran code"
        message = str(info.value)
        assert message.startswith(name) and "refused" in message and "\n" not in message
    with pytest.raises(CheckpointError, match=r"asks for \S*system, which could run code"):
        load_checkpoint(tmp_path / "torch-zip-system.pt")


def test_corrupt_truncated_and_foreign_files_get_clear_messages(tmp_path):
    good = _studio_file(tmp_path)
    data = good.read_bytes()
    cases = {
        "empty.pt": (b"", "it is empty"),
        "notes.pt": (b"just some notes\n", "not a PyTorch file"),
        "random.pt": (bytes(range(7, 250)) * 20, "truncated or corrupt"),
        "half.pt": (data[: len(data) // 2], "truncated or corrupt"),
        "tail-cut.pt": (data[:-200], "truncated or corrupt"),
        "flipped.pt": (data[:200] + bytes(b ^ 0xFF for b in data[200:400]) + data[400:], "truncated or corrupt"),
    }
    for name, (content, expected) in cases.items():
        (tmp_path / name).write_bytes(content)
    not_torch = tmp_path / "archive.pt"
    with zipfile.ZipFile(not_torch, "w") as z:
        z.writestr("readme.txt", "a zip, but not torch")
    cases["archive.pt"] = (None, "truncated or corrupt")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "dict.pt")
    cases["list.pt"] = cases["dict.pt"] = (None, "not a CLIP-VAE checkpoint")
    for name, (_, expected) in cases.items():
        with pytest.raises(CheckpointError) as info:
            load_checkpoint(tmp_path / name)
        message = str(info.value)
        assert message.startswith(name) and expected in message and "\n" not in message, message
    with pytest.raises(CheckpointError, match="no such file"):
        load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match="is a folder, not a checkpoint file"):
        load_checkpoint(tmp_path)  # a folder


def test_damaged_studio_headers_are_refused_without_allocating(tmp_path):
    good = torch.load(_studio_file(tmp_path), weights_only=True)

    def variant(name, **changes):
        data = dict(good, **changes)
        torch.save(data, tmp_path / name)
        return tmp_path / name

    huge = dict(good["architecture"], width=10**9)  # would need terabytes if built for real
    cases = {
        variant("huge.pt", architecture=huge): "do not fit",
        variant("negative.pt", architecture=dict(good["architecture"], num_labels=-3)): "damaged",
        variant("no-arch.pt", architecture=None): "damaged",
        variant("list-weights.pt", model=[1, 2]): "damaged",
        variant("wrong-shape.pt", model=dict(good["model"], logit_scale=torch.zeros(4))): "logit_scale",
        variant("nan.pt", model=dict(good["model"], logit_scale=torch.tensor(float("nan")))): "NaN",
        variant("bad-step.pt", step="twelve"): "damaged",
        variant("bad-history.pt", history=[1, 2]): "damaged",
        variant("bad-optim.pt", optimizer={"state": {}, "param_groups": [{"params": [0, 1]}]}): "optimiser",
    }
    for path, expected in cases.items():
        with pytest.raises(CheckpointError, match=expected):
            load_checkpoint(path)


def test_architecture_and_image_shape_mismatches(mnist5k, tmp_path):
    rgb = save_checkpoint(tmp_path / "rgb.pt", CLIPVAE((3, 8, 8), 10, width=8, depth=1), preset("studio"))
    with pytest.raises(CheckpointError, match="shape 3x8x8 but the dataset has 1x28x28"):
        load_checkpoint(rgb, mnist5k.image_shape, mnist5k.num_labels)
    with pytest.raises(CheckpointError, match="3x8x8"):
        restore_trainer(rgb, mnist5k)
    other = CLIPVAE((1, 8, 8), 3, width=8, depth=2)
    good = torch.load(_studio_file(tmp_path), weights_only=True)
    torch.save(dict(good, model=other.state_dict()), tmp_path / "deeper.pt")
    with pytest.raises(CheckpointError, match="do not fit the architecture"):
        load_checkpoint(tmp_path / "deeper.pt")


# --- devices ------------------------------------------------------------------------------------
def test_auto_device_falls_back_to_cpu_silently(monkeypatch, recwarn):
    import clipvae_studio.core.device as device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(device, "mps_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert len(recwarn) == 0
    with pytest.raises(DeviceError, match="CUDA was requested"):
        resolve_device("cuda")
    with pytest.raises(DeviceError, match="MPS"):
        resolve_device("mps")
    with pytest.raises(DeviceError, match="unknown device"):
        resolve_device("tpu")


def test_cli_train_on_missing_cuda_exits_2_with_one_line(monkeypatch, capsys):
    from clipvae_studio.cli import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code = main(["train", "--device", "cuda", "--quiet", "--time-budget", "1"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and "CUDA was requested" in err and "Traceback" not in err


# --- divergence ---------------------------------------------------------------------------------
def test_divergence_rolls_back_to_last_finite_weights_and_training_continues(mnist5k):
    events = []
    trainer = Trainer(tiny(lr=1e3), mnist5k, listener=events.append, eval_size=100)
    good_states = {}  # step -> weights, recorded at every roll-back point the trainer keeps

    def remember(event):
        if isinstance(event, StepEvent) and event.step % 20 == 0:
            good_states[trainer.step_count] = {k: v.clone() for k, v in trainer.model.state_dict().items()}

    good_states[0] = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.add_listener(remember)
    summary = trainer.run(max_steps=400)
    errors = [e for e in events if isinstance(e, ErrorEvent)]
    assert summary["state"] == "error" and len(errors) == 1
    restored = errors[0].restored_step
    assert restored == trainer.step_count and restored in good_states
    for key, value in trainer.model.state_dict().items():
        assert torch.isfinite(value).all() and torch.equal(value, good_states[restored][key]), key
    assert trainer.history["step"][-1:] in ([restored], []) and len(trainer.history["total"]) == restored

    # Training goes on from the rolled-back weights once the learning rate is sane again.
    trainer.config = trainer.config.with_values(lr=1e-3)
    events.clear()
    summary = trainer.run(max_steps=30)
    assert summary["state"] == "finished" and not [e for e in events if isinstance(e, ErrorEvent)]
    assert trainer.step_count == restored + 30
    assert all(torch.isfinite(torch.tensor(trainer.history["total"])))
    # and what it saves from there is a good checkpoint
    path = save_trainer(Path(os.environ["CLIPVAE_STUDIO_HOME"]) / "after-divergence.pt", trainer)
    assert load_checkpoint(path).step == trainer.step_count
