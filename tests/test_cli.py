"""The command line, run in-process through cli.main (and once through main.py)."""
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clipvae_studio.cli import main
from clipvae_studio.core import load_checkpoint

ROOT = Path(__file__).resolve().parent.parent


def _last_json(text):
    return json.loads(text.strip().splitlines()[-1])


def test_train_eval_sample(tmp_path, capsys):
    out = tmp_path / "m.pt"
    assert main(["train", "--time-budget", "1", "--set", "width=32", "--set", "depth=1",
                 "--out", str(out), "--json", "--quiet"]) == 0
    summary = _last_json(capsys.readouterr().out)
    assert summary["steps"] > 0 and summary["samples"] == summary["steps"] * 256
    assert summary["samples_per_second"] > 0 and "zero_shot_accuracy" in summary["metrics"]
    assert out.is_file()
    # the budget's schedule ran out: the checkpoint records the epochs it took, not a placeholder
    saved = load_checkpoint(out)
    assert saved.config.epochs == math.ceil(saved.step / (4000 // 256)) and saved.config.epochs < 100

    assert main(["eval", str(out), "--json"]) == 0
    metrics = _last_json(capsys.readouterr().out)
    for key in ("zero_shot_accuracy", "recon_nats", "kld_nats", "label_decoder_accuracy"):
        assert key in metrics
    assert metrics["dataset"] == "mnist5k" and metrics["split"] == "test" and metrics["n"] == 1000
    assert metrics["zero_shot_accuracy"] == pytest.approx(summary["metrics"]["zero_shot_accuracy"], abs=0.02)

    grid = tmp_path / "g.png"
    assert main(["sample", str(out), "--label", "3", "--n", "9", "--out", str(grid)]) == 0
    image = np.asarray(Image.open(grid))
    assert image.shape[0] == image.shape[1] == 3 * 28 + 4 * 2  # a 3x3 grid with 2-pixel padding
    assert main(["sample", str(out), "--noise", "--n", "4", "--out", str(tmp_path / "n.png")]) == 0

    # resume continues the step count and keeps the history
    assert main(["train", "--resume", str(out), "--time-budget", "0.5", "--out", str(out), "--json", "--quiet"]) == 0
    resumed = _last_json(capsys.readouterr().out)
    assert resumed["total_steps"] == summary["steps"] + resumed["steps"]


@pytest.mark.parametrize("argv, message", [
    (["train", "--set", "lr=fast"], "lr expects a float"),
    (["train", "--set", "nonsense=1"], "unknown setting 'nonsense'"),
    (["train", "--set", "arch=transformer"], "arch must be one of"),
    (["train", "--dataset", "idx"], "needs a folder"),
    (["eval", "missing.pt"], "no such file"),
    (["sample", "missing.pt", "--noise", "--out", "x.png"], "no such file"),
])
def test_bad_input_exits_2_with_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_unknown_label_and_bad_checkpoint(tmp_path, capsys, trained_checkpoint):
    assert main(["sample", str(trained_checkpoint), "--label", "eleven", "--out", str(tmp_path / "x.png")]) == 2
    assert "unknown label 'eleven'" in capsys.readouterr().err
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00" * 100)
    assert main(["eval", str(bad)]) == 2
    assert "truncated or corrupt" in capsys.readouterr().err


def test_divergent_run_exits_1_and_saves_finite_weights(tmp_path, capsys):
    out = tmp_path / "d.pt"
    code = main(["train", "--set", "lr=1000", "--set", "width=32", "--set", "depth=1", "--epochs", "3",
                 "--out", str(out), "--quiet"])
    assert code == 1
    assert "non-finite" in capsys.readouterr().err
    load_checkpoint(out)  # refuses non-finite weights, so loading proves they are finite


def test_main_py_runs_a_subcommand(tmp_path):
    folder = tmp_path / "shapes"
    for name in ("a", "b"):
        (folder / name).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(np.full((10, 10), 30 * i + (120 if name == "b" else 0), np.uint8)).save(folder / name / f"{i}.png")
    result = subprocess.run([sys.executable, str(ROOT / "main.py"), "train", "--dataset", "folder", "--data-dir",
                             str(folder), "--image-size", "8", "--epochs", "2", "--set", "batch_size=4", "--json",
                             "--quiet"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = _last_json(result.stdout)
    assert summary["dataset"] == "shapes" and summary["total_steps"] == 2 * (6 // 4)


def test_main_py_explains_a_failed_first_install(tmp_path, monkeypatch, capsys):
    # A fresh clone whose Python lacks a dependency, offline: one sentence, not pip's traceback.
    import importlib.util

    spec = importlib.util.spec_from_file_location("clipvae_main_script", ROOT / "main.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    monkeypatch.setattr(script, "VENV", tmp_path / ".venv")
    monkeypatch.setattr(script, "_missing", lambda: ["PySide6"])
    monkeypatch.setattr(sys, "argv", ["main.py", "train"])
    calls = []

    def check_call(cmd):
        calls.append(cmd)
        if "venv" in cmd:  # creating the environment works offline
            return 0
        raise subprocess.CalledProcessError(1, cmd)

    monkeypatch.setattr(script.subprocess, "check_call", check_call)
    monkeypatch.setattr(script.subprocess, "call", lambda cmd: calls.append(cmd) or 1)  # the pip upgrade fails too
    with pytest.raises(SystemExit) as exit_info:
        script.main()
    message = str(exit_info.value.code)
    assert message.startswith("Could not install the dependencies") and "network" in message
    assert "lacks PySide6" in capsys.readouterr().err
    assert any("install" in c and "-e" in c for c in calls)  # the upgrade's failure did not stop the install
    assert not (tmp_path / ".venv" / ".installed").exists()  # the next launch tries again
