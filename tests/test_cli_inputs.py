"""Unusual command-line input (issue 22, "The command line"): every run that cannot end well is
refused with one line naming the cause, before any training; a run that diverges never exits 0
and never saves non-finite weights. Tiny generated data and models keep each test under a few seconds."""
import errno
import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from clipvae_studio.cli import main
from clipvae_studio.core import load_checkpoint, preset
from clipvae_studio.core.checkpoint import CheckpointError, save_checkpoint
from clipvae_studio.core.data import load_dataset
from clipvae_studio.core.idx import write_idx
from clipvae_studio.core.model import CLIPVAE
from clipvae_studio.core.trainer import Trainer

TINY = ["--set", "width=16", "--set", "depth=1", "--set", "z_dim=4", "--quiet"]


def _folder(root: Path, classes=("a", "b"), per_class=3, size=6, seed=0) -> Path:
    rng = np.random.default_rng(seed)
    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8)).save(root / name / f"{i}.png")
    return root


def _idx(folder: Path, images, labels, test=None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_idx(folder / "train-images-idx3-ubyte", images)
    write_idx(folder / "train-labels-idx1-ubyte", labels)
    if test is not None:
        write_idx(folder / "t10k-images-idx3-ubyte", test[0])
        write_idx(folder / "t10k-labels-idx1-ubyte", test[1])
    return folder


def _refused(argv, capsys, *words):
    """The command exits 2 with one line that contains every word."""
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    last = err.splitlines()[-1]
    for word in words:
        assert word in last, last
    return err


@pytest.fixture
def no_trainer(monkeypatch):
    """Fails the test if a Trainer (with its model and data on the device) is ever built: the
    refusals below must come before anything big is allocated or any step is trained."""
    def refuse(*args, **kwargs):
        raise AssertionError("a Trainer was built: the input was not refused first")
    monkeypatch.setattr(Trainer, "__init__", refuse)


@pytest.fixture
def eight_gib(monkeypatch):
    """The memory checks see 8 GiB free, whatever this machine has."""
    from clipvae_studio.core import validation

    monkeypatch.setattr(validation, "available_memory", lambda device: 8 * 2**30)


# --- 1. tracebacks ------------------------------------------------------------------------------------
def test_idx_images_of_zero_pixels_are_refused(tmp_path, capsys, no_trainer):
    data = _idx(tmp_path / "empty", np.zeros((6, 0, 0), np.uint8), np.arange(6, dtype=np.uint8) % 2)
    _refused(["train", "--dataset", "idx", "--data-dir", str(data), "--epochs", "1"], capsys, "0x0", "no pixels")


def test_unreadable_data_folder_class_folder_and_label_file_are_named(tmp_path, capsys, monkeypatch):
    # Root reads any file whatever its mode, so chmod cannot make one unreadable here: Path.iterdir
    # and Path.open (which read_text and read_bytes use) raise PermissionError for the chosen path.
    data = _folder(tmp_path / "shapes")
    idx = _idx(tmp_path / "idx", np.zeros((6, 4, 4), np.uint8), np.arange(6, dtype=np.uint8) % 2)
    (idx / "labels.txt").write_text("zero\none\n")
    locked: set[Path] = set()
    real_iterdir, real_open = Path.iterdir, Path.open

    def iterdir(self):
        if self in locked:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_iterdir(self)

    def open_(self, *args, **kwargs):
        if self in locked:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    monkeypatch.setattr(Path, "open", open_)
    folder_args = ["train", "--dataset", "folder", "--data-dir", str(data), "--epochs", "1", *TINY]
    for path in (data, data / "b"):
        locked = {path}
        _refused(folder_args, capsys, str(path), "Permission denied")
    locked = {idx}
    _refused(["train", "--dataset", "idx", "--data-dir", str(idx), "--epochs", "1", *TINY], capsys, "Permission denied")
    locked = {idx / "labels.txt"}
    _refused(["train", "--dataset", "idx", "--data-dir", str(idx), "--epochs", "1", *TINY], capsys,
             "labels.txt", "Permission denied")


@pytest.mark.parametrize("size", [1, 3])
def test_conv_on_images_smaller_than_its_kernel_is_refused(tmp_path, capsys, no_trainer, size):
    data = _folder(tmp_path / "tiny")
    _refused(["train", "--dataset", "folder", "--data-dir", str(data), "--image-size", str(size), "--epochs", "1",
              "--set", "arch=conv", "--set", "decoder_heads=false", *TINY], capsys, "arch 'conv' needs", "4x4")


def test_a_model_too_big_for_memory_is_refused_before_it_is_built(capsys, no_trainer, eight_gib):
    _refused(["train", "--set", "width=100000", "--epochs", "1", "--quiet"], capsys, "parameters", "GiB", "width")


def test_images_with_five_channels_are_refused_and_sample_never_tracebacks(tmp_path, capsys, no_trainer):
    data = _idx(tmp_path / "five", np.zeros((6, 4, 4, 5), np.uint8), np.arange(6, dtype=np.uint8) % 2)
    _refused(["train", "--dataset", "idx", "--data-dir", str(data), "--epochs", "1"], capsys, "5 channels")
    # a checkpoint of such a model (from an older version): sample says why it cannot write a PNG
    path = tmp_path / "five.pt"
    save_checkpoint(path, CLIPVAE((5, 4, 4), 2, z_dim=4, width=8, depth=1), preset("studio"))
    _refused(["sample", str(path), "--noise", "--n", "4", "--out", str(tmp_path / "x.png")], capsys, "5-channel")


# --- 2. hangs and silent kills ------------------------------------------------------------------------------
@pytest.mark.parametrize("budget", ["nan", "inf", "-1", "0"])
def test_time_budget_must_be_a_positive_number(capsys, no_trainer, budget):
    _refused(["train", "--time-budget", budget, "--quiet"], capsys, "--time-budget")


def test_huge_images_are_refused_before_the_model_is_built(tmp_path, capsys, no_trainer, eight_gib):
    data = _folder(tmp_path / "big", classes=("a",), per_class=2)
    _refused(["train", "--dataset", "folder", "--data-dir", str(data), "--image-size", "2048", "--epochs", "1",
              "--quiet"], capsys, "2048x2048", "at most 512")


# --- 3. non-finite weights ----------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["inf", "nan", "-inf"])
def test_non_finite_learning_rate_is_refused(capsys, no_trainer, value):
    _refused(["train", "--set", f"lr={value}", "--time-budget", "0.5", "--quiet"], capsys, "lr must be")


def test_a_run_that_diverges_in_its_last_steps_fails_and_saves_nothing(tmp_path, capsys):
    out = tmp_path / "m.pt"
    code = main(["train", "--set", "lr=1e10", "--time-budget", "0.3", "--out", str(out), *TINY])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "non-finite" in err and "lower the learning rate" in err.lower()
    if out.exists():  # a roll-back to finite weights may be saved, non-finite ones never
        load_checkpoint(out)


def test_the_last_step_is_checked_for_non_finite_weights(tmp_path):
    # Only the loss of each step was checked, before its update: an update that overflows the
    # weights at the last step of a run went unnoticed, and the NaN weights were kept.
    config = preset("studio").with_values(width=16, depth=1, z_dim=4, augment_px=1.0, batch_size=4)
    trainer = Trainer(config, load_dataset("folder", _folder(tmp_path / "d", per_class=6), image_size=6))
    errors = []
    trainer.add_listener(lambda event: errors.append(event) if type(event).__name__ == "ErrorEvent" else None)
    step = trainer.optimizer.step
    calls = []

    def poisoned_step(*args, **kwargs):
        step(*args, **kwargs)
        calls.append(1)
        if len(calls) == 3:
            with torch.no_grad():
                next(trainer.model.parameters()).fill_(float("nan"))

    trainer.optimizer.step = poisoned_step
    trainer.run(max_steps=3)
    assert trainer.state == "error" and errors and "weights became non-finite" in errors[0].message
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_non_finite_weights_are_never_written(tmp_path):
    model = CLIPVAE((1, 4, 4), 2, z_dim=4, width=8, depth=1)
    with torch.no_grad():
        model.logit_scale.fill_(float("inf"))
    with pytest.raises(CheckpointError, match="NaN or infinite"):
        save_checkpoint(tmp_path / "bad.pt", model, preset("studio"))
    assert list(tmp_path.iterdir()) == []


# --- 4. silent wrong results --------------------------------------------------------------------------------
def test_eval_of_a_folder_model_without_dataset_is_refused(tmp_path, capsys):
    # ten classes of 28x28 images: the same shape as the bundled digits, so it used to be scored on them
    data = _folder(tmp_path / "things", classes=[f"c{i}" for i in range(10)], per_class=2, size=28)
    out = tmp_path / "m.pt"
    assert main(["train", "--dataset", "folder", "--data-dir", str(data), "--epochs", "1", "--out", str(out), *TINY]) == 0
    capsys.readouterr()
    _refused(["eval", str(out)], capsys, "trained on 'things'", "--dataset folder")
    assert main(["eval", str(out), "--dataset", "folder", "--data-dir", str(data), "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["dataset"] == "things"


def test_epochs_zero_is_refused(tmp_path, capsys, no_trainer):
    _refused(["train", "--epochs", "0", "--quiet"], capsys, "--epochs must be at least 1")


def test_resume_onto_other_label_names_warns_and_takes_the_new_names(tmp_path, capsys):
    out = tmp_path / "m.pt"
    first = _folder(tmp_path / "first", classes=("a", "b"))
    second = _folder(tmp_path / "second", classes=("x", "y"), seed=1)
    assert main(["train", "--dataset", "folder", "--data-dir", str(first), "--image-size", "6", "--epochs", "1",
                 "--out", str(out), *TINY]) == 0
    capsys.readouterr()
    assert main(["train", "--dataset", "folder", "--data-dir", str(second), "--image-size", "6", "--epochs", "2",
                 "--resume", str(out), "--out", str(out), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "names its labels differently" in err and "'a' -> 'x'" in err
    assert load_checkpoint(out).label_names == ["x", "y"]


# --- 5. data loss ----------------------------------------------------------------------------------------------
def test_out_refuses_to_overwrite_a_file_that_is_not_a_checkpoint(tmp_path, capsys, monkeypatch):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    data = _folder(tmp_path / "d")
    argv = ["train", "--dataset", "folder", "--data-dir", str(data), "--image-size", "6", "--epochs", "1",
            "--out", str(notes), *TINY]
    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "__init__", lambda *a, **k: pytest.fail("trained before refusing"))
        _refused(argv, capsys, "not a CLIP-VAE checkpoint", "--force")
    assert notes.read_text() == "my notes"
    assert main(argv + ["--force"]) == 0
    load_checkpoint(notes)
    assert main(argv) == 0  # now a checkpoint: replacing it is what --out is for


def test_out_into_a_missing_or_read_only_folder_is_refused_before_training(tmp_path, capsys, monkeypatch, no_trainer):
    _refused(["train", "--epochs", "1", "--out", str(tmp_path / "missing" / "m.pt"), *TINY], capsys,
             "does not exist")
    # A read-only folder: root writes anyway, so the probe file's creation is made to fail as it would.
    locked = tmp_path / "locked"
    locked.mkdir()
    real_mkstemp = tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):
        if dir is not None and Path(dir) == locked:
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_mkstemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    _refused(["train", "--epochs", "1", "--out", str(locked / "m.pt"), *TINY], capsys, "Permission denied", str(locked))
    _refused(["train", "--epochs", "1", "--out", "", *TINY], capsys, "--out is empty")


# --- 6. misleading messages --------------------------------------------------------------------------------------
def test_batches_of_one_name_the_prior_mmd_term(tmp_path, capsys, no_trainer):
    mmd = ["--set", "w_prior_mmd=50"]
    _refused(["train", "--set", "batch_size=1", "--epochs", "1", *mmd, *TINY], capsys, "w_prior_mmd", "batch_size is 1")
    two = _folder(tmp_path / "two", classes=("a",), per_class=2)
    _refused(["train", "--dataset", "folder", "--data-dir", str(two), "--image-size", "6", "--epochs", "1", *mmd, *TINY],
             capsys, "w_prior_mmd", "holds 1 image")


@pytest.mark.parametrize("setting, words", [
    ("w_clip=nan", ("w_clip must be a finite number",)),
    ("w_kld_image=inf", ("w_kld_image must be a finite number",)),
    ("seed=1e20", ("seed must be between 0 and",)),
    ("seed=-1", ("seed must be between 0 and",)),
    ("kl_warmup_steps=-5", ("kl_warmup_steps must be 0 or more",)),
    ("free_bits=-1", ("free_bits must not be negative",)),
    ("free_bits=nan", ("free_bits must be a finite number",)),
    ("augment_px=-1", ("augment_px must not be negative",)),
    ("augment_px=100", ("augment_px=100 shifts 28x28 images", "at most 7")),
    ("weight_decay=nan", ("weight_decay must be a finite number",)),
])
def test_settings_out_of_range_name_the_setting(capsys, no_trainer, setting, words):
    _refused(["train", "--set", setting, "--epochs", "1", "--quiet"], capsys, *words)


def test_image_size_zero_says_so(tmp_path, capsys, no_trainer):
    _refused(["train", "--dataset", "folder", "--data-dir", str(_folder(tmp_path / "d")), "--image-size", "0",
              "--epochs", "1"], capsys, "image size must be at least 1")


def test_resume_of_a_folder_says_it_is_a_folder(tmp_path, capsys, no_trainer):
    _refused(["train", "--resume", str(tmp_path), "--epochs", "1", "--quiet"], capsys, "is a folder")


# --- 7. smaller ---------------------------------------------------------------------------------------------------
def test_samples_per_second_counts_the_images_a_batch_really_holds(tmp_path, capsys):
    data = _folder(tmp_path / "d", per_class=5)  # 8 training images, batch_size 256
    assert main(["train", "--dataset", "folder", "--data-dir", str(data), "--image-size", "6", "--epochs", "3",
                 "--json", *TINY]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out.strip().splitlines()[-1])
    train_images = len(load_dataset("folder", data, image_size=6).train_images)
    assert summary["steps"] == 3 and summary["samples"] == 3 * train_images
    assert "batch_size 256 is larger than the 8 training images" in captured.err


def test_many_labels_turn_the_preset_decoder_heads_off(tmp_path, capsys):
    # One full-image output layer per label made a 300-label model mostly heads: a single step
    # outlasted a 3-s budget. The preset's heads are dropped above 50 labels, with a warning.
    data = _folder(tmp_path / "many", classes=[f"k{i:02d}" for i in range(60)], per_class=2, size=4)
    out = tmp_path / "m.pt"
    assert main(["train", "--dataset", "folder", "--data-dir", str(data), "--image-size", "4", "--epochs", "1",
                 "--out", str(out), *TINY]) == 0
    assert "decoder_heads turned off" in capsys.readouterr().err
    assert load_checkpoint(out).model.decoder_heads is False
    assert main(["train", "--dataset", "folder", "--data-dir", str(data), "--image-size", "4", "--epochs", "1",
                 "--set", "decoder_heads=true", "--out", str(out), *TINY]) == 0  # asked for: kept
    assert load_checkpoint(out).model.decoder_heads is True
