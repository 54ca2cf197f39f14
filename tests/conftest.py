"""Shared test setup: offscreen Qt, an isolated per-user folder, the bundled data, a trained model."""
import os
import sys
import tempfile
from pathlib import Path

# Set before anything imports Qt: tests never need a display.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
_HOME = tempfile.mkdtemp(prefix="clipvae-test-home-")
os.environ["CLIPVAE_STUDIO_HOME"] = _HOME  # settings, recovery files: never the user's own
os.environ.setdefault("XDG_CONFIG_HOME", os.path.join(_HOME, "config"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pytest  # noqa: E402

from clipvae_studio.gui.process_setup import prepare_process  # noqa: E402

prepare_process()  # what the app does at start-up (gui/app.py); tests build windows directly


@pytest.fixture(autouse=True)
def _gui_thread_garbage_collection(request):
    """GUI tests collect garbage on the GUI thread, as the app does once its QApplication exists."""
    if "qtbot" in request.fixturenames or "qapp" in request.fixturenames:
        request.getfixturevalue("qapp")
        from clipvae_studio.gui.process_setup import collect_garbage_in_gui_thread

        collect_garbage_in_gui_thread()


@pytest.fixture(autouse=True)
def _fresh_window_settings():
    """Each test starts from no saved window settings: a window built without a dataset reloads the
    last one used, and an earlier test's folder of RGB images must not become this test's data."""
    Path(_HOME, "studio.ini").unlink(missing_ok=True)


@pytest.fixture(scope="session")
def mnist5k():
    from clipvae_studio.core.data import load_dataset

    return load_dataset("mnist5k")


@pytest.fixture(scope="session")
def trained_checkpoint(mnist5k, tmp_path_factory):
    """A studio-preset model trained briefly (a few seconds) and saved; shared by tests that
    need a model that has learned the labels."""
    from clipvae_studio.core import Trainer, preset, save_trainer

    trainer = Trainer(preset("studio").with_values(eval_every_steps=10**6), mnist5k)
    trainer.run(max_steps=400)
    path = tmp_path_factory.mktemp("trained") / "studio.pt"
    save_trainer(path, trainer)
    return path
