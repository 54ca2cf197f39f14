"""Start-up: the window is built and shown before torch is imported (importing torch is most of
a start), and the model loads once the window is on screen. Each case runs in a fresh
interpreter, as `clipvae-studio` does, so that nothing imported by other tests hides an import."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

LAUNCH = r"""
import json, sys
from clipvae_studio.gui.app import create_application
app = create_application()
from clipvae_studio.gui.main_window import MainWindow
window = MainWindow(defer_model=True)
window.show()
shown = {
    "heavy": sorted(m for m in ("torch", "torchvision", "sklearn") if m in sys.modules),
    "start": window.action_start.isEnabled(), "settings": any(e.isEnabled() for e in window.settings_panel.editors.values()),
    "dataset_combo": window.dataset_combo.isEnabled(), "open": window.action_open.isEnabled(),
    "state": window.status_labels["state"].text(),
    "docks": sorted(d.objectName() for d in window.findChildren(type(window.settings_dock)) if d.isVisible()),
}
window.load_model_when_shown(then=app.quit)
app.exec()
loaded = {"torch": "torch" in sys.modules, "trainer": window.trainer is not None,
          "start": window.action_start.isEnabled(), "settings": any(e.isEnabled() for e in window.settings_panel.editors.values()),
          "state": window.status_labels["state"].text(),
          "recovery": hasattr(window, "recovery"), "points": len(window.canvas.snapshot.mu)}
window.close()
print("RESULT", json.dumps({"shown": shown, "loaded": loaded}))
"""


def launch(tmp_path) -> dict:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", CLIPVAE_STUDIO_HOME=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", LAUNCH], cwd=str(ROOT), env=env, capture_output=True, text=True,
                          timeout=120)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert line is not None, proc.stderr[-3000:]
    return json.loads(line[len("RESULT "):])


def test_window_is_shown_before_torch_and_comes_alive_after(tmp_path):
    result = launch(tmp_path)
    shown, loaded = result["shown"], result["loaded"]
    # on screen with every dock, nothing heavy imported yet, and nothing that needs the model usable
    assert shown["heavy"] == []
    assert {"settingsDock", "lossDock", "metricsDock", "pointDock"} <= set(shown["docks"])
    assert shown["state"] == "Loading PyTorch…"
    assert not (shown["start"] or shown["settings"] or shown["dataset_combo"] or shown["open"])
    # then the bundled data and a fresh model arrive, and training can start
    assert loaded["torch"] and loaded["trainer"] and loaded["recovery"]
    assert loaded["start"] and loaded["settings"] and loaded["state"] == "Ready"
    assert loaded["points"] > 0
